"""Scoring continuations on llama.cpp without disturbing generation: one KV sequence per hypothesis.

Proactive audio's judge (addressed.py) asks, on every spoken turn, how likely the utterance is after two different
prompts. `Llama`'s own generation keeps the conversation in KV sequence 0; scoring there would evict it (the next
answer evaluates the whole prompt again) and evaluate both judge prompts again every time. So the context is made
with SEQUENCES + 1 sequences sharing one pool of cells (`kv_unified`: the conversation may still use all of
`n_ctx`), and hypothesis i keeps its prompt cached in sequence 1 + i: a judgement evaluates only what changed in
each prompt, the prompt's last token and the utterance, in one batch. A choice (`Choice`: how likely the next
token is one of a few, e.g. "yes" or "no" after a whole question) is decoded the same way in its own sequence.

`Llama` (0.3.36) rewinds only sequence 0 when its prompt changes; versions that passed -1 to llama.cpp trimmed
every sequence. So what a scoring sequence still holds is read back from llama.cpp (`llama_memory_seq_pos_max`)
before it is reused; such trims only ever cut a tail, so the cached part stays a prefix.

Runs only on the engine's worker thread (the caller's job): llama.cpp contexts are not thread-safe.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SEQUENCES = 3  # scoring sequences (1 to 3); sequence 0 is generation's
N_SEQ_MAX = SEQUENCES + 1


@dataclass(frozen=True)
class Choice:
    """A request for log P(next token in group) right after `prompt`, for each group of token ids."""

    prompt: list[int]
    groups: tuple[tuple[int, ...], ...]


class SequenceScorer:
    """log P(continuation | prefix) summed over the continuation's tokens, for up to `sequences` pairs per decode
    (sequences 1 … `sequences`; with fewer sequences than pairs, pairs take turns)."""

    def __init__(self, llama: Any, sequences: int = SEQUENCES) -> None:
        import llama_cpp

        if not 1 <= sequences < N_SEQ_MAX:
            raise ValueError(f"the context has sequences 1 to {N_SEQ_MAX - 1} for scoring")

        self._lib = llama_cpp
        self._llama = llama
        self._ctx = llama._ctx.ctx
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._n_batch = int(llama.n_batch)
        self._n_vocab = int(llama.n_vocab())
        self._batch = llama_cpp.llama_batch_init(self._n_batch, 0, 1)
        self._sequences = sequences
        self._cached: dict[int, list[int]] = {seq: [] for seq in range(1, sequences + 1)}

    def logprobs(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[float]:
        """For each (prefix tokens, continuation tokens): sum over i of log P(cont[i] | prefix + cont[:i])."""
        out: list[float] = []
        for start in range(0, len(pairs), self._sequences):
            out += [scores[0] for scores in self._decode(pairs[start:start + self._sequences])]
        return out

    def choice(self, choice: Choice, sequence: int) -> list[float]:
        """log P(the token after `choice.prompt` is in group g), for each group; cached in scoring `sequence`."""
        if not 1 <= sequence <= self._sequences:
            raise ValueError(f"scoring sequences are 1 to {self._sequences}")
        return self._decode([choice], first_sequence=sequence)[0]

    def prefill(self, prefix: list[int], sequence: int) -> None:
        """Evaluate `prefix` into `sequence` ahead of time (a choice of nothing): a later request that starts with
        it evaluates only the rest."""
        self.choice(Choice(prefix, ()), sequence)

    def _held(self, seq: int) -> list[int]:
        """The tokens sequence `seq` really holds (generation may have trimmed it since we cached them)."""
        held = int(self._lib.llama_memory_seq_pos_max(self._memory, seq)) + 1  # -1 when empty
        return self._cached[seq][:max(0, held)]

    def _decode(self, requests: Sequence[tuple[list[int], list[int]] | Choice],
                first_sequence: int = 1) -> list[list[float]]:
        """One batch: request i in sequence first_sequence + i. A pair gives [sum of its continuation's
        log-probabilities], a Choice [log P(group) for each group]."""
        import numpy as np

        lib = self._lib
        pairs = [(r.prompt, []) if isinstance(r, Choice) else r for r in requests]
        plan: list[tuple[int, int, int, tuple[int, int] | None]] = []  # seq, position, token, (request, cont index)
        for i, (prefix, cont) in enumerate(pairs):
            if not prefix or not (cont or isinstance(requests[i], Choice)):
                raise ValueError("scoring needs a non-empty prefix and continuation")
            seq = first_sequence + i
            keep = 0
            for a, b in zip(self._held(seq), prefix, strict=False):
                if a != b:
                    break
                keep += 1
            keep = min(keep, len(prefix) - 1)  # the prefix's last token is evaluated again: its logits are needed
            lib.llama_memory_seq_rm(self._memory, seq, keep, -1)
            self._cached[seq] = prefix[:keep]
            for k, token in enumerate(prefix[keep:] + cont[:-1]):
                position = keep + k
                predicts = position - (len(prefix) - 1)  # the logits here predict cont[predicts]
                plan.append((seq, position, token, (i, predicts) if 0 <= predicts < max(1, len(cont)) else None))
        results: list[list[float]] = [[0.0] for _ in pairs]
        batch = self._batch
        for start in range(0, len(plan), self._n_batch):
            chunk = plan[start:start + self._n_batch]
            batch.n_tokens = len(chunk)
            for row, (seq, position, token, wanted) in enumerate(chunk):
                batch.token[row], batch.pos[row], batch.n_seq_id[row] = token, position, 1
                batch.seq_id[row][0] = seq
                batch.logits[row] = wanted is not None
            if lib.llama_decode(self._ctx, batch) != 0:
                raise RuntimeError("llama_decode failed while scoring")
            for row, (_, _, _, wanted) in enumerate(chunk):
                if wanted is None:
                    continue
                i, k = wanted
                logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(self._ctx, row),
                                               shape=(self._n_vocab,)).astype(np.float64)
                top = float(logits.max())
                log_norm = top + math.log(float(np.exp(logits - top).sum()))
                request = requests[i]
                if isinstance(request, Choice):
                    results[i] = [float(np.logaddexp.reduce(logits[list(group)])) - log_norm
                                  for group in request.groups]
                else:
                    results[i][0] += float(logits[pairs[i][1][k]]) - log_norm
        for i, (prefix, _) in enumerate(pairs):  # keep the prefix (but its last token), drop the continuation
            seq = first_sequence + i
            lib.llama_memory_seq_rm(self._memory, seq, len(prefix) - 1, -1)
            self._cached[seq] = prefix[:-1]
        return results

    def close(self) -> None:
        self._lib.llama_batch_free(self._batch)
