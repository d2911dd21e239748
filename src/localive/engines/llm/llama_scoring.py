"""Scoring continuations on llama.cpp without disturbing generation: one KV sequence per hypothesis.

Proactive audio's judge (addressed.py) asks, on every spoken turn, how likely the utterance is after two different
prompts. `Llama`'s own generation keeps the conversation in KV sequence 0; scoring there would evict it (the next
answer evaluates the whole prompt again) and evaluate both judge prompts again every time. So the context is made
with SEQUENCES + 1 sequences sharing one pool of cells (`kv_unified`: the conversation may still use all of
`n_ctx`), and hypothesis i keeps its prompt cached in sequence 1 + i: a judgement evaluates only what changed in
each prompt, the prompt's last token and the utterance, in one batch.

`Llama` (0.3.36) rewinds only sequence 0 when its prompt changes; versions that passed -1 to llama.cpp trimmed
every sequence. So what a scoring sequence still holds is read back from llama.cpp (`llama_memory_seq_pos_max`)
before it is reused; such trims only ever cut a tail, so the cached part stays a prefix.

Runs only on the engine's worker thread (the caller's job): llama.cpp contexts are not thread-safe.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

SEQUENCES = 2  # scoring sequences (1 and 2); sequence 0 is generation's
N_SEQ_MAX = SEQUENCES + 1


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
            out += self._decode(pairs[start:start + self._sequences])
        return out

    def _held(self, seq: int) -> list[int]:
        """The tokens sequence `seq` really holds (generation may have trimmed it since we cached them)."""
        held = int(self._lib.llama_memory_seq_pos_max(self._memory, seq)) + 1  # -1 when empty
        return self._cached[seq][:max(0, held)]

    def _decode(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[float]:
        import numpy as np

        lib = self._lib
        plan: list[tuple[int, int, int, tuple[int, int] | None]] = []  # seq, position, token, (pair, cont index)
        for i, (prefix, cont) in enumerate(pairs):
            if not prefix or not cont:
                raise ValueError("scoring needs a non-empty prefix and continuation")
            seq = 1 + i
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
                plan.append((seq, position, token, (i, predicts) if 0 <= predicts < len(cont) else None))
        sums = [0.0] * len(pairs)
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
                pair, k = wanted
                logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(self._ctx, row), shape=(self._n_vocab,))
                top = float(logits.max())
                log_norm = top + math.log(float(np.exp(logits.astype(np.float64) - top).sum()))
                sums[pair] += float(logits[pairs[pair][1][k]]) - log_norm
        for i, (prefix, _) in enumerate(pairs):  # keep the prefix (but its last token), drop the continuation
            seq = 1 + i
            lib.llama_memory_seq_rm(self._memory, seq, len(prefix) - 1, -1)
            self._cached[seq] = prefix[:-1]
        return sums

    def close(self) -> None:
        self._lib.llama_batch_free(self._batch)
