"""Proactive audio: how well the server's judge tells speech meant for the assistant from side talk.

    python -m benchmarks.proactive [--llm qwen2.5-coder-1.5b-instruct] [--set FILE ...]
    python -m benchmarks.proactive --llm-url http://127.0.0.1:8000/v1 [--no-logprobs]

Runs exactly what a session with `proactivity.proactiveAudio` does on each spoken turn (session/proactive.py
`judge`: the two hypotheses of engines/llm/addressed.py with the set's conversation so far,
`Scorer.continuation_logprobs` on the embedded model, the yes/no question, `Scorer.reply_start_logprobs`, `decide`)
over the labelled sets (default: benchmarks/proactive_set.toml, proactive_set_fresh.toml and
proactive_set_fresh2.toml) — or, with --llm-url, what a session on that remote LLM does (the yes/no question
alone, read from the backend's logprobs, or with --no-logprobs its constrained answer) — and prints per set:
correct, precision and recall of "responds", and the judge's time per utterance; then totals per use (tune /
held-out rounds / fresh / fresh2). Results: docs/proactive-audio.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from localive.bench.machine import collect as machine
from localive.engines.llm.base import ChatMessage
from localive.models.registry import QWEN_15B
from localive.session.proactive import judge

SETS = [Path(__file__).with_name(name) for name in
        ("proactive_set.toml", "proactive_set_fresh.toml", "proactive_set_fresh2.toml")]


async def judge_set(llm, instruction: str, history: list[ChatMessage],  # type: ignore[no-untyped-def]
                    items: list[dict[str, Any]], with_question: bool = True) -> tuple[int, int, int, int, list[float]]:
    tp = fp = fn = tn = 0
    seconds = []
    for item in items:
        started = time.perf_counter()
        respond = (await judge(llm, instruction, item["text"], history, ask=with_question)).respond
        seconds.append(time.perf_counter() - started)
        tp += respond and item["respond"]
        fp += respond and not item["respond"]
        fn += (not respond) and item["respond"]
        tn += (not respond) and not item["respond"]
    return tp, fp, fn, tn, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm", default=QWEN_15B, help="the judge's model (the server's: the 1.5B when installed)")
    parser.add_argument("--set", type=Path, action="append", default=None, help="a labelled set file (repeatable)")
    parser.add_argument("--threads", type=int, default=None,
                        help="llama.cpp threads (default: as the server; 1 on a machine where another process is busy)")
    parser.add_argument("--channel-only", action="store_true",
                        help="judge without the yes/no question (the judge before it was combined with one)")
    parser.add_argument("--llm-url", default=None, metavar="URL",
                        help="judge on this OpenAI-compatible backend instead (as `serve --llm-url` does)")
    parser.add_argument("--no-logprobs", action="store_true",
                        help="with --llm-url: the constrained yes/no answer (as `serve --llm-no-logprobs`)")
    args = parser.parse_args()
    sets = [s for path in (args.set or SETS) for s in tomllib.loads(path.read_text())["sets"]]
    print(machine(("llama-cpp-python",)).one_line())
    llm = remote_llm(args.llm_url, not args.no_logprobs) if args.llm_url else embedded_llm(args.llm, args.threads)
    how = ("yes/no question alone, " + ("constrained answer" if args.no_logprobs else "logprobs")
           if not llm.can_score_continuations else "channel only" if args.channel_only
           else "channel + yes/no question")
    print(f"judge: {llm.name}, {how}")
    print("\n| set | use | correct | precision (responds) | recall (responds) | judge ms p50 |")
    print("|---|---|---|---|---|---|")
    totals: dict[str, list[int]] = {}
    every: list[float] = []
    runner = asyncio.Runner()  # one loop for all sets: a remote LLM's HTTP client lives on it
    for s in sets:
        history = [ChatMessage(m["role"], m["text"]) for m in s.get("history", [])]
        tp, fp, fn, tn, seconds = runner.run(judge_set(llm, s["system_instruction"], history, s["items"],
                                                            not args.channel_only))
        every += seconds
        use = s["use"] if s["use"] in ("tune", "fresh", "fresh2") else "heldout"
        for key in (use, "all"):
            totals[key] = [a + b for a, b in zip(totals.get(key, [0, 0, 0, 0]), (tp, fp, fn, tn), strict=True)]
        n = tp + fp + fn + tn
        print(f"| {s['name']} | {s['use']} | {tp + tn}/{n} | {tp / max(1, tp + fp):.2f} | {tp / max(1, tp + fn):.2f} "
              f"| {statistics.median(seconds) * 1000:.0f} |", flush=True)
    print("\n| sets | correct | precision (responds) | recall (responds) |")
    print("|---|---|---|---|")
    for key, (tp, fp, fn, tn) in totals.items():
        n = tp + fp + fn + tn
        precision, recall = tp / max(1, tp + fp), tp / max(1, tp + fn)
        print(f"| {key} | {tp + tn}/{n} = {(tp + tn) / n:.1%} | {precision:.2f} | {recall:.2f} |")
    p50, p90 = statistics.median(every) * 1000, statistics.quantiles(every, n=10)[-1] * 1000
    print(f"\njudge time per utterance: p50 {p50:.0f} ms, p90 {p90:.0f} ms")
    close = getattr(llm, "close", None)
    if close is not None:
        close()
    runner.close()


def embedded_llm(name: str, threads: int | None):  # type: ignore[no-untyped-def]
    from localive.engines.llm.llama import LlamaLLM
    from localive.models.weights import WEIGHTS, ensure_weights

    llm = LlamaLLM(ensure_weights(WEIGHTS[name]), name=name, n_threads=threads)
    llm.load()
    return llm


def remote_llm(url: str, logprobs: bool):  # type: ignore[no-untyped-def]
    from localive.engines.llm.openai_chat import OpenAIChatLLM, RemoteSettings, check_backend

    settings = RemoteSettings(url, logprobs=logprobs, first_token_timeout_s=120, read_timeout_s=120)
    return OpenAIChatLLM(replace(settings, model=check_backend(settings)))


if __name__ == "__main__":
    main()
