"""The concurrency benchmark: N sessions × T text turns against the emulator model over plain ws://.

Measured on the server process (psutil): RSS before/after opening N idle sessions (→ memory per session) and
CPU seconds spent opening them and serving the turns (→ CPU per session and per turn). Measured by the
clients: turn latency (send → turnComplete), time to first text, and messages per second.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass

import psutil

from localive.bench.client import LiveClient, TurnTiming
from localive.bench.machine import BackgroundMeter
from localive.bench.server import BenchError, RunningServer
from localive.bench.stats import Summary, summarize

PROMPT = "Please repeat this sentence back to me, word for word, as quickly as you can"
OPEN_CONCURRENCY = 32  # connections being opened at once
MIB = 2**20


@dataclass(frozen=True)
class LoadResult:
    sessions: int
    turns_per_session: int
    turn_latency_ms: Summary
    first_text_ms: Summary
    session_open_ms: Summary
    turns_wall_s: float
    turns_per_s: float
    messages_received: int
    messages_per_s: float  # server → client messages during the turn phase
    server_rss_baseline_mib: float
    server_rss_idle_mib: float  # with N idle sessions open
    server_rss_after_turns_mib: float
    rss_per_session_kib: float
    server_cpu_per_open_ms: float
    server_cpu_per_turn_ms: float
    server_cpu_per_session_ms: float  # open + all its turns
    server_cpu_busy_pct: float  # CPU seconds / wall seconds during the turn phase, in % of one core
    client_cpu_per_turn_ms: float  # this process, for scale: the clients share the machine with the server
    background_cpu_pct: float  # other processes' CPU while we measured, % of the machine (should be ~0)
    steal_pct: float  # hypervisor steal while we measured, % of the machine


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def open_sessions(url: str, count: int, timeout_s: float) -> list[LiveClient]:
    """Open `count` sessions (setup → setupComplete), at most OPEN_CONCURRENCY at a time; all or none."""
    semaphore = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def one() -> LiveClient:
        async with semaphore:
            return await LiveClient.open(url, timeout_s=timeout_s)

    results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    clients = [r for r in results if isinstance(r, LiveClient)]
    failures = [r for r in results if not isinstance(r, LiveClient)]
    if failures:
        await close_sessions(clients)
        raise BenchError(f"{len(failures)} of {count} sessions failed to open: {failures[0]}")
    return clients


async def close_sessions(clients: list[LiveClient]) -> None:
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


async def _converse(client: LiveClient, turns: int) -> list[TurnTiming]:
    return [await client.turn(f"{PROMPT} (turn {i + 1})") for i in range(turns)]


async def run_load(server: RunningServer, *, sessions: int, turns: int, timeout_s: float) -> LoadResult:
    proc = psutil.Process(server.pid)
    me = psutil.Process()
    # Warm-up: the first session pays for lazy imports and caches; keep it out of the baseline.
    warm = await LiveClient.open(server.live_url, timeout_s=timeout_s)
    await warm.turn(PROMPT)
    await warm.close()

    meter = BackgroundMeter(proc, me)
    rss_baseline, cpu_before_open = proc.memory_info().rss, _cpu_s(proc)
    print(f"  opening {sessions} sessions…", file=sys.stderr, flush=True)
    clients = await open_sessions(server.live_url, sessions, timeout_s)
    try:
        rss_idle, cpu_after_open = proc.memory_info().rss, _cpu_s(proc)
        print(f"  {sessions} sessions × {turns} turns…", file=sys.stderr, flush=True)
        client_cpu_before = _cpu_s(me)
        started = time.perf_counter()
        per_session = await asyncio.gather(*(_converse(c, turns) for c in clients))
        wall = time.perf_counter() - started
        cpu_after_turns, client_cpu = _cpu_s(proc), _cpu_s(me) - client_cpu_before
        rss_after = proc.memory_info().rss
        background, steal = meter.other_pct()
    finally:
        await close_sessions(clients)

    timings = [t for session in per_session for t in session]
    first_texts = [t.first_text_s for t in timings if t.first_text_s is not None]
    if len(first_texts) != len(timings):
        raise BenchError(f"{len(timings) - len(first_texts)} turns ended without any text")
    total_turns = sessions * turns
    messages = sum(t.messages for t in timings)
    open_cpu, turns_cpu = cpu_after_open - cpu_before_open, cpu_after_turns - cpu_after_open
    return LoadResult(
        sessions=sessions,
        turns_per_session=turns,
        turn_latency_ms=summarize([t.complete_s for t in timings]).scaled(1000),
        first_text_ms=summarize(first_texts).scaled(1000),
        session_open_ms=summarize([c.setup_s for c in clients]).scaled(1000),
        turns_wall_s=wall,
        turns_per_s=total_turns / wall,
        messages_received=messages,
        messages_per_s=messages / wall,
        server_rss_baseline_mib=rss_baseline / MIB,
        server_rss_idle_mib=rss_idle / MIB,
        server_rss_after_turns_mib=rss_after / MIB,
        rss_per_session_kib=(rss_idle - rss_baseline) / sessions / 1024,
        server_cpu_per_open_ms=open_cpu / sessions * 1000,
        server_cpu_per_turn_ms=turns_cpu / total_turns * 1000,
        server_cpu_per_session_ms=(open_cpu + turns_cpu) / sessions * 1000,
        server_cpu_busy_pct=turns_cpu / wall * 100,
        client_cpu_per_turn_ms=client_cpu / total_turns * 1000,
        background_cpu_pct=background,
        steal_pct=steal,
    )
