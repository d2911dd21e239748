"""Soak: many real-time voice sessions on one `localive serve --llm emulator --voice emulator` for minutes.

    python -m benchmarks.soak                                   # 200 sessions × 600 s (the full soak)
    python -m benchmarks.soak --sessions 20 --duration 60       # a short one

One server process; the clients run in other processes (--client-processes, default 1), each session over a raw
WebSocket on the plain ws:// listener. Every session streams 16 kHz PCM in real time, a chunk every --chunk-ms:
bursts of a loud tone (0.4–1.6 s: "speech") and silence; after each burst it waits for the answer to finish
(turnComplete), pauses, and speaks again; in --barge-in of the turns it speaks again while the answer still plays
(a barge-in: the turn must end with interrupted + turnComplete). The emulator's transcripts are a pure function
of the burst's length ("I spoke for 0.8 seconds.", docs/engines.md), so every answer can be checked.

Measured and reported (JSON to --out, a summary to stdout):
- the server's RSS, sampled every --sample-s: idle (after one warm-up session, none open), with all sessions
  connected but quiet, during the run, after they closed (after each round's close with --rounds); the slope by
  least squares over the run after --warmup-s (MB/min); RSS per connection = (RSS with N sessions − idle RSS) / N;
- lost messages: every burst must give exactly one inputTranscription with the expected words and one turn that
  ends with turnComplete (or interrupted, then turnComplete), a whole answer ("You said: …" as
  outputTranscription, the same audio bytes for the same words) unless interrupted, no audio after interrupted
  or outside a turn, voiceActivity start and end once per burst, and no close the client did not ask for;
- turn latency: end of the burst (the wall time its last sample was due) → the answer's first audio, p50/p95/p99
  (it includes the silence window that ends a turn, silenceDurationMs: 500 ms by default);
- the clients' lag: how late each chunk went out against its real-time schedule (if the clients cannot keep real
  time, the run says so: the numbers are then the clients', not the server's); both sides' CPU, and other
  processes' CPU on the machine (a noisy machine makes the latencies meaningless).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import json
import math
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from localive.bench.machine import BackgroundMeter, collect
from localive.bench.stats import percentile
from localive.testing.server import LaunchError, LocaliveServer, start_server

MODEL = "models/gemini-2.0-flash-live-001"
RATE_HZ = 16000
OUT_RATE_HZ = 24000
TONE_HZ = 300.0
TONE_AMPLITUDE = 0.3  # -13 dBFS: far above the emulator's speech level (-39 dBFS)
BURSTS_S = tuple(round(0.4 + 0.1 * i, 1) for i in range(13))  # 0.4 … 1.6 s of "speech"
PAUSE_S = (0.3, 2.0)  # after an answer, before the next burst
BARGE_IN_AFTER_S = (0.2, 0.6)  # after the answer's first audio
TURN_TIMEOUT_S = 30.0  # a turn not complete by then is lost
SETUP_TIMEOUT_S = 60.0
# a client process reports all its sessions' turns on one line: megabytes for 200 sessions × 10 min (asyncio's
# default line limit, 64 KiB, ended the first full run)
RESULT_LINE_LIMIT = 2**30
MAX_ERRORS = 50  # kept per worker (all are counted)
SETUP = {"setup": {"model": MODEL, "generationConfig": {"responseModalities": ["AUDIO"]},
                   "inputAudioTranscription": {}, "outputAudioTranscription": {}}}
REPO_ROOT = Path(__file__).resolve().parent.parent  # where `python -m benchmarks.soak` runs the client processes
_AUDIO_MESSAGE = '{"realtimeInput":{"audio":{"data":"%s","mimeType":"audio/pcm;rate=16000"}}}'


class SoakError(RuntimeError):
    """The soak could not run (a client process died, the warm-up session failed)."""


def heard(burst_s: float) -> str:
    """What the speech emulator hears for a burst of this length (engines/asr/emulator.py's default)."""
    return f"I spoke for {burst_s:.1f} seconds."


def answer(text: str) -> str:
    """What the emulator LLM answers by default."""
    return f"You said: {text}"


def _tone(samples: int) -> bytes:
    import numpy as np  # the server's own dependency for audio ([voice-emulator]); only the clients make tones

    t = np.arange(samples) / RATE_HZ
    return (TONE_AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * t) * 32767).astype("<i2").tobytes()


# --- one session ---------------------------------------------------------------------------------------------

@dataclass
class Turn:
    index: int  # which burst it answers
    first_audio_at: float | None = None
    audio_bytes: int = 0
    said: str = ""
    interrupted: bool = False


@dataclass
class Tally:
    """What a worker's sessions saw, merged into the report."""

    sessions: int = 0
    setups: int = 0
    utterances: int = 0
    turn_completes: int = 0
    interrupted: int = 0
    barge_ins: int = 0  # bursts started while an answer was playing
    complete_answers: int = 0  # turns that ended without interruption, checked word for word
    messages_in: int = 0
    chunks_out: int = 0
    problems: int = 0
    closed_by_server: int = 0
    errors: list[str] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    lags_s: array.array[float] = field(default_factory=lambda: array.array("f"))
    audio_by_answer: dict[str, int] = field(default_factory=dict)

    def closed(self, session: int, how: str) -> None:
        """The server closed a session the client did not close (counted once per session)."""
        self.closed_by_server += 1
        self.problem(session, f"connection closed by the server: {how}")

    def problem(self, session: int, what: str) -> None:
        self.problems += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(f"session {session}: {what}")


class SoakSession:
    """One real-time voice session: a sender that streams the microphone and a reader that checks the answers."""

    def __init__(self, index: int, url: str, tally: Tally, *, chunk_s: float, barge_in: float, seed: int,
                 tone: bytes) -> None:
        self.index = index
        self.url = url
        self.tally = tally
        self.chunk_s = chunk_s
        self.chunk_samples = round(chunk_s * RATE_HZ)
        self.barge_in = barge_in
        self.random = random.Random(seed * 1_000_003 + index)
        self.tone = tone
        self.expected: list[str] = []  # the words of each burst sent
        self.speech_ends: list[float] = []  # wall time each burst ended
        self.heard: list[str] = []  # inputTranscription texts received
        self.turn: Turn | None = None  # the turn being answered
        self.completed = 0  # turnComplete messages
        self.activity = {"ACTIVITY_START": 0, "ACTIVITY_END": 0}
        self.first_audio = asyncio.Event()  # of the turn being answered
        self.settled = asyncio.Event()  # every burst sent so far is answered (turnComplete)
        self.settled.set()
        self.closing = False  # the client is closing: a close now is its own
        self.closed = False  # the server closed the connection (reported)
        self.stop_at = math.inf  # loop time after which no burst starts
        self.speech_left = 0  # samples of the current burst still to send
        self.pause_left = 0  # samples of silence before the next decision
        self.waiting_since: float | None = None  # loop time the last burst ended
        self.rested = False  # the pause after the last answer is done
        self.barge_in_planned = False  # this burst's answer will be interrupted
        self.barge_in_waited = False

    # the microphone

    async def run(self, ready: asyncio.Event | None = None, go: asyncio.Event | None = None) -> None:
        """Set up, wait for `go`, speak until `stop_at` (then until the last answer is over), close."""
        try:
            async with connect(self.url, open_timeout=SETUP_TIMEOUT_S, max_size=2**22,
                               ping_interval=None) as ws:
                await ws.send(json.dumps(SETUP))
                async with asyncio.timeout(SETUP_TIMEOUT_S):
                    first = json.loads(await ws.recv())
                if "setupComplete" not in first:
                    self.tally.problem(self.index, f"setup answered with {str(first)[:120]}")
                    return
                self.tally.setups += 1
                if ready is not None:
                    ready.set()
                if go is not None:
                    await go.wait()
                reader = asyncio.create_task(self._read(ws))
                try:
                    await self._speak(ws, reader)
                finally:
                    self.closing = True
                    reader.cancel()
                    await asyncio.gather(reader, return_exceptions=True)
                if not self.closed:  # a session the server closed is reported as such, not burst by burst
                    self._check_end()
        except ConnectionClosed as exc:
            if not self.closing and not self.closed:
                self.closed = True
                self.tally.closed(self.index, str(exc.rcvd))
        except (OSError, TimeoutError) as exc:
            self.tally.problem(self.index, f"connection failed: {exc!r}")
        finally:
            if ready is not None:
                ready.set()  # a session that failed is ready too: nobody waits for it

    async def _speak(self, ws: ClientConnection, reader: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()
        next_due = loop.time() + self.chunk_s
        self.pause_left = round(self.random.uniform(0.0, 2.0) * RATE_HZ)  # sessions do not speak in step
        while True:
            now = loop.time()
            if now < next_due:
                await asyncio.sleep(next_due - now)
            lag = loop.time() - next_due
            self.tally.lags_s.append(lag)
            if reader.done():  # the server closed the connection (the reader reported it)
                return
            chunk = bytearray()
            while len(chunk) < 2 * self.chunk_samples:
                room = self.chunk_samples - len(chunk) // 2
                if self.speech_left > 0:
                    take = min(room, self.speech_left)
                    offset = len(self.tone) - 2 * self.speech_left
                    chunk += self.tone[offset:offset + 2 * take]
                    self.speech_left -= take
                    if self.speech_left == 0:  # the burst ends in this chunk: when its last sample was due
                        due = next_due - (room - take) / RATE_HZ
                        self.speech_ends.append(time.time() - (loop.time() - due))
                        self.tally.utterances += 1
                        self.waiting_since = now
                elif self.pause_left > 0:
                    take = min(room, self.pause_left)
                    chunk += bytes(2 * take)
                    self.pause_left -= take
                elif not self._decide(now):
                    self.closing = True
                    await ws.close()
                    return
            await ws.send(_AUDIO_MESSAGE % base64.b64encode(chunk).decode("ascii"))
            self.tally.chunks_out += 1
            next_due += self.chunk_s
            if lag > 1.0:  # more than a second behind: go on from now rather than send the backlog at once
                next_due = loop.time() + self.chunk_s

    def _decide(self, now: float) -> bool:
        """Between bursts: start a burst (speech_left) or a pause (pause_left); False: the session is over."""
        waiting = not self.settled.is_set()
        if waiting and self.waiting_since is not None and now - self.waiting_since > TURN_TIMEOUT_S:
            self.tally.problem(self.index, f"burst {len(self.expected) - 1} not answered (turnComplete) in "
                                           f"{TURN_TIMEOUT_S:.0f} s")
            return False
        if now >= self.stop_at:
            if not waiting:
                return False
            self.pause_left = self.chunk_samples  # wait for the last answer to end
            return True
        if not waiting:
            if not self.rested:
                self.rested = True
                self.pause_left = round(self.random.uniform(*PAUSE_S) * RATE_HZ)
                return True
            self._burst(barge_in=False)
            return True
        if self.barge_in_planned and self.first_audio.is_set():
            if not self.barge_in_waited:
                self.barge_in_waited = True
                self.pause_left = round(self.random.uniform(*BARGE_IN_AFTER_S) * RATE_HZ)
                return True
            self._burst(barge_in=True)  # speak while the answer plays
            return True
        self.pause_left = self.chunk_samples
        return True

    def _burst(self, *, barge_in: bool) -> None:
        seconds = self.random.choice(BURSTS_S)
        if barge_in:
            self.tally.barge_ins += 1
        self.expected.append(heard(seconds))
        self.settled.clear()
        self.first_audio.clear()
        self.speech_left = round(seconds * RATE_HZ)
        self.waiting_since = None
        self.rested = False
        self.barge_in_planned = self.random.random() < self.barge_in
        self.barge_in_waited = False

    # the loudspeaker

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                self.tally.messages_in += 1
                self._on_message(json.loads(raw), time.time())
        except ConnectionClosed as exc:
            if not self.closing:
                self.closed = True
                self.tally.closed(self.index, str(exc.rcvd))
            return
        if not self.closing:
            self.closed = True
            self.tally.closed(self.index, f"{ws.close_code} {ws.close_reason}")

    def _on_message(self, message: dict[str, Any], at: float) -> None:
        if "voiceActivity" in message:
            kind = message["voiceActivity"].get("type", "")
            self.activity[kind] = self.activity.get(kind, 0) + 1
            return
        content = message.get("serverContent")
        if content is None:
            if set(message) - {"usageMetadata"}:
                self.tally.problem(self.index, f"unexpected message {str(message)[:120]}")
            return
        if "inputTranscription" in content:
            text = content["inputTranscription"].get("text", "")
            index = len(self.heard)
            self.heard.append(text)
            want = self.expected[index] if index < len(self.expected) else None
            if text != want:
                self.tally.problem(self.index, f"burst {index} heard as {text!r}, expected {want!r}")
            if self.turn is not None:
                self.tally.problem(self.index, f"turn {self.turn.index} still open when burst {index} was heard")
            self.turn = Turn(index)
        turn = self.turn
        for part in (content.get("modelTurn") or {}).get("parts", []):
            data = (part.get("inlineData") or {}).get("data")
            if data is None:
                continue
            if turn is None or turn.interrupted:
                self.tally.problem(self.index, "audio outside a turn" if turn is None else "audio after interrupted")
                continue
            if turn.first_audio_at is None:
                turn.first_audio_at = at
                if turn.index < len(self.speech_ends):
                    self.tally.latencies_s.append(at - self.speech_ends[turn.index])
                self.first_audio.set()
            turn.audio_bytes += len(data) * 3 // 4 - data[-2:].count("=")
        if "outputTranscription" in content and turn is not None:
            turn.said += content["outputTranscription"].get("text", "")
        if content.get("interrupted"):
            if turn is None:
                self.tally.problem(self.index, "interrupted outside a turn")
            else:
                turn.interrupted = True
        if content.get("turnComplete"):
            self.completed += 1
            self.tally.turn_completes += 1
            if turn is None:
                self.tally.problem(self.index, "turnComplete outside a turn")
            else:
                self._finish(turn)
            self.turn = None
            if self.completed >= len(self.expected):
                self.settled.set()

    def _finish(self, turn: Turn) -> None:
        if turn.interrupted:
            self.tally.interrupted += 1
            return
        want = answer(self.expected[turn.index]) if turn.index < len(self.expected) else None
        if turn.said.strip() != want:
            self.tally.problem(self.index, f"turn {turn.index} said {turn.said.strip()!r}, expected {want!r}")
            return
        if turn.first_audio_at is None:
            self.tally.problem(self.index, f"turn {turn.index} had no audio")
            return
        self.tally.complete_answers += 1
        known = self.tally.audio_by_answer.setdefault(want, turn.audio_bytes)
        if known != turn.audio_bytes:
            self.tally.problem(self.index, f"turn {turn.index}: {turn.audio_bytes} audio bytes for {want!r}, "
                                           f"{known} before")

    def _check_end(self) -> None:
        sent = len(self.expected)
        if len(self.heard) != sent:
            self.tally.problem(self.index, f"{sent} bursts, {len(self.heard)} inputTranscriptions")
        if self.completed != sent:
            self.tally.problem(self.index, f"{sent} bursts, {self.completed} turnComplete")
        for kind in ("ACTIVITY_START", "ACTIVITY_END"):
            if self.activity.get(kind, 0) != sent:
                self.tally.problem(self.index, f"{sent} bursts, {self.activity.get(kind, 0)} voiceActivity {kind}")


# --- a client process ----------------------------------------------------------------------------------------

def chunk_periods(spec: str) -> tuple[float, float]:
    low, _, high = spec.partition("-")
    periods = (float(low) / 1000, float(high or low) / 1000)
    if not 0.01 <= periods[0] <= periods[1] <= 0.5:
        raise argparse.ArgumentTypeError("chunk periods must be within 10-500 ms, MIN[-MAX]")
    return periods


async def run_sessions(url: str, indices: range, duration_s: float, *, chunk_ms: tuple[float, float],
                       barge_in: float, seed: int, handshake: bool = False) -> Tally:
    """Run these sessions for `duration_s` of speaking (then until their last answers end). With `handshake`,
    print READY once all are set up, and wait for a line on stdin before any speaks."""
    tally = Tally(sessions=len(indices))
    tone = _tone(round(max(BURSTS_S) * RATE_HZ))
    rng = random.Random(seed)
    sessions = []
    for index in indices:  # each its own chunk period, in whole 10 ms
        period = round(rng.uniform(*chunk_ms) * 100) / 100
        sessions.append(SoakSession(index, url, tally, chunk_s=period, barge_in=barge_in, seed=seed, tone=tone))
    readies = [asyncio.Event() for _ in sessions]
    go = asyncio.Event()
    tasks = []
    for session, ready in zip(sessions, readies, strict=True):
        tasks.append(asyncio.create_task(session.run(ready, go)))
        await asyncio.sleep(0.01)  # a ramp, not a stampede of handshakes
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(SETUP_TIMEOUT_S):
            for ready in readies:
                await ready.wait()
    except TimeoutError:
        pass  # the sessions still setting up are counted as not set up (setups < sessions)
    if handshake:
        print(f"READY {tally.setups}", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
    stop_at = loop.time() + duration_s
    for session in sessions:
        session.stop_at = stop_at
    go.set()
    await asyncio.gather(*tasks)
    return tally


def summarize_lags(lags: array.array[float] | list[float]) -> dict[str, float]:
    if not lags:
        return {"n": 0}
    ordered = sorted(lags)
    return {"n": len(ordered), "p50_ms": 1000 * percentile(ordered, 50), "p99_ms": 1000 * percentile(ordered, 99),
            "max_ms": 1000 * ordered[-1],
            "over_100ms_share": sum(1 for lag in ordered if lag > 0.1) / len(ordered)}


def worker_main(args: argparse.Namespace) -> int:
    indices = range(args.first, args.first + args.count)
    tally = asyncio.run(run_sessions(args.url, indices, args.duration, chunk_ms=args.chunk_ms,
                                     barge_in=args.barge_in, seed=args.seed, handshake=True))
    result = {key: value for key, value in vars(tally).items() if key not in ("lags_s",)}
    result["lag"] = summarize_lags(tally.lags_s)
    cpu = psutil.Process().cpu_times()
    result["cpu_s"] = cpu.user + cpu.system
    print("RESULT " + json.dumps(result), flush=True)
    return 0


# --- the orchestrator: server, clients, memory --------------------------------------------------------------

def loop_cpu_s(process: psutil.Process) -> float:
    """CPU seconds of the server's main thread, where its event loop runs (the other threads: VAD, parsing)."""
    return next((t.user_time + t.system_time for t in process.threads() if t.id == process.pid), 0.0)


def rss_mb(process: psutil.Process) -> float:
    return float(process.memory_info().rss) / 2**20


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MB) samples, in MB per minute (None: fewer than 3 samples)."""
    if len(samples) < 3:
        return None
    times = [t for t, _ in samples]
    if max(times) - min(times) <= 0:
        return None
    return statistics.linear_regression(times, [mb for _, mb in samples]).slope * 60


def spread_ms(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"n": 0}
    ordered = sorted(samples)
    return {"n": len(ordered), **{f"p{q}_ms": 1000 * percentile(ordered, q) for q in (50, 95, 99)},
            "max_ms": 1000 * ordered[-1]}


class ClientProcess:
    """A worker process (`--worker`) that runs some of the sessions."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.ps = psutil.Process(process.pid)

    @classmethod
    async def start(cls, url: str, first: int, count: int, args: argparse.Namespace) -> ClientProcess:
        command = [sys.executable, "-m", "benchmarks.soak", "--worker", "--url", url, "--first", str(first),
                   "--count", str(count), "--duration", str(args.duration),
                   "--chunk-ms", f"{args.chunk_ms[0] * 1000:.0f}-{args.chunk_ms[1] * 1000:.0f}",
                   "--barge-in", str(args.barge_in), "--seed", str(args.seed)]
        process = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.PIPE,
                                                       stdout=asyncio.subprocess.PIPE,
                                                       cwd=REPO_ROOT, limit=RESULT_LINE_LIMIT)
        return cls(process)

    async def line(self, prefix: str, timeout_s: float) -> str:
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout_s):
            while True:
                raw = await self.process.stdout.readline()
                if not raw:
                    raise SoakError(f"a client process exited ({await self.process.wait()}) before {prefix}")
                text = raw.decode().strip()
                if text.startswith(prefix):
                    return text.removeprefix(prefix).strip()

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")

    def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


def _merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {"errors": [], "latencies_s": [], "lag": [], "cpu_s": 0.0, "audio_by_answer": {}}
    for result in results:
        for key, value in result.items():
            if key in ("errors", "latencies_s"):
                merged[key] += value
            elif key == "lag":
                merged["lag"].append(value)
            elif key == "audio_by_answer":
                for text, size in value.items():
                    if merged["audio_by_answer"].setdefault(text, size) != size:
                        merged["errors"].append(f"{text!r}: {size} audio bytes in one client process, "
                                                f"{merged['audio_by_answer'][text]} in another")
                        merged["problems"] = merged.get("problems", 0) + 1
            elif isinstance(value, int | float):
                merged[key] = merged.get(key, 0) + value
    return merged


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir)
    progress(f"starting localive serve --llm emulator --voice emulator (work dir {workdir})")
    server = start_server(workdir / "server", "--llm", "emulator", "--voice", "emulator", "--playground", "off",
                          "--admission", "off",
                          "--max-sessions", str(args.sessions + 10), *args.server_arg)
    clients: list[ClientProcess] = []
    try:
        return await _measure(server, clients, args)
    finally:
        for client in clients:
            client.stop()
        server.stop()


async def _measure(server: LocaliveServer, clients: list[ClientProcess], args: argparse.Namespace) -> dict[str, Any]:
    proc = psutil.Process(server.pid)
    started_rss = rss_mb(proc)
    warm = await run_sessions(server.live_url, range(1), 2.5, chunk_ms=(0.1, 0.1), barge_in=0.0, seed=args.seed)
    if warm.problems or warm.turn_completes < 1:
        raise SoakError(f"the warm-up session failed: {warm.errors[:3]}")
    await asyncio.sleep(2.0)
    idle = rss_mb(proc)
    progress(f"idle RSS {idle:.1f} MB (at start {started_rss:.1f} MB); opening {args.sessions} sessions in "
             f"{args.client_processes} client process(es)")
    samples: list[tuple[float, float]] = []
    started = time.monotonic()

    async def sample() -> None:
        while True:
            samples.append((time.monotonic() - started, rss_mb(proc)))
            if len(samples) % max(1, round(60 / args.sample_s)) == 0:
                progress(f"  {samples[-1][0]:5.0f} s: RSS {samples[-1][1]:.1f} MB")
            await asyncio.sleep(args.sample_s)

    results: list[dict[str, Any]] = []
    set_ups, after_close, noise = [], [], []
    connected = idle
    elapsed = 0.0
    server_cpu_s = server_loop_s = 0.0
    sampler: asyncio.Task[None] | None = None
    try:
        for round_ in range(args.rounds):
            shares = [args.sessions // args.client_processes + (1 if i < args.sessions % args.client_processes else 0)
                      for i in range(args.client_processes)]
            clients.clear()
            first = 0
            for count in shares:
                clients.append(await ClientProcess.start(server.live_url, first, count, args))
                first += count
            set_ups.append(sum([int(await client.line("READY", SETUP_TIMEOUT_S + args.sessions * 0.05))
                                for client in clients]))
            if round_ == 0:
                quiet = []
                for _ in range(4):  # sessions set up, nothing said yet: the median of a few samples
                    await asyncio.sleep(1.0)
                    quiet.append(rss_mb(proc))
                connected = statistics.median(quiet)
                progress(f"{set_ups[0]}/{args.sessions} sessions set up, quiet: RSS {connected:.1f} MB; speaking for "
                         f"{args.duration:.0f} s" + (f", {args.rounds} rounds" if args.rounds > 1 else ""))
                started = time.monotonic()
                sampler = asyncio.create_task(sample())
            meter = BackgroundMeter(proc, *(client.ps for client in clients))
            cpu_before, loop_before, round_started = proc.cpu_times(), loop_cpu_s(proc), time.monotonic()
            for client in clients:
                client.go()
            results += [json.loads(await client.line("RESULT", args.duration + TURN_TIMEOUT_S + 120))
                        for client in clients]
            elapsed += time.monotonic() - round_started
            cpu = proc.cpu_times()
            server_cpu_s += cpu.user + cpu.system - cpu_before.user - cpu_before.system
            server_loop_s += loop_cpu_s(proc) - loop_before
            noise.append(meter.other_pct())
            await asyncio.sleep(3.0)  # the sessions are closed: what stays?
            after_close.append(rss_mb(proc))
            if args.rounds > 1:
                progress(f"round {round_ + 1}/{args.rounds}: {set_ups[-1]} sessions, closed: RSS "
                         f"{after_close[-1]:.1f} MB")
    finally:
        if sampler is not None:
            sampler.cancel()
    set_up = min(set_ups)
    other_pct = max(other for other, _ in noise)
    steal_pct = max(steal for _, steal in noise)
    merged = _merge(results)
    steady = [(t, mb) for t, mb in samples if t >= args.warmup_s]
    active = statistics.median([mb for _, mb in steady]) if steady else None
    slope = slope_mb_per_min(steady)
    lags = [lag for lag in merged["lag"] if lag.get("n")]
    lag = {"p50_ms": max((x["p50_ms"] for x in lags), default=0.0),
           "p99_ms": max((x["p99_ms"] for x in lags), default=0.0),
           "max_ms": max((x["max_ms"] for x in lags), default=0.0),
           "over_100ms_share": max((x["over_100ms_share"] for x in lags), default=0.0)}
    n = args.sessions
    server_pct = 100 * server_cpu_s / elapsed
    turns_per_min = merged.get("turn_completes", 0) / (elapsed / 60) if elapsed > 0 else 0.0
    return {
        "benchmark": "soak",
        "command": "python -m benchmarks.soak " + " ".join(sys.argv[1:]),
        "machine": vars(collect()) | {"one_line": collect().one_line()},
        "settings": {"sessions": n, "duration_s": args.duration, "chunk_ms": [1000 * x for x in args.chunk_ms],
                     "barge_in": args.barge_in, "warmup_s": args.warmup_s, "sample_s": args.sample_s,
                     "client_processes": args.client_processes, "rounds": args.rounds, "seed": args.seed},
        "rss_mb": {"server_start": started_rss, "idle": idle, "connected_quiet": connected, "active_median": active,
                   "after_close": after_close[-1], "after_close_by_round": after_close, "slope_mb_per_min": slope,
                   # each turn adds to its session's history (text, bounded by the context window): the slope per
                   # turn tells that growth from a leak
                   "slope_kb_per_turn": slope * 1024 / turns_per_min if slope is not None and turns_per_min else None,
                   "first_after_warmup": steady[0][1] if steady else None, "last": samples[-1][1] if samples else None,
                   "samples": [[round(t, 1), round(mb, 2)] for t, mb in samples]},
        "per_connection_kb": {"connected_quiet": (connected - idle) * 1024 / n,
                              "active": (active - idle) * 1024 / n if active is not None else None},
        "sessions": {"set_up": set_up, "requested": n, "closed_by_server": merged.get("closed_by_server", 0)},
        "turns": {"per_minute": turns_per_min, "bursts": merged.get("utterances", 0),
                  "turn_complete": merged.get("turn_completes", 0),
                  "interrupted": merged.get("interrupted", 0), "barge_ins": merged.get("barge_ins", 0),
                  "complete_answers_checked": merged.get("complete_answers", 0),
                  "latency_end_of_speech_to_first_audio": spread_ms(merged["latencies_s"])},
        "messages": {"client_chunks": merged.get("chunks_out", 0), "server_messages": merged.get("messages_in", 0)},
        "lost": {"problems": merged.get("problems", 0), "errors": merged["errors"][:MAX_ERRORS]},
        "clients": {"lag": lag, "cpu_pct_of_a_core": 100 * merged["cpu_s"] / elapsed},
        "server": {"cpu_pct_of_a_core": server_pct, "cpu_pct_per_session": server_pct / n,
                   # the event loop's thread: near 100 % it is the bottleneck, whatever the other cores do
                   "event_loop_thread_cpu_pct": 100 * server_loop_s / elapsed},
        "machine_noise": {"other_processes_pct": other_pct, "steal_pct": steal_pct},
        "elapsed_s": elapsed,
    }


def human(report: dict[str, Any]) -> str:
    rss, turns, lat = report["rss_mb"], report["turns"], report["turns"]["latency_end_of_speech_to_first_audio"]
    per, lag, lost = report["per_connection_kb"], report["clients"]["lag"], report["lost"]
    settings = report["settings"]
    slope = "n/a" if rss["slope_mb_per_min"] is None else f"{rss['slope_mb_per_min']:+.3f} MB/min"
    lines = [
        f"Soak: {settings['sessions']} sessions × {settings['duration_s']:.0f} s of real-time audio "
        f"(chunks of {settings['chunk_ms'][0]:.0f}–{settings['chunk_ms'][1]:.0f} ms, barge-in "
        f"{settings['barge_in']:.0%} of turns) on one localive serve --llm emulator --voice emulator",
        f"  machine: {report['machine']['one_line']}",
        f"  other processes {report['machine_noise']['other_processes_pct']:.1f}% of the machine, steal "
        f"{report['machine_noise']['steal_pct']:.1f}%",
        f"  sessions set up: {report['sessions']['set_up']}/{settings['sessions']}, closed by the server before the "
        f"end: {report['sessions']['closed_by_server']}",
        f"  RSS: idle {rss['idle']:.1f} MB, {settings['sessions']} connected and quiet {rss['connected_quiet']:.1f} MB,"
        f" active median {rss['active_median'] or 0:.1f} MB, after close "
        + ", then ".join(f"{mb:.1f}" for mb in rss["after_close_by_round"]) + " MB",
        f"  RSS slope after {settings['warmup_s']:.0f} s of warm-up: {slope} "
        f"(first {rss['first_after_warmup'] or 0:.1f} MB → last {rss['last'] or 0:.1f} MB; "
        f"{rss['slope_kb_per_turn'] or 0:.2f} KiB per turn at {turns['per_minute']:.0f} turns/min)",
        f"  per connection: {per['connected_quiet']:.0f} KiB connected and quiet, "
        f"{per['active'] or 0:.0f} KiB active",
        f"  turns: {turns['bursts']} bursts, {turns['turn_complete']} turnComplete, {turns['interrupted']} "
        f"interrupted ({turns['barge_ins']} barge-ins), {turns['complete_answers_checked']} whole answers checked",
    ]
    if lat.get("n"):
        lines.append(f"  end of speech → first audio (includes the 500 ms silence window): p50 {lat['p50_ms']:.0f} ms,"
                     f" p95 {lat['p95_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms, max {lat['max_ms']:.0f} ms "
                     f"(n={lat['n']})")
    lines.append(f"  lost messages / problems: {lost['problems']}" +
                 "".join(f"\n    {error}" for error in lost["errors"][:10]))
    lines.append(f"  client lag (chunk sent after its real-time due, worst process): p50 {lag['p50_ms']:.1f} ms, "
                 f"p99 {lag['p99_ms']:.1f} ms, max {lag['max_ms']:.0f} ms, "
                 f"{lag['over_100ms_share']:.2%} over 100 ms")
    server = report["server"]
    lines.append(f"  CPU (% of one core): server {server['cpu_pct_of_a_core']:.0f}% "
                 f"({server['cpu_pct_per_session']:.2f}% a session; its event loop's thread "
                 f"{server['event_loop_thread_cpu_pct']:.0f}%), clients "
                 f"{report['clients']['cpu_pct_of_a_core']:.0f}%")
    if report["sessions"]["closed_by_server"]:
        lines.append("  WARNING: the server closed sessions (a keepalive ping timeout means it fell more than 20 s "
                     "behind their audio: overloaded)")
    if lag["p99_ms"] > 100:
        lines.append("  WARNING: the clients did not keep real time (p99 lag > 100 ms): the latencies are partly "
                     "the clients'")
    return "\n".join(lines)


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=200, help="concurrent sessions (default 200)")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of speaking (default 600)")
    parser.add_argument("--chunk-ms", type=chunk_periods, default=(0.02, 0.1), metavar="MIN[-MAX]",
                        help="each session sends a chunk every this many ms, drawn per session (default 20-100)")
    parser.add_argument("--barge-in", type=float, default=0.2,
                        help="share of turns the user interrupts while the answer plays (default 0.2)")
    parser.add_argument("--warmup-s", type=float, default=None,
                        help="seconds left out of the RSS slope (default: a quarter of --duration, at most 120)")
    parser.add_argument("--sample-s", type=float, default=5.0, help="RSS sampling period (default 5)")
    parser.add_argument("--client-processes", type=int, default=1,
                        help="processes the sessions are spread over (default 1; the server has its own)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the sessions this many times, each round new connections once the last closed; "
                             "the RSS after each round's close tells a leak from the sessions' own growth "
                             "(default 1)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                        help="one more argument for `localive serve` (repeat: --server-arg=--ws-compression "
                             "--server-arg=off)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the JSON report here (default: WORKDIR/soak.json)")
    parser.add_argument("--workdir", default=None, help="server data and log (default: a new temporary directory)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        return worker_main(args)
    if min(args.sessions, args.client_processes, args.rounds) < 1 or args.client_processes > args.sessions:
        print("soak: --sessions, --client-processes and --rounds must be at least 1 (processes <= sessions)",
              file=sys.stderr)
        return 2
    if args.warmup_s is None:
        args.warmup_s = min(120.0, args.duration / 4)
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="localive-soak-")
    try:
        report = asyncio.run(soak(args))
    except (LaunchError, SoakError) as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 1
    out = args.out or Path(args.workdir) / "soak.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(human(report))
    print(f"  JSON: {out}")
    return 0 if report["lost"]["problems"] == 0 and report["sessions"]["set_up"] == args.sessions else 1


if __name__ == "__main__":
    raise SystemExit(main())
