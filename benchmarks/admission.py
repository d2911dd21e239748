"""Admission by load (server/load.py): realtime audio sessions at twice the measured listening capacity.

A server on the default models and speech engines (as `localive bench --voice`), with `--max-sessions` high enough
that only the load decides. Two probe sessions (manual activity, the first voice) are opened first:

1. **idle**: the first probe's TURNS turns, nothing else open: time from `activityEnd` to the first audio;
2. **ramp**: ATTEMPTS (default twice the listening capacity of docs/benchmarks.md, 2 × 200) new realtime listening
   sessions, RATE a second, each streaming room noise in 20 ms chunks from the moment it is admitted (as the
   listening-capacity test does); a refused one (1013 after its setup) is counted, not retried;
3. **loaded**: after a settling spell, the second probe's TURNS turns while every admitted session streams on;
4. the admitted sessions' **backlog** (the listening test's reject-a-second-setup probe) and the server's CPU;
5. **idle again**: with the listening sessions closed, a third probe's TURNS turns. The idle baseline is both idle
   runs together: the machine's speed drifts within a sitting, and one idle run before the load reads the drift
   as the load's doing (or hides it).

Criterion (issue 19): the excess is refused with 1013 while the loaded probe's p90 time to first audio stays
within 1.5× of the idle probe's, and the admitted sessions keep up (backlog ≤ 200 ms). Results: docs/benchmarks.md.

    python -m benchmarks.admission [--attempts 400] [--rate 20] [--turns 10] [--server-arg=--admission-cores=0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
from websockets.exceptions import ConnectionClosed

from localive.bench.machine import collect
from localive.bench.server import BenchError, RunningServer, start_server
from localive.bench.speech import room_noise
from localive.bench.stats import percentile
from localive.bench.voice import (
    LAG_LIMIT_MS,
    NOISE_DBFS,
    NOISE_LOOP_S,
    QUESTIONS,
    VoiceSession,
    _Listener,
    sleep_until,
    turn_on,
    voice_setup,
)

CHUNK_MS = 20
SETTLE_S = 5.0
CPU_WINDOW_S = 3.0
VOICE = "Puck"
TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Result:
    attempts: int
    admitted: int
    refused_1013: int
    failed_otherwise: int
    first_refused_at: int | None  # the attempt number of the first refusal (1-based)
    idle_ms: list[float]
    loaded_ms: list[float]
    idle_p50: float
    idle_p90: float
    loaded_p50: float
    loaded_p90: float
    p90_ratio: float
    backlog_p50_ms: float | None
    backlog_max_ms: float | None
    server_cpu_pct: float
    bench_cpu_pct: float
    refusal_reasons: list[str]
    machine: str


async def _probe_turns(probe: VoiceSession, turns: int, offset: int) -> list[float]:
    out = []
    for i in range(turns):
        turn = await turn_on(probe, QUESTIONS[(offset + i) % len(QUESTIONS)], manual=True, silence_ms=None,
                             chunk_ms=CHUNK_MS)
        out.append(turn.first_audio_ms)
        await _rest_of_turn(probe)
        print(f"  probe turn {i + 1}: first audio {turn.first_audio_ms:.0f} ms", file=sys.stderr, flush=True)
    return out


async def _rest_of_turn(probe: VoiceSession) -> None:
    """Read the turn's last messages (up to turnComplete), so that the next turn starts from a clean stream."""
    deadline = time.perf_counter() + TIMEOUT_S
    while True:
        _, message = await probe.receive(deadline)
        content = message.get("serverContent")
        if isinstance(content, dict) and content.get("turnComplete"):
            return


async def _attempt(server: RunningServer) -> VoiceSession | int:
    """An admitted listening session, or the close code it was refused with."""
    try:
        return await VoiceSession.open(server.live_url, voice_setup(VOICE, manual=False, silence_ms=500),
                                       timeout_s=TIMEOUT_S)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else 1006
    except BenchError as exc:  # receive_json's, raised from the ConnectionClosed it caught
        closed = exc.__context__
        if isinstance(closed, ConnectionClosed) and closed.rcvd:
            return closed.rcvd.code
        return 1006


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def measure(server: RunningServer, *, attempts: int, rate: float, turns: int) -> Result:
    manual = voice_setup(VOICE, manual=True, silence_ms=None)
    probes = [await VoiceSession.open(server.live_url, manual, timeout_s=TIMEOUT_S) for _ in range(3)]
    try:
        return await _measure(server, *probes, attempts=attempts, rate=rate, turns=turns)
    finally:
        await asyncio.gather(*(probe.close() for probe in probes), return_exceptions=True)


async def _measure(server: RunningServer, idle_probe: VoiceSession, loaded_probe: VoiceSession,
                   after_probe: VoiceSession, *, attempts: int, rate: float, turns: int) -> Result:
    print("idle probe…", file=sys.stderr, flush=True)
    idle = await _probe_turns(idle_probe, turns, 0)
    await idle_probe.close()
    print(f"ramp: {attempts} listening sessions, {rate:g} a second…", file=sys.stderr, flush=True)
    listeners: list[_Listener] = []
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    codes: list[int] = []
    first_refused: int | None = None
    started = time.perf_counter()
    rng = random.Random(attempts)
    pending: set[asyncio.Task[VoiceSession | int]] = set()
    ramp_done = asyncio.Event()

    def admitted(task: asyncio.Task[VoiceSession | int]) -> None:
        nonlocal first_refused
        pending.discard(task)
        if not pending and ramp_started_all:
            ramp_done.set()
        outcome = task.result()
        if isinstance(outcome, VoiceSession):
            listener = _Listener(outcome, room_noise(NOISE_LOOP_S, dbfs=NOISE_DBFS, seed=len(listeners)),
                                 CHUNK_MS, rng.uniform(0, CHUNK_MS / 1000))
            listeners.append(listener)
            tasks.append(asyncio.create_task(listener.read()))
            tasks.append(asyncio.create_task(listener.stream(time.perf_counter(), stop)))
        else:
            codes.append(outcome)
            if first_refused is None and outcome == 1013:
                first_refused = len(listeners) + len(codes)

    ramp_started_all = False
    try:
        for n in range(attempts):
            await sleep_until(started + n / rate)
            task = asyncio.create_task(_attempt(server))
            task.add_done_callback(admitted)
            pending.add(task)
        ramp_started_all = True
        if pending:
            await ramp_done.wait()
        refused = codes.count(1013)
        print(f"  admitted {len(listeners)}, refused {refused} (1013), other {len(codes) - refused}",
              file=sys.stderr, flush=True)
        await asyncio.sleep(SETTLE_S)
        proc, me = psutil.Process(server.pid), psutil.Process()
        server_before, bench_before, window_started = _cpu_s(proc), _cpu_s(me), time.perf_counter()
        await asyncio.sleep(CPU_WINDOW_S)
        window = time.perf_counter() - window_started
        server_cpu = (_cpu_s(proc) - server_before) / window * 100
        bench_cpu = (_cpu_s(me) - bench_before) / window * 100
        print("loaded probe…", file=sys.stderr, flush=True)
        loaded = await _probe_turns(loaded_probe, turns, 0)
        await asyncio.sleep(2.0)
        stop.set()
        streams = tasks[1::2]
        await asyncio.gather(*streams)
        async with asyncio.timeout(TIMEOUT_S):
            await asyncio.gather(*tasks[0::2])
    finally:
        stop.set()
        for running in tasks:
            running.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(listener.session.close() for listener in listeners), return_exceptions=True)
    backlogs = [listener.backlog_ms() for listener in listeners]
    await asyncio.sleep(SETTLE_S)
    print("idle probe again…", file=sys.stderr, flush=True)
    idle += await _probe_turns(after_probe, turns, 0)
    log = server.log_path.read_text(errors="replace")
    reasons = sorted({line.split("refused (1013): ", 1)[1].split(" (")[0].split(" cores")[0]
                      for line in log.splitlines() if "a new session refused (1013): " in line})
    return Result(
        attempts=attempts, admitted=len(listeners), refused_1013=codes.count(1013),
        failed_otherwise=len(codes) - codes.count(1013), first_refused_at=first_refused, idle_ms=idle,
        loaded_ms=loaded, idle_p50=percentile(idle, 50), idle_p90=percentile(idle, 90),
        loaded_p50=percentile(loaded, 50), loaded_p90=percentile(loaded, 90),
        p90_ratio=percentile(loaded, 90) / percentile(idle, 90),
        backlog_p50_ms=percentile(backlogs, 50) if backlogs else None,
        backlog_max_ms=max(backlogs) if backlogs else None, server_cpu_pct=server_cpu, bench_cpu_pct=bench_cpu,
        refusal_reasons=reasons[:5], machine=_machine(),
    )


def _machine() -> str:
    info = collect()
    return f"{info.cpu_model}, {info.logical_cores} logical cores, {info.ram_gib:.0f} GiB, {info.date_utc}"


def report(result: Result) -> str:
    backlog = (f"{result.backlog_p50_ms:.1f} / {result.backlog_max_ms:.1f}" if result.backlog_max_ms is not None
               else "-")
    keeps_up = result.backlog_max_ms is None or result.backlog_max_ms <= LAG_LIMIT_MS
    return "\n".join([
        f"Machine: {result.machine}",
        "",
        "| attempted | admitted | refused (1013) | other failures | first refusal at | server CPU (% of a core) "
        "| bench CPU | admitted backlog p50 / max (ms) | probe p50 / p90 idle (ms) | probe p50 / p90 loaded (ms) "
        "| p90 ratio | met |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        f"| {result.attempts} | {result.admitted} | {result.refused_1013} | {result.failed_otherwise} "
        f"| {result.first_refused_at or '-'} | {result.server_cpu_pct:.0f} | {result.bench_cpu_pct:.0f} "
        f"| {backlog} | {result.idle_p50:.0f} / {result.idle_p90:.0f} | {result.loaded_p50:.0f} / "
        f"{result.loaded_p90:.0f} | {result.p90_ratio:.2f} "
        f"| {'yes' if result.p90_ratio <= 1.5 and keeps_up and result.refused_1013 else 'no'} |",
        "",
        f"Refusals logged as: {', '.join(result.refusal_reasons) or '-'}",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.admission", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attempts", type=int, default=400, help="listening sessions to open (default 400)")
    parser.add_argument("--rate", type=float, default=20.0, help="attempts a second (default 20)")
    parser.add_argument("--turns", type=int, default=10, help="probe turns, idle and loaded (default 10)")
    parser.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                        help="passed to localive serve (repeatable), e.g. --server-arg=--admission-cores=0.4")
    parser.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    parser.add_argument("--server-log", type=Path, default=None, help="keep a copy of the server's log here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="localive-admission-") as workdir:
        print("starting a server on the default models and speech engines (loading them)…", file=sys.stderr,
              flush=True)
        server = start_server(Path(workdir), "--admission", "load", "--max-sessions", str(args.attempts + 10),
                              *args.server_arg)
        try:
            result = asyncio.run(measure(server, attempts=args.attempts, rate=args.rate, turns=args.turns))
        finally:
            server.stop()
            if args.server_log is not None:
                shutil.copyfile(server.log_path, args.server_log)
    print(report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(result), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
