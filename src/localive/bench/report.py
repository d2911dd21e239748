"""Render bench results as an aligned markdown report (readable in a terminal too) or as JSON."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

from localive.bench.llm import LlmResult
from localive.bench.load import LoadResult
from localive.bench.machine import NOISY_PCT, MachineInfo
from localive.bench.stats import Spread, Summary
from localive.bench.voice import LATE_LIMIT_MS, PROBE_TIMEOUT_S, VoiceResult, VoiceRun


@dataclass(frozen=True)
class BenchResults:
    machine: MachineInfo
    load: LoadResult
    llm: LlmResult | None = None
    voice: VoiceResult | None = None


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A markdown pipe table with padded columns: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 2)) if i == 0 else ("-" * (w + 1) + ":") for i, w in enumerate(widths)) + "|"
    return [line(header), rule, *(line(r) for r in rows)]


def _num(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def _summary_row(label: str, s: Summary, digits: int = 1) -> list[str]:
    return [label, _num(s.p50, digits), _num(s.p99, digits), _num(s.mean, digits), _num(s.min, digits),
            _num(s.max, digits), str(s.n)]


_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 10.0
_SUMMARY_HEADER = ["metric", "p50", "p99", "mean", "min", "max", "n"]


def render_markdown(results: BenchResults) -> str:
    m, load = results.machine, results.load
    out = [
        f"## localive bench, {m.date_utc}",
        "",
        f"Machine: {m.one_line()}.",
        "",
        f"### Concurrency: emulator model, {load.sessions} sessions × {load.turns_per_session} turns, "
        "raw websockets clients on plain ws://",
        "",
        *table(_SUMMARY_HEADER, [
            _summary_row("turn latency, send → turnComplete (ms)", load.turn_latency_ms),
            _summary_row("time to first text (ms)", load.first_text_ms),
            _summary_row("session open, connect → setupComplete (ms)", load.session_open_ms),
        ]),
        "",
        *table(["throughput and cost", "value"], [
            ["turns/s (all sessions)", _num(load.turns_per_s)],
            ["server → client messages/s", _num(load.messages_per_s)],
            ["server messages received", f"{load.messages_received:,}"],
            ["wall time of the turn phase (s)", _num(load.turns_wall_s, 2)],
            ["server RSS: baseline → N idle sessions → after turns (MiB)",
             f"{_num(load.server_rss_baseline_mib)} → {_num(load.server_rss_idle_mib)} → "
             f"{_num(load.server_rss_after_turns_mib)}"],
            ["server memory per idle session (KiB RSS)", _num(load.rss_per_session_kib)],
            ["server CPU per session open (ms)", _num(load.server_cpu_per_open_ms, 2)],
            ["server CPU per turn (ms)", _num(load.server_cpu_per_turn_ms, 2)],
            [f"server CPU per session, open + {load.turns_per_session} turns (ms)",
             _num(load.server_cpu_per_session_ms, 2)],
            ["server CPU busy during turns (% of one core)", _num(load.server_cpu_busy_pct)],
            ["bench client CPU per turn, same machine (ms)", _num(load.client_cpu_per_turn_ms, 2)],
            ["other processes' CPU / steal while measuring (% of machine)",
             f"{_num(load.background_cpu_pct)} / {_num(load.steal_pct)}"],
        ]),
        "",
        f"CPU times come from psutil in clock ticks ({_TICK_MS:.0f} ms each): per-turn figures are rough when the "
        "turn phase is short.",
    ]
    if results.llm is not None:
        out += ["", *_render_llm(results.llm)]
    if results.voice is not None:
        out += ["", *render_voice(results.voice)]
    return "\n".join(out) + "\n"


def _render_llm(llm: LlmResult) -> list[str]:
    return [
        f"### Real LLM: time to first token through the server vs raw llama.cpp ({llm.model}, "
        f"{llm.repeats} interleaved repetitions)",
        "",
        f"Prompt: {llm.prompt_tokens} tokens after the chat template (a new question each repetition), "
        f"temperature 0, at most {llm.max_tokens} output tokens. Outputs identical in "
        f"{llm.identical_outputs}/{llm.repeats} repetitions.",
        "",
        *table(_SUMMARY_HEADER, [
            _summary_row("server TTFT: send clientContent → first modelTurn text (ms)", llm.server_ttft_ms),
            _summary_row("raw llama.cpp TTFT: create_completion → first text (ms)", llm.raw_ttft_ms),
            _summary_row("server overhead ratio, server / raw TTFT (per repetition)", llm.ttft_ratio, 3),
            _summary_row("server overhead, server − raw TTFT (ms)", llm.ttft_overhead_ms, 2),
            _summary_row("server: send → turnComplete (ms)", llm.server_total_ms),
            _summary_row("raw llama.cpp: create_completion → last token (ms)", llm.raw_total_ms),
        ]),
        "",
        f"Ratio of medians (server p50 / raw p50 TTFT): {llm.ratio_of_medians:.3f}. Other processes' CPU / "
        f"steal during the comparison: {_num(llm.background_cpu_pct)}% / {_num(llm.steal_pct)}% of the machine; "
        f"repetitions disturbed by other processes (>{NOISY_PCT:.0f}% CPU): {llm.noisy_repetitions}.",
    ]


TARGET_MS, STRETCH_MS = 600.0, 300.0  # p50 to first audio (Gemini native audio: ~630 ms); stretch: manual only


def _pair(s: Spread | None, digits: int = 0) -> str:
    return "-" if s is None else f"{_num(s.p50, digits)} / {_num(s.p90, digits)}"


def _opt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else _num(value, digits)


def run_name(run: VoiceRun) -> str:
    mode = {"manual": "manual", "default": "default turn detection"}.get(
        run.mode, f"automatic, silence {run.silence_ms} ms")
    return f"{mode}, {run.voice} ({run.base_voice})"


def _verdict(run: VoiceRun) -> str:
    if run.mode == "silence":
        return "n/a (includes the silence)"
    p50 = run.first_audio_ms.p50
    if p50 <= STRETCH_MS and run.mode == "manual":
        return "yes, also ≤ 300"
    return "yes" if p50 <= TARGET_MS else "no"


def _turn_end(run: VoiceRun, turn_taking: str) -> str:
    """What ended the user's turns in this run (turn_taking: the server's default, from its log)."""
    if run.mode == "manual":
        return "activityEnd"
    if run.mode == "silence":
        return f"{run.silence_ms} ms of silence"
    if turn_taking and not turn_taking.startswith("semantic"):
        return "the server's silence window"
    if run.ended_at_pause is None:
        return "end-of-turn model (no server timings)"
    timed = run.outside_server_turn_ms.n if run.outside_server_turn_ms else 0
    return f"end-of-turn model at the pause {run.ended_at_pause}/{timed}"


def render_voice(voice: VoiceResult) -> list[str]:
    out = [f"### Voice latency: {voice.model} on the default models and speech engines", ""]
    if voice.runs:
        out += _render_runs(voice)
    if voice.listening is not None:
        out += ["", *_render_listening(voice)] if voice.runs else _render_listening(voice)
    out += [*([""] if out[-1] else []),
            f"Other processes' CPU / steal during the voice benchmark: {_num(voice.background_cpu_pct)}% / "
            f"{_num(voice.steal_pct)}% of the machine."]
    return out


def _render_runs(voice: VoiceResult) -> list[str]:
    return [
        f"{voice.questions} different spoken questions (espeak-ng, 16 kHz), one new session per turn, streamed in "
        f"real time in {voice.chunk_ms} ms chunks; AUDIO, temperature 0, at most {voice.max_tokens} output tokens; "
        "one unmeasured warm-up turn per run. First audio = the first `serverContent.modelTurn` `inlineData` "
        "received, measured from sending `activityEnd` (manual) or from sending the last chunk that holds speech "
        "(default turn detection: no `realtimeInputConfig`, the server decides, as a user with an open microphone "
        "feels it; silence: includes the configured silence).",
        "",
        *table(["run: time to first response audio (ms)", "p50", "p90", "mean", "min", "max", "n",
                "p50 ≤ 600 ms"],
               [[run_name(r), _num(r.first_audio_ms.p50), _num(r.first_audio_ms.p90), _num(r.first_audio_ms.mean),
                 _num(r.first_audio_ms.min), _num(r.first_audio_ms.max), str(r.first_audio_ms.n), _verdict(r)]
                for r in voice.runs]),
        "",
        "Per stage, p50 / p90 in ms. The server's stages count from the moment the user's turn ended on the "
        "server (its `turn timings` log line: after `activityEnd`, the silence, or the end-of-turn model's verdict "
        "on a pause); *outside* = client first audio − server first output (end-of-turn detection, transport, "
        "client); the first-clause split is estimated from the turn's TTS real-time factor.",
        "",
        *table(["run", "ASR done", "first LLM token", "first TTS chunk", "outside", "clause wait", "clause TTS",
                "ASR RTF", "TTS RTF"],
               [[run_name(r), _pair(r.asr_done_ms), _pair(r.llm_first_token_ms), _pair(r.first_output_ms),
                 _pair(r.outside_server_turn_ms), _pair(r.first_clause_wait_ms), _pair(r.first_clause_tts_ms),
                 _opt(r.asr_rtf_mean), _opt(r.tts_rtf_mean)] for r in voice.runs]),
        "",
        "Quality next to the latency: transcripts of the spoken questions (exact = every word right; WER = word "
        "errors of all the run's transcripts over the words spoken), and what ended the user's turns.",
        "",
        *table(["run", "speech (s, mean)", "first clause (words, mean)", "to generationComplete p50 / p90 (ms)",
                "exact transcripts", "WER", "turns ended by"],
               [[run_name(r), _num(r.speech_s_mean, 2), _num(r.first_clause_words_mean),
                 _pair(r.generation_ms), f"{r.exact_transcripts}/{r.first_audio_ms.n}",
                 f"{r.word_error_rate:.1%}", _turn_end(r, voice.turn_taking)] for r in voice.runs]),
        *([] if not voice.turn_taking or all(r.mode != "default" for r in voice.runs) else
          ["", f"The server's default turn-taking (its log): {voice.turn_taking}."]),
    ]


def _render_listening(voice: VoiceResult) -> list[str]:
    listening = voice.listening
    assert listening is not None
    if listening.fell_behind_at is None:
        verdict = f"every level kept up (up to {listening.max_sessions_keeping_up} sessions)"
    else:
        verdict = (f"fell behind at {listening.fell_behind_at} sessions; kept up with "
                   f"{listening.max_sessions_keeping_up or 0}")
    rows = []
    for level in listening.levels:
        backlog = "-" if level.backlog_ms is None else \
            f"{_num(level.backlog_ms.p50)} / {_num(level.backlog_ms.max)}"
        keeps = "client-limited" if level.client_limited else ("yes" if level.keeps_up else "no")
        probes = ", ".join("failed" if p is None else _num(p, 0) for p in level.probe_first_audio_ms)
        tokens = ", ".join("-" if p is None else _num(p, 0) for p in level.probe_llm_first_token_ms)
        rows.append([str(level.sessions), _num(level.server_cpu_pct, 0), _num(level.bench_cpu_pct, 0),
                     _num(level.server_rss_mib, 0), backlog,
                     _num(level.send_late_p99_ms), probes, tokens, str(level.unexpected_messages), keeps])
    return [
        f"#### Listening capacity: sessions streaming room noise in real time ({listening.chunk_ms} ms chunks, "
        "automatic VAD)",
        "",
        "Each level: the sessions stream for a few seconds (the server's and the bench clients' CPU measured over "
        "3 s of listening only, psutil), a probe session runs manual turns meanwhile, then every listening session "
        "sends a message the server must reject at once (a second `setup`): the time to its close frame is that "
        "session's backlog, "
        f"how far its audio processing lags real time. A level keeps up when every backlog is at most "
        f"{_num(listening.lag_limit_ms, 0)} ms and the bench sent its own audio on time (p99 lateness at most "
        f"{_num(LATE_LIMIT_MS, 0)} ms; otherwise the level is client-limited) and no probe turn failed (took "
        f"over {_num(PROBE_TIMEOUT_S, 0)} s). The bench stops at the first level that does not keep up. "
        f"Result: {verdict}.",
        "",
        *table(["listening sessions", "server CPU (% of a core)", "bench CPU (% of a core)", "server RSS (MiB)",
                "backlog p50 / max (ms)",
                "bench send late p99 (ms)", "probe: activityEnd → first audio (ms)",
                "probe: first LLM token (ms)", "server msgs", "keeps up"],
               rows),
    ]


def to_json(results: BenchResults) -> str:
    return json.dumps(dataclasses.asdict(results), indent=2)
