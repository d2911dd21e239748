"""Proactive audio: how well the server's judge tells speech meant for the assistant from side talk.

    .venv/bin/python benchmarks/proactive.py [--llm qwen2.5-coder-0.5b-instruct] [--set benchmarks/proactive_set.toml]

Runs exactly what a session with `proactivity.proactiveAudio` does on each spoken turn (engines/llm/addressed.py:
the two hypotheses, `LLM.continuation_logprob` on the embedded model, `decide`) over the labelled sets, and prints
per set: correct, precision and recall of "responds", and the judge's time per utterance. Results:
docs/proactive-audio.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import tomllib
from pathlib import Path

from localive.bench.machine import collect as machine
from localive.engines.llm.addressed import decide, judge_prompt
from localive.models.registry import QWEN_05B

SET = Path(__file__).with_name("proactive_set.toml")


async def judge_set(llm, instruction: str, items: list[dict]) -> tuple[int, int, int, int, list[float]]:  # type: ignore[no-untyped-def]
    tp = fp = fn = tn = 0
    seconds = []
    for item in items:
        prompt = judge_prompt(instruction, item["text"])
        started = time.perf_counter()
        logprobs = {h.name: await llm.continuation_logprob(list(h.messages), prompt.utterance)
                    for h in reversed(prompt.hypotheses)}
        seconds.append(time.perf_counter() - started)
        respond = decide(logprobs).respond
        tp += respond and item["respond"]
        fp += respond and not item["respond"]
        fn += (not respond) and item["respond"]
        tn += (not respond) and not item["respond"]
    return tp, fp, fn, tn, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm", default=QWEN_05B)
    parser.add_argument("--set", type=Path, default=SET)
    parser.add_argument("--threads", type=int, default=None,
                        help="llama.cpp threads (default: as the server; 1 on a machine where another process is busy)")
    args = parser.parse_args()
    sets = tomllib.loads(args.set.read_text())["sets"]
    print(machine(("llama-cpp-python",)).one_line())
    from localive.engines.llm.llama import LlamaLLM
    from localive.models.weights import WEIGHTS, ensure_weights

    llm = LlamaLLM(ensure_weights(WEIGHTS[args.llm]), name=args.llm, n_threads=args.threads)
    llm.load()
    print("\n| set | use | correct | precision (responds) | recall (responds) | judge ms p50 |")
    print("|---|---|---|---|---|---|")
    for s in sets:
        tp, fp, fn, tn, seconds = asyncio.run(judge_set(llm, s["system_instruction"], s["items"]))
        n = tp + fp + fn + tn
        print(f"| {s['name']} | {s['use']} | {tp + tn}/{n} | {tp / max(1, tp + fp):.2f} | {tp / max(1, tp + fn):.2f} "
              f"| {statistics.median(seconds) * 1000:.0f} |", flush=True)
    llm.close()


if __name__ == "__main__":
    main()
