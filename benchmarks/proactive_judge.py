"""Benchmark of the proactive-audio judge (src/localive/engines/llm/addressed.py) on labelled utterances.

    .venv/bin/python benchmarks/proactive_judge.py MODEL.gguf [--method channel|yesno|both] [-v]

For each set of benchmarks/proactive_set.toml (one assistant role each) it prints every utterance's score and
verdict, then accuracy, precision and recall of "responds", and the judge's latency (median, p90) with the
prefix cache warm (one untimed judgment per role first, as in a session where the role's prompt is cached).

It also holds the reference llama.cpp code an engine needs (`load_llama`, `ContinuationScorer`,
`first_token_logits`): it runs on llama-cpp-python 0.3.x directly, without the rest of localive.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from localive.engines.llm.addressed import (  # noqa: E402
    NO,
    SENTINEL,
    YES,
    YES_NO_THRESHOLD,
    decide,
    judge_prompt,
    prompt_prefix,
    yes_no_messages,
)
from localive.engines.llm.base import ChatMessage  # noqa: E402

SETS = ROOT / "benchmarks" / "proactive_set.toml"


# --- reference llama.cpp code ------------------------------------------------------------------------------

def load_llama(model_path: str, *, n_ctx: int = 2048, n_threads: int = 2, n_seq_max: int = 3) -> Any:
    """A llama_cpp.Llama whose context holds `n_seq_max` KV sequences sharing one cell pool (kv_unified).

    `Llama()` has no argument for n_seq_max, so the default context params it starts from are adjusted for the
    duration of the constructor, the way localive already does for the model params (use_extra_bufts=False).
    Sequence 0 is what Llama's own generation uses; the judge's hypotheses live in sequences 1 and 2, so a
    session's cached conversation is not evicted by judging."""
    import llama_cpp

    low = llama_cpp.llama_cpp
    model_defaults, context_defaults = low.llama_model_default_params, low.llama_context_default_params

    def model_params() -> Any:
        params = model_defaults()
        params.use_extra_bufts = False
        return params

    def context_params() -> Any:
        params = context_defaults()
        params.n_seq_max = n_seq_max
        params.kv_unified = True
        return params

    low.llama_model_default_params, low.llama_context_default_params = model_params, context_params
    try:
        return llama_cpp.Llama(model_path=model_path, n_ctx=n_ctx, n_threads=n_threads,
                               n_threads_batch=n_threads, verbose=False)
    finally:
        low.llama_model_default_params, low.llama_context_default_params = model_defaults, context_defaults


class ChatRenderer:
    """The model's own chat template (as LlamaLLM renders it)."""

    def __init__(self, llm: Any) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        eos = llm.detokenize([llm.token_eos()], special=True).decode("utf-8", "replace")
        bos = llm.detokenize([llm.token_bos()], special=True).decode("utf-8", "replace")
        self._format = Jinja2ChatFormatter(template=llm.metadata["tokenizer.chat_template"], eos_token=eos,
                                           bos_token=bos)

    def __call__(self, messages: Sequence[ChatMessage]) -> str:
        chat: list[Any] = [{"role": m.role, "content": m.text} for m in messages]
        return str(self._format(messages=chat).prompt)

    def prefix(self, messages: Sequence[ChatMessage]) -> str:
        """The prompt before a user message that follows `messages` (the judge's hypothesis prefix)."""
        return prompt_prefix(self([*messages, ChatMessage("user", SENTINEL)]))


class ContinuationScorer:
    """log P(continuation | prefix), summed over the continuation's tokens, for several pairs in one decode.

    Pair i lives in KV sequence `seq_ids[i]`, which keeps its prefix cached between calls: a call evaluates
    only the part of each prefix that changed, plus the prefix's last token and the continuation (whose own
    tokens are dropped from the cache again afterwards). With fewer sequences than pairs, pairs take turns."""

    def __init__(self, llm: Any, seq_ids: Sequence[int] = (1, 2), n_batch: int = 512) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self._llm = llm
        self._seq_ids = list(seq_ids)
        self._cached: dict[int, list[int]] = {s: [] for s in self._seq_ids}
        self._n_batch = min(n_batch, llm.n_batch)
        self._batch = llama_cpp.llama_batch_init(self._n_batch, 0, 1)
        self._memory = llama_cpp.llama_get_memory(llm._ctx.ctx)
        self._n_vocab = llm.n_vocab()

    def tokens(self, text: str, *, special: bool) -> list[int]:
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=special))

    def logprobs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        tokenized = [(self.tokens(p, special=True), self.tokens(c, special=False)) for p, c in pairs]
        out: list[float] = []
        for start in range(0, len(tokenized), len(self._seq_ids)):
            out += self._logprobs(tokenized[start:start + len(self._seq_ids)])
        return out

    def prefill(self, prefixes: Sequence[str]) -> None:
        """Evaluate and cache prefixes ahead of time (e.g. the assistant hypothesis with the newest exchange,
        right after the answer), so that the next judgment evaluates only the utterance."""
        self.logprobs([(p, "") for p in prefixes])

    def _logprobs(self, pairs: list[tuple[list[int], list[int]]]) -> list[float]:
        lib, ctx = self._lib, self._llm._ctx.ctx
        plan: list[tuple[int, int, int, tuple[int, int] | None]] = []  # seq, pos, token, (pair, cont index)
        for i, (prefix, cont) in enumerate(pairs):
            seq = self._seq_ids[i]
            keep = 0
            for a, b in zip(self._cached[seq], prefix, strict=False):
                if a != b:
                    break
                keep += 1
            keep = min(keep, len(prefix) - 1)  # the last prefix token is evaluated again: its logits are needed
            lib.llama_memory_seq_rm(self._memory, seq, keep, -1)
            for k, token in enumerate(prefix[keep:] + cont[:-1]):
                pos = keep + k
                predicts = pos - (len(prefix) - 1)  # the logits at pos predict cont[predicts]
                plan.append((seq, pos, token, (i, predicts) if 0 <= predicts < len(cont) else None))
        sums = [0.0] * len(pairs)
        batch = self._batch
        for start in range(0, len(plan), self._n_batch):
            chunk = plan[start:start + self._n_batch]
            batch.n_tokens = len(chunk)
            for row, (seq, pos, token, want) in enumerate(chunk):
                batch.token[row], batch.pos[row], batch.n_seq_id[row] = token, pos, 1
                batch.seq_id[row][0] = seq
                batch.logits[row] = want is not None
            if lib.llama_decode(ctx, batch) != 0:
                raise RuntimeError("llama_decode failed")
            for row, (_, _, _, want) in enumerate(chunk):
                if want is not None:
                    i, k = want
                    logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(ctx, row), shape=(self._n_vocab,))
                    top = float(logits.max())
                    lse = top + math.log(float(np.exp(logits - top).sum()))
                    sums[i] += float(logits[pairs[i][1][k]]) - lse
        for i, (prefix, _) in enumerate(pairs):
            seq = self._seq_ids[i]
            lib.llama_memory_seq_rm(self._memory, seq, len(prefix) - 1, -1)
            self._cached[seq] = prefix[:-1]
        return sums


def first_token_logits(llm: Any, prompt: str) -> np.ndarray:
    """The next-token logits after `prompt` (sequence 0), reusing the longest cached prefix; nothing sampled."""
    import llama_cpp

    tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
    keep = 0
    for a, b in zip(llm.input_ids[: llm.n_tokens].tolist(), tokens, strict=False):
        if a != b:
            break
        keep += 1
    keep = min(keep, len(tokens) - 1)
    llm._ctx.kv_cache_seq_rm(0, keep, -1)
    llm.n_tokens = keep
    llm.eval(tokens[keep:])  # logits only for the last token (logits_all=False)
    return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(llm.n_vocab(),)).copy()


# --- the two judges ----------------------------------------------------------------------------------------

class ChannelJudge:
    name = "channel"
    repeatable = True  # each call drops the utterance from the cache again: a repeat costs what the first did

    def __init__(self, llm: Any, seq_ids: Sequence[int] = (1, 2)) -> None:
        self.render = ChatRenderer(llm)
        self.scorer = ContinuationScorer(llm, seq_ids)

    def score(self, instruction: str, utterance: str, history: Sequence[ChatMessage]) -> tuple[float, bool]:
        prompt = judge_prompt(instruction, utterance, history)
        logprobs = self.scorer.logprobs([(self.render.prefix(h.messages), prompt.utterance)
                                         for h in prompt.hypotheses])
        verdict = decide({h.name: lp for h, lp in zip(prompt.hypotheses, logprobs, strict=True)})
        return verdict.margin, verdict.respond


class YesNoJudge:
    name = "yesno"
    repeatable = False  # the whole prompt stays cached: a repeat would cost one token, so it is timed once

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.render = ChatRenderer(llm)
        def first(word: str) -> int:
            return int(llm.tokenize(word.encode(), add_bos=False, special=False)[0])

        self.yes, self.no = [first(w) for w in YES], [first(w) for w in NO]

    def score(self, instruction: str, utterance: str, history: Sequence[ChatMessage]) -> tuple[float, bool]:
        logits = first_token_logits(self.llm, self.render(yes_no_messages(instruction, utterance, history)))
        yes, no = float(np.logaddexp.reduce(logits[self.yes])), float(np.logaddexp.reduce(logits[self.no]))
        margin = yes - no - YES_NO_THRESHOLD
        return margin, margin > 0


# --- benchmark ---------------------------------------------------------------------------------------------

def run(judge: Any, sets: list[dict[str, Any]], verbose: bool, repeat: int = 1) -> list[dict[str, Any]]:
    rows = []
    for s in sets:
        instruction = s["system_instruction"]
        warm_history = [ChatMessage(m["role"], m["text"]) for m in s.get("history", [])]
        judge.score(instruction, "Hello there.", warm_history)  # warm: this role's prompt prefix is now cached
        for item in s["items"]:
            history = [ChatMessage(m["role"], m["text"]) for m in item.get("history", s.get("history", []))]
            times = []
            for _ in range(repeat if judge.repeatable else 1):  # each repeat: the same warm cache state
                start = time.perf_counter()
                margin, respond = judge.score(instruction, item["text"], history)
                times.append(time.perf_counter() - start)
            elapsed = statistics.median(times)
            rows.append({"set": s["name"], "use": s.get("use", ""), "kind": item["kind"], "text": item["text"],
                         "label": item["respond"], "margin": margin, "respond": respond, "seconds": elapsed})
            if verbose:
                mark = "ok " if respond == item["respond"] else "BAD"
                print(f"  {mark} {margin:+7.2f} {'respond' if respond else 'silent ':7} {item['kind']:9} "
                      f"{elapsed * 1000:4.0f} ms  {item['text']}", flush=True)
    return rows


def summary(rows: list[dict[str, Any]]) -> str:
    n = len(rows)
    correct = sum(r["respond"] == r["label"] for r in rows)
    tp = sum(r["respond"] and r["label"] for r in rows)
    fp = sum(r["respond"] and not r["label"] for r in rows)
    fn = sum(not r["respond"] and r["label"] for r in rows)
    ms = sorted(r["seconds"] * 1000 for r in rows)
    p90 = ms[min(n - 1, math.ceil(0.9 * n) - 1)]
    return (f"acc {correct:2d}/{n} = {correct / n:5.1%}  precision {tp / max(1, tp + fp):.2f}  "
            f"recall {tp / max(1, tp + fn):.2f}  latency median {statistics.median(ms):4.0f} ms  p90 {p90:4.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="GGUF model path")
    parser.add_argument("--method", choices=("channel", "yesno", "both"), default="channel")
    parser.add_argument("--sets", default=str(SETS))
    parser.add_argument("--only", nargs="*", help="names of the sets to run (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1,
                        help="time each judgment this many times and keep the median (a shared CPU is noisy)")
    parser.add_argument("--single-seq", action="store_true",
                        help="channel: both hypotheses in one KV sequence (prefixes evaluated again every time)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every utterance")
    args = parser.parse_args()
    sets = tomllib.loads(Path(args.sets).read_text())["sets"]
    if args.only:
        sets = [s for s in sets if s["name"] in args.only]
    llm = load_llama(args.model, n_threads=args.threads)
    methods = ("channel", "yesno") if args.method == "both" else (args.method,)
    for method in methods:
        judge = ChannelJudge(llm, (1,) if args.single_seq else (1, 2)) if method == "channel" else YesNoJudge(llm)
        print(f"== {Path(args.model).name}  method {method}", flush=True)
        rows = run(judge, sets, args.verbose, args.repeat)
        for s in sets:
            print(f"{s['name']:15} ({s.get('use', '')[:7]:7}) {summary([r for r in rows if r['set'] == s['name']])}")
        for use in dict.fromkeys(r["use"] for r in rows):
            print(f"{'all ' + use:25} {summary([r for r in rows if r['use'] == use])}")
        held = [r for r in rows if r["use"].startswith("heldout")]
        if held:
            print(f"{'all held-out':25} {summary(held)}")
        print(f"{'all':25} {summary(rows)}", flush=True)


if __name__ == "__main__":
    main()
