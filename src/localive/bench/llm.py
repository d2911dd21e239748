"""Time to first token through the server vs raw llama.cpp, for the same prompt, in the same run.

The raw side runs in this process on a model loaded by `LlamaLLM` itself (same weights, n_ctx, threads, and
the worker thread that warmed it, as in the server); it calls llama.cpp's `create_completion` directly on the
prompt that `LlamaLLM` renders with the chat template. Both sides use temperature 0 and the same limits.

The machine may have few cores, so the two never run at the same time: each repetition measures the raw
call while the server is idle (no session open) and the server while the raw model is idle, alternating
which goes first. Every repetition uses a new prompt so both llama.cpp instances see the same KV-cache state
(the shared system-prompt prefix cached, the question itself not).
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from localive.bench.client import LiveClient
from localive.bench.machine import NOISY_PCT, BackgroundMeter
from localive.bench.server import BenchError, RunningServer, start_server
from localive.bench.stats import Summary, summarize
from localive.engines.llm.base import ChatMessage
from localive.engines.llm.llama import LlamaLLM
from localive.models.weights import QWEN_05B, ensure_weights

QUESTION = "In one sentence: what does a Python list comprehension do, and when should I use one?"
# llama.cpp defaults that LlamaLLM applies when the client leaves them unset.
TOP_P, TOP_K = 0.95, 40


@dataclass(frozen=True)
class RunTiming:
    first_text_s: float
    total_s: float
    text: str


@dataclass(frozen=True)
class LlmResult:
    model: str
    repeats: int
    max_tokens: int
    prompt_tokens: int
    server_ttft_ms: Summary
    raw_ttft_ms: Summary
    ttft_ratio: Summary  # server / raw, per repetition
    ttft_overhead_ms: Summary  # server − raw, per repetition
    ratio_of_medians: float
    server_total_ms: Summary  # send → turnComplete
    raw_total_ms: Summary  # create_completion → last token
    identical_outputs: int  # repetitions where both produced the same text
    background_cpu_pct: float  # other processes' CPU during the comparison, % of the machine (should be ~0)
    steal_pct: float  # hypervisor steal during the comparison, % of the machine
    noisy_repetitions: int  # repetitions during which other processes used more than NOISY_PCT of the machine


def prompt_for(repetition: int) -> str:
    return f"Question {repetition}. {QUESTION}"


class RawLlama:
    """llama.cpp called directly on the model a `LlamaLLM` loaded, on that LlamaLLM's own worker thread.

    Reaches into LlamaLLM's private members on purpose: it is the only way to share the exact load parameters,
    the chat-template rendering and the warmed inference thread with the server's engine.
    """

    def __init__(self, llm: LlamaLLM) -> None:
        self._llm = llm

    def render(self, text: str) -> str:
        return self._llm._render([ChatMessage("user", text)])

    def prompt_tokens(self, text: str) -> int:
        return self._llm.count_prompt_tokens([ChatMessage("user", text)])

    def _complete(self, prompt: str, max_tokens: int) -> RunTiming:
        llama = self._llm._llama
        started = time.perf_counter()
        first: float | None = None
        pieces: list[str] = []
        for chunk in llama.create_completion(prompt, max_tokens=max_tokens, stream=True, temperature=0.0,
                                             top_p=TOP_P, top_k=TOP_K, stop=None):
            text = chunk["choices"][0]["text"]
            if text:
                if first is None:
                    first = time.perf_counter() - started
                pieces.append(text)
        total = time.perf_counter() - started
        if first is None:
            raise BenchError("raw llama.cpp produced no text")
        return RunTiming(first, total, "".join(pieces))

    async def complete(self, prompt: str, max_tokens: int) -> RunTiming:
        return await asyncio.wrap_future(self._llm._worker.submit(self._complete, prompt, max_tokens))


async def _server_once(server: RunningServer, text: str, max_tokens: int, timeout_s: float) -> RunTiming:
    config = {"temperature": 0, "maxOutputTokens": max_tokens}
    client = await LiveClient.open(server.live_url, timeout_s=timeout_s, generation_config=config)
    try:
        turn = await client.turn(text)
    finally:
        await client.close()
    if turn.first_text_s is None:
        raise BenchError("the server's turn had no text")
    return RunTiming(turn.first_text_s, turn.complete_s, turn.text)


async def compare(server: RunningServer, raw: RawLlama, *, repeats: int, max_tokens: int,
                  timeout_s: float) -> LlmResult:
    # One unmeasured pair first: both sides pay their first-request costs outside the statistics.
    await raw.complete(raw.render(prompt_for(0)), max_tokens)
    await _server_once(server, prompt_for(0), max_tokens, timeout_s)
    meter = BackgroundMeter(psutil.Process(server.pid), psutil.Process())
    server_runs: list[RunTiming] = []
    raw_runs: list[RunTiming] = []
    noisy = 0
    for i in range(1, repeats + 1):
        text = prompt_for(i)
        repetition_meter = BackgroundMeter(psutil.Process(server.pid), psutil.Process())
        if i % 2:
            raw_runs.append(await raw.complete(raw.render(text), max_tokens))
            server_runs.append(await _server_once(server, text, max_tokens, timeout_s))
        else:
            server_runs.append(await _server_once(server, text, max_tokens, timeout_s))
            raw_runs.append(await raw.complete(raw.render(text), max_tokens))
        other, _ = repetition_meter.other_pct()
        noisy += other > NOISY_PCT
        print(f"  repetition {i}/{repeats}: TTFT server {server_runs[-1].first_text_s * 1000:.1f} ms, "
              f"raw {raw_runs[-1].first_text_s * 1000:.1f} ms; other processes {other:.0f}% CPU",
              file=sys.stderr, flush=True)
    background, steal = meter.other_pct()
    server_ttft = [r.first_text_s for r in server_runs]
    raw_ttft = [r.first_text_s for r in raw_runs]
    server_summary, raw_summary = summarize(server_ttft).scaled(1000), summarize(raw_ttft).scaled(1000)
    return LlmResult(
        model=QWEN_05B.name,
        repeats=repeats,
        max_tokens=max_tokens,
        prompt_tokens=raw.prompt_tokens(prompt_for(1)),
        server_ttft_ms=server_summary,
        raw_ttft_ms=raw_summary,
        ttft_ratio=summarize([s / r for s, r in zip(server_ttft, raw_ttft, strict=True)]),
        ttft_overhead_ms=summarize([s - r for s, r in zip(server_ttft, raw_ttft, strict=True)]).scaled(1000),
        ratio_of_medians=server_summary.p50 / raw_summary.p50,
        server_total_ms=summarize([r.total_s for r in server_runs]).scaled(1000),
        raw_total_ms=summarize([r.total_s for r in raw_runs]).scaled(1000),
        identical_outputs=sum(s.text == r.text for s, r in zip(server_runs, raw_runs, strict=True)),
        background_cpu_pct=background,
        steal_pct=steal,
        noisy_repetitions=noisy,
    )


def run_llm(workdir: Path, *, repeats: int, max_tokens: int, timeout_s: float) -> LlmResult:
    """Start a server on the real LLM, load the same model here, and compare them."""
    print(f"starting a server on {QWEN_05B.name} (loading the model)…", file=sys.stderr, flush=True)
    server = start_server(workdir, "--llm", QWEN_05B.name)
    try:
        print("loading the same model in this process for the raw llama.cpp side…", file=sys.stderr, flush=True)
        llm = LlamaLLM(ensure_weights(QWEN_05B), name=QWEN_05B.name)
        try:
            llm.load()
            print(f"comparing time to first token over {repeats} repetitions…", file=sys.stderr, flush=True)
            return asyncio.run(compare(server, RawLlama(llm), repeats=repeats, max_tokens=max_tokens,
                                       timeout_s=timeout_s))
        finally:
            llm.close()
    finally:
        server.stop()
