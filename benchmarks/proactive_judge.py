"""Benchmark of the proactive-audio judge (src/localive/engines/llm/addressed.py) on labelled utterances.

    python -m benchmarks.proactive_judge MODEL.gguf [--method channel|yesno|both] [-v]

For each set of benchmarks/proactive_set.toml (one assistant role each) it prints every utterance's score and
verdict, then accuracy, precision and recall of "responds", and the judge's latency (median, p90) with the
prefix cache warm (one untimed judgment per role first, as in a session where the role's prompt is cached).

It loads the model and scores continuations with the engine's own code (`load_llama` in engines/llm/llama.py,
`SequenceScorer` in engines/llm/llama_scoring.py) and drives llama-cpp-python directly for the rest
(`first_token_logits`, the yes/no judge).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from localive.engines.llm.addressed import (
    NO,
    SENTINEL,
    YES,
    YES_NO_THRESHOLD,
    decide,
    judge_prompt,
    prompt_prefix,
    yes_no_messages,
)
from localive.engines.llm.base import ChatMessage
from localive.engines.llm.llama import load_llama
from localive.engines.llm.llama_scoring import SequenceScorer

SETS = Path(__file__).with_name("proactive_set.toml")


# --- reference llama.cpp code ------------------------------------------------------------------------------

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

    def __init__(self, llm: Any, sequences: int = 2) -> None:
        self.llm = llm
        self.render = ChatRenderer(llm)
        self.scorer = SequenceScorer(llm, sequences)

    def tokens(self, text: str, *, special: bool) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=special))

    def score(self, instruction: str, utterance: str, history: Sequence[ChatMessage]) -> tuple[float, bool]:
        prompt = judge_prompt(instruction, utterance, history)
        cont = self.tokens(prompt.utterance, special=False)
        logprobs = self.scorer.logprobs([(self.tokens(self.render.prefix(h.messages), special=True), cont)
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
    llm = load_llama(Path(args.model), n_ctx=2048, n_threads=args.threads)
    methods = ("channel", "yesno") if args.method == "both" else (args.method,)
    for method in methods:
        judge = ChannelJudge(llm, 1 if args.single_seq else 2) if method == "channel" else YesNoJudge(llm)
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
