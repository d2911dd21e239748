"""Does thinking help? Accuracy on small reasoning questions, with and without the session's reasoning pass.

    python -m benchmarks.thinking [--llm qwen2.5-coder-0.5b-instruct,qwen2.5-coder-1.5b-instruct]

Runs exactly what a session with thinking does (session/thinking.py: the reasoning prompt within the default
budget, then the answer with the reasoning in its instructions) against a plain answer, at temperature 0, and
prints accuracy, thought tokens and time per question. Results: docs/thinking.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass

from localive.bench.machine import collect as machine
from localive.engines.llm.base import LLM, ChatMessage, SamplingParams
from localive.engines.llm.pool import LLMPool
from localive.models.registry import QWEN_05B, QWEN_15B
from localive.session.thinking import DYNAMIC_BUDGET, answer_messages, reasoning_messages

SYSTEM = "You are a helpful voice assistant. Answer briefly."
ANSWER_TOKENS = 200
# (question, a string the right answer contains, lowercase, commas removed)
QUESTIONS = [
    ("I have 3 boxes with 4 apples in each. I eat 5 apples. How many apples are left?", "7"),
    ("A train leaves at 2:15 pm and the trip takes 1 hour and 50 minutes. At what time does it arrive?", "4:05"),
    ("Tom is older than Anna. Anna is older than Ben. Who is the youngest?", "ben"),
    ("What is 17 times 6, minus 12?", "90"),
    ("A shirt costs 40 dollars and is 25 percent off. What is the price now?", "30"),
    ("If today is Tuesday, what day of the week will it be in 10 days?", "friday"),
    ("I had 12 dollars, spent 5 on lunch and then earned 8. How many dollars do I have now?", "15"),
    ("There are 5 birds on a fence. 2 fly away and 4 more land. How many birds are on the fence?", "7"),
    ("Which is heavier, two kilograms of feathers or one kilogram of iron?", "feathers"),
    ("A rectangle is 6 meters long and 4 meters wide. What is its area in square meters?", "24"),
    ("If all cats are animals and Tom is a cat, is Tom an animal? Answer yes or no.", "yes"),
    ("What is the sum of 48, 27 and 25?", "100"),
]


@dataclass
class Result:
    correct: int = 0
    seconds: list[float] | None = None
    thought_tokens: list[int] | None = None


async def collect(llm: LLM, messages: list[ChatMessage], max_tokens: int) -> str:
    params = SamplingParams(temperature=0.0, max_output_tokens=max_tokens)
    return "".join([p async for p in llm.stream(messages, params) if isinstance(p, str)])


async def run(llm: LLM, thinking: bool) -> Result:
    result = Result(0, [], [])
    assert result.seconds is not None and result.thought_tokens is not None
    for question, expected in QUESTIONS:
        started = time.monotonic()
        messages = [ChatMessage("system", SYSTEM), ChatMessage("user", question)]
        if thinking:
            thoughts = await collect(llm, reasoning_messages(messages), DYNAMIC_BUDGET)
            result.thought_tokens.append(llm.count_tokens(thoughts))
            messages = answer_messages(messages, thoughts)
        answer = await collect(llm, messages, ANSWER_TOKENS)
        result.seconds.append(time.monotonic() - started)
        good = expected in answer.lower().replace(",", "")
        result.correct += good
        print(f"  {'ok' if good else 'x '} {'think' if thinking else 'plain'} {question[:50]!r} -> {answer[:80]!r}",
              flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm", default=f"{QWEN_05B},{QWEN_15B}", help="comma-separated LLM backends")
    args = parser.parse_args()
    print(machine(("llama-cpp-python",)).one_line())
    rows = []
    for key in args.llm.split(","):
        pool = LLMPool()
        pool.load({key})
        llm = pool.backend(key)
        for thinking in (False, True):
            result = asyncio.run(run(llm, thinking))
            assert result.seconds is not None and result.thought_tokens is not None
            rows.append((key, "thinking" if thinking else "plain", result.correct,
                         statistics.median(result.seconds),
                         statistics.median(result.thought_tokens) if result.thought_tokens else 0))
        pool.close()
    print(f"\n| LLM | mode | correct (of {len(QUESTIONS)}) | median s/question | median thought tokens |")
    print("|---|---|---|---|---|")
    for key, mode, correct, seconds, tokens in rows:
        print(f"| {key} | {mode} | {correct} | {seconds:.1f} | {tokens:.0f} |")


if __name__ == "__main__":
    main()
