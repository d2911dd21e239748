"""Pure helpers of `localive bench`: percentiles, summaries, CPU model parsing, the report, the options; and the
reports of two research benchmarks in benchmarks/ (engines, backchannels)."""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import shutil

import numpy as np
import pytest

from benchmarks.engines import (
    CONFIG_LABELS,
    BargeIn,
    EngineRun,
    EnginesResult,
    ratio,
    render_engines,
    summarize_barge_ins,
)
from benchmarks.engines import to_json as to_engines_json
from localive.bench import speech
from localive.bench.accuracy import word_error_rate, word_errors, words
from localive.bench.cli import listen_levels, voice_runs
from localive.bench.llm import LlmResult, prompt_for
from localive.bench.load import LoadResult
from localive.bench.machine import MachineInfo, cpu_model
from localive.bench.report import BenchResults, render_markdown, table, to_json
from localive.bench.server import BenchError
from localive.bench.speech import room_noise, speech_bounds
from localive.bench.stats import Summary, percentile, spread, summarize
from localive.bench.voice import (
    ListenLevel,
    ListenResult,
    StageTimings,
    TurnWatch,
    VoiceResult,
    VoiceTurn,
    audio_message,
    chunked,
    parse_turn_timings,
    server_turn_taking,
    summarize_run,
    voice_setup,
)
from localive.cli import build_parser


def test_percentile_interpolates_between_closest_ranks() -> None:
    samples = [4.0, 1.0, 3.0, 2.0]  # unsorted on purpose
    assert percentile(samples, 0) == 1.0
    assert percentile(samples, 100) == 4.0
    assert percentile(samples, 50) == pytest.approx(2.5)
    assert percentile(samples, 99) == pytest.approx(3.97)
    assert percentile([7.0], 99) == 7.0


def test_percentile_of_1_to_100_matches_numpy_linear() -> None:
    samples = [float(i) for i in range(1, 101)]
    assert percentile(samples, 50) == pytest.approx(50.5)
    assert percentile(samples, 99) == pytest.approx(99.01)


@pytest.mark.parametrize("q", [-1.0, 100.5])
def test_percentile_rejects_out_of_range(q: float) -> None:
    with pytest.raises(ValueError):
        percentile([1.0, 2.0], q)


def test_percentile_and_summary_reject_no_samples() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        summarize([])


def test_summary_and_scaling() -> None:
    s = summarize([0.001, 0.002, 0.003])
    assert (s.n, s.min, s.max) == (3, 0.001, 0.003)
    assert s.mean == pytest.approx(0.002)
    ms = s.scaled(1000)
    assert ms.n == 3 and ms.p50 == pytest.approx(2.0) and ms.max == pytest.approx(3.0)


def test_cpu_model_from_proc_cpuinfo() -> None:
    x86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t: fpu\n"
    assert cpu_model(x86) == "AMD EPYC 7B13"
    arm = "processor\t: 0\nBogoMIPS\t: 50.00\nHardware\t: BCM2835\n"
    assert cpu_model(arm) == "BCM2835"
    assert cpu_model("") != ""


def test_table_pads_columns_and_right_aligns_numbers() -> None:
    lines = table(["metric", "value"], [["a", "1.0"], ["longer name", "22.5"]])
    assert lines[0] == "| metric      | value |"
    assert lines[1] == "|-------------|------:|"
    assert lines[3] == "| longer name |  22.5 |"
    assert len({len(line) for line in lines}) == 1


def _summary(value: float) -> Summary:
    return Summary(3, value, value * 2, value, value / 2, value * 2)


def _results() -> BenchResults:
    machine = MachineInfo("Test CPU", 2, 2, 4.0, "Linux", "3.11.7", "0.1.0", "2026-01-01 00:00 UTC",
                          {"websockets": "17.4"})
    load = LoadResult(
        sessions=50, turns_per_session=5, turn_latency_ms=_summary(20.0), first_text_ms=_summary(5.0),
        session_open_ms=_summary(10.0), turns_wall_s=0.5, turns_per_s=500.0, messages_received=5000,
        messages_per_s=10000.0, server_rss_baseline_mib=50.0, server_rss_idle_mib=54.0,
        server_rss_after_turns_mib=55.0, rss_per_session_kib=80.0, server_cpu_per_open_ms=1.0,
        server_cpu_per_turn_ms=0.5, server_cpu_per_session_ms=3.5, server_cpu_busy_pct=90.0,
        client_cpu_per_turn_ms=0.4, background_cpu_pct=0.5, steal_pct=0.0,
    )
    llm = LlmResult(
        model="qwen", repeats=3, max_tokens=32, prompt_tokens=42, server_ttft_ms=_summary(130.0),
        raw_ttft_ms=_summary(120.0), ttft_ratio=_summary(1.08), ttft_overhead_ms=_summary(10.0),
        ratio_of_medians=1.083, server_total_ms=_summary(650.0), raw_total_ms=_summary(620.0),
        identical_outputs=3, background_cpu_pct=0.2, steal_pct=0.0, noisy_repetitions=0,
    )
    return BenchResults(machine, load, llm)


def test_markdown_report_names_the_machine_and_the_ratio() -> None:
    text = render_markdown(_results())
    assert "Test CPU, 2 logical cores" in text
    assert "50 sessions × 5 turns" in text
    assert "server overhead ratio, server / raw TTFT" in text
    assert "Ratio of medians (server p50 / raw p50 TTFT): 1.083" in text
    assert "| turns/s (all sessions)" in text


def test_json_report_round_trips() -> None:
    data = json.loads(to_json(_results()))
    assert data["load"]["turn_latency_ms"]["p99"] == 40.0
    assert data["llm"]["ratio_of_medians"] == 1.083
    assert data["machine"]["logical_cores"] == 2


def test_each_llm_repetition_gets_a_new_prompt() -> None:
    assert len({prompt_for(i) for i in range(10)}) == 10


def test_bench_options_defaults_and_bounds(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["bench"])
    assert (args.sessions, args.turns, args.llm, args.repeats, args.json, args.output) == (50, 5, False, 10, False,
                                                                                           None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--sessions", "0"])
    assert "must be between 1 and 1000" in capsys.readouterr().err


# --- the voice benchmark's pure helpers ----------------------------------------------------------------------

_LOG = """\
2026-11-25 20:03:18,846 INFO localive.session: turn timings session=15457ed53776f1a5 turn=1 asr_done_ms=102.7 \
llm_first_token_ms=171.2 first_output_ms=387.6 asr_rtf=0.052 tts_rtf=0.064
2026-11-25 20:03:19,001 INFO localive.access: 127.0.0.1:50524 "WS /ws/..." session=15457ed53776f1a5 close=1000
2026-11-25 20:03:21,254 INFO localive.session: turn timings session=22125a967ede1663 turn=2 asr_done_ms=- \
llm_first_token_ms=12.5 first_output_ms=30.0 asr_rtf=- tts_rtf=-
2026-11-25 20:03:22,000 INFO localive.session: turn timings session=22125a967ede1663 turn=3 asr_done_ms=1.0 \
llm_first_token_ms=2.0 first_output_ms=3.0 asr_rtf=0.1 tts_rtf=0.2
"""


def test_turn_timings_are_parsed_from_the_server_log_by_session() -> None:
    found = parse_turn_timings(_LOG)
    assert set(found) == {"15457ed53776f1a5", "22125a967ede1663"}
    assert found["15457ed53776f1a5"] == [(1, StageTimings(102.7, 171.2, 387.6, 0.052, 0.064))]
    second = found["22125a967ede1663"]
    assert [turn for turn, _ in second] == [2, 3]
    assert second[0][1] == StageTimings(None, 12.5, 30.0, None, None)  # "-": not measured
    assert parse_turn_timings("no timings here\n") == {}


def test_spread_reports_p50_and_p90() -> None:
    s = spread([float(i) for i in range(1, 11)])
    assert (s.n, s.min, s.max) == (10, 1.0, 10.0)
    assert s.p50 == pytest.approx(5.5)
    assert s.p90 == pytest.approx(9.1)
    with pytest.raises(ValueError):
        spread([])


def test_speech_bounds_ignore_silence_and_noise_around_the_words() -> None:
    rate = 16000
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype("<i2").tobytes()
    pcm = b"\0\0" * (rate // 2) + tone + b"\0\0" * (rate // 4)
    start, end = speech_bounds(pcm)
    assert start == pytest.approx(0.5, abs=0.011)
    assert end == pytest.approx(1.5, abs=0.011)
    noise = np.frombuffer(room_noise(1.0, dbfs=-60.0), dtype="<i2").astype(np.float64) / 32768
    assert len(noise) == rate
    assert 20 * np.log10(np.sqrt(np.mean(noise**2))) == pytest.approx(-60.0, abs=1.0)


def test_missing_speech_tools_fail_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "sox" else f"/usr/bin/{name}")
    with pytest.raises(BenchError) as caught:
        speech.require_tools()
    assert "sox" in str(caught.value) and "espeak-ng" in str(caught.value) and "\n" not in str(caught.value)


def test_voice_setup_and_audio_messages() -> None:
    manual = voice_setup("Kore", manual=True, silence_ms=500)["setup"]
    assert manual["realtimeInputConfig"]["automaticActivityDetection"] == {"disabled": True}
    assert manual["generationConfig"]["responseModalities"] == ["AUDIO"]
    assert manual["generationConfig"]["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"]["voiceName"] == "Kore"
    auto = voice_setup("Puck", manual=False, silence_ms=700)["setup"]
    assert auto["realtimeInputConfig"]["automaticActivityDetection"] == {"silenceDurationMs": 700}
    default = voice_setup("Puck", manual=False, silence_ms=None)["setup"]
    assert "realtimeInputConfig" not in default  # the server's default turn detection, as the SDKs send it
    assert default["generationConfig"] == auto["generationConfig"]
    blob = json.loads(audio_message(b"\1\0\2\0"))["realtimeInput"]["audio"]
    assert blob["mimeType"] == "audio/pcm;rate=16000" and base64.b64decode(blob["data"]) == b"\1\0\2\0"
    assert [len(c) for c in chunked(b"\0" * 1500, 20)] == [640, 640, 220]  # 20 ms = 320 samples


def test_turn_watch_notes_first_audio_transcripts_and_the_first_clause() -> None:
    def audio(n: int) -> dict[str, object]:
        data = base64.b64encode(b"\0" * n).decode()
        return {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000",
                                                                           "data": data}}]}}}

    watch = TurnWatch()
    assert not watch.see(1.0, {"setupComplete": {}})
    assert not watch.see(1.1, {"serverContent": {"inputTranscription": {"text": "What is two plus two?"}}})
    assert not watch.see(1.2, {"serverContent": {"outputTranscription": {"text": "Two plus two "}}})
    assert not watch.see(1.3, audio(9600))
    assert not watch.see(1.4, audio(2400))
    assert not watch.see(1.5, {"serverContent": {"outputTranscription": {"text": "is four. "}}})
    assert not watch.see(1.6, audio(4800))
    assert watch.see(1.7, {"serverContent": {"generationComplete": True}})
    assert (watch.first_audio_at, watch.generation_complete_at) == (1.3, 1.7)
    assert watch.audio_bytes == 16800
    assert watch.first_clause_audio_s == pytest.approx(12000 / 2 / 24000)
    assert "".join(watch.heard) == "What is two plus two?"
    assert TurnWatch().see(0.0, {"serverContent": {"turnComplete": True}})  # an interrupted turn ends too


def test_words_compare_transcripts_without_case_or_punctuation() -> None:
    assert words("What is the capital of France?") == words("what is the capital of france")
    assert words("It's 7 days.") == ["it's", "7", "days"]


def test_word_errors_and_the_rate_over_a_run() -> None:
    assert word_errors("What is the capital of France?", "what is the capital of france") == 0
    assert word_errors("What is the capital of France?", "What is the capital on France?") == 1  # substitution
    assert word_errors("What is two plus two?", "What is two plus") == 1  # deletion
    assert word_errors("What is two plus two?", "So what is two plus two?") == 1  # insertion
    assert word_errors("How many legs?", "") == 3
    # over the run: all errors over all spoken words (6 + 4 words, 1 + 2 errors), not a mean of the turns' rates
    rate = word_error_rate([("What is the capital of France?", "What is the capital on France?"),
                            ("What do bees make?", "What do we?")])
    assert rate == pytest.approx(3 / 10)
    assert word_error_rate([]) == 0.0


_SERVER_LOG = """\
localive: voice: embedded (Silero VAD, Whisper base, hibari/piper)
localive: turn-taking: semantic (Smart Turn v3.2) for emulator, native-audio models; silence only for the others
2026-11-25 20:03:18,846 INFO localive.session: turn timings session=1 turn=1 asr_done_ms=1.0
"""


def test_the_servers_turn_taking_is_read_from_its_log() -> None:
    assert server_turn_taking(_SERVER_LOG).startswith("semantic (Smart Turn v3.2) for emulator, native-audio")
    assert server_turn_taking("localive: turn-taking: silence only (silenceDurationMs)\n") == \
        "silence only (silenceDurationMs)"
    assert server_turn_taking("no such line\n") == ""


def _voice_result() -> VoiceResult:
    turns = [VoiceTurn(question="What is two plus two?", session_id=f"s{i}", speech_s=1.5,
                       first_audio_ms=400.0 + i, generation_ms=900.0, response_audio_s=2.0,
                       heard="What is two plus two?", said="Two plus two is four.",
                       first_clause="Two plus two is four.", first_clause_audio_s=1.0,
                       stages=StageTimings(100.0, 180.0, 390.0 + i, 0.05, 0.1))
             for i in range(3)]
    manual = summarize_run("manual", "Puck", "joe", None, 20, turns)
    default = summarize_run("default", "Puck", "joe", None, 20, [
        dataclasses.replace(t, first_audio_ms=900.0 + i, heard="What is two plus?",
                            stages=StageTimings(100.0, 180.0, 390.0, 0.05, 0.1) if i < 2 else None)
        for i, t in enumerate(turns)])
    default = dataclasses.replace(default, ended_at_pause=1)  # as if one of the two timed turns waited 2 s
    auto = summarize_run("silence", "Puck", "joe", 500, 20, turns)
    levels = [ListenLevel(sessions=1, backlog_ms=spread([3.0]), send_late_p99_ms=1.0, server_cpu_pct=5.0,
                          bench_cpu_pct=2.0, server_rss_mib=600.0, streamed_s=10.0,
                          probe_first_audio_ms=[420.0, 430.0],
                          probe_llm_first_token_ms=[180.0, 185.0], unexpected_messages=0, keeps_up=True,
                          client_limited=False),
              ListenLevel(sessions=80, backlog_ms=spread([300.0, 600.0]), send_late_p99_ms=8.0,
                          server_cpu_pct=120.0, bench_cpu_pct=80.0, server_rss_mib=1300.0,
                          streamed_s=30.0,
                          probe_first_audio_ms=[1500.0, None], probe_llm_first_token_ms=[500.0, None],
                          unexpected_messages=0, keeps_up=False, client_limited=False)]
    listening = ListenResult(chunk_ms=20, lag_limit_ms=200.0, levels=levels, max_sessions_keeping_up=1,
                             fell_behind_at=80)
    return VoiceResult(model="gemini-2.5-flash-preview-native-audio-dialog", max_tokens=48, chunk_ms=20,
                       questions=3, runs=[manual, default, auto], listening=listening, background_cpu_pct=0.1,
                       steal_pct=0.0, turn_taking=server_turn_taking(_SERVER_LOG))


def test_voice_run_summary_splits_the_first_clause() -> None:
    run = _voice_result().runs[0]
    assert run.first_audio_ms.p50 == pytest.approx(401.0)
    assert run.outside_server_turn_ms is not None and run.first_clause_tts_ms is not None
    assert run.first_clause_wait_ms is not None
    assert run.outside_server_turn_ms.p50 == pytest.approx(10.0)  # client 400+i − server 390+i
    assert run.first_clause_tts_ms.p50 == pytest.approx(100.0)  # 1 s of audio × RTF 0.1
    assert run.first_clause_wait_ms.p50 == pytest.approx(391.0 - 180.0 - 100.0)
    assert run.exact_transcripts == 3 and run.first_clause_words_mean == 5.0
    assert run.word_error_rate == 0.0 and run.ended_at_pause is None  # manual: no end-of-turn decision


def _stage_turn(first_audio_ms: float, first_output_ms: float | None) -> VoiceTurn:
    stages = None if first_output_ms is None else StageTimings(100.0, 180.0, first_output_ms, 0.05, 0.1)
    return VoiceTurn(question="What is two plus two?", session_id="s", speech_s=1.5, first_audio_ms=first_audio_ms,
                     generation_ms=first_audio_ms + 500, response_audio_s=2.0, heard="What is two plus two",
                     said="Four.", first_clause="Four.", first_clause_audio_s=0.5, stages=stages)


def test_default_run_counts_turns_the_end_of_turn_model_ended_at_the_pause() -> None:
    # outside = client first audio − server first output: ~0.4 s after the pause, ~2.1 s after the long silence
    turns = [_stage_turn(800.0, 400.0), _stage_turn(2500.0, 400.0), _stage_turn(850.0, 420.0),
             _stage_turn(900.0, None)]  # no server timings: cannot tell
    run = summarize_run("default", "Puck", "joe", None, 20, turns)
    assert run.ended_at_pause == 2
    assert run.outside_server_turn_ms is not None and run.outside_server_turn_ms.n == 3
    assert run.first_audio_ms.n == 4 and run.exact_transcripts == 4 and run.word_error_rate == 0.0
    assert summarize_run("silence", "Puck", "joe", 500, 20, turns).ended_at_pause is None
    assert summarize_run("default", "Puck", "joe", None, 20, [_stage_turn(900.0, None)]).ended_at_pause is None


def test_voice_report_renders_targets_stages_and_capacity() -> None:
    results = BenchResults(_results().machine, _results().load, None, _voice_result())
    text = render_markdown(results)
    assert "### Voice latency: gemini-2.5-flash-preview-native-audio-dialog" in text
    assert "| manual, Puck (joe) " in text and "automatic, silence 500 ms, Puck (joe)" in text
    assert "| default turn detection, Puck (joe) " in text
    assert "yes" in text and "n/a (includes the silence)" in text
    latency_row = next(line for line in text.splitlines() if line.startswith("| default turn detection"))
    assert latency_row.split("|")[2].strip() == "901.0" and latency_row.split("|")[-2].strip() == "no"  # > 600 ms
    assert "100 / 100" in text  # ASR done p50 / p90
    quality = [line for line in text.splitlines() if "| exact transcripts |" in line]
    assert quality and "WER" in quality[0] and "turns ended by" in quality[0]
    quality_rows = [[c.strip() for c in line.split("|")[1:-1]]
                    for line in text.splitlines()[text.splitlines().index(quality[0]) + 2:][:3]]
    assert [row[-3:] for row in quality_rows] == [
        ["3/3", "0.0%", "activityEnd"],
        ["0/3", "20.0%", "end-of-turn model at the pause 1/2"],  # "What is two plus?": 1 of 5 words missing
        ["3/3", "0.0%", "500 ms of silence"],
    ]
    assert "The server's default turn-taking (its log): semantic (Smart Turn v3.2)" in text
    silence_only = dataclasses.replace(_voice_result(), turn_taking="silence only (silenceDurationMs)")
    assert "the server's silence window" in render_markdown(BenchResults(results.machine, results.load, None,
                                                                         silence_only))
    assert "fell behind at 80 sessions; kept up with 1" in text
    assert "1,500, failed" in text
    data = json.loads(to_json(results))
    assert data["voice"]["runs"][0]["first_audio_ms"]["p90"] == pytest.approx(401.8)
    assert [r["mode"] for r in data["voice"]["runs"]] == ["manual", "default", "silence"]
    assert data["voice"]["runs"][1]["word_error_rate"] == pytest.approx(0.2)
    assert data["voice"]["runs"][1]["ended_at_pause"] == 1
    assert data["voice"]["listening"]["levels"][1]["probe_first_audio_ms"] == [1500.0, None]


def test_voice_options(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["bench"])
    assert (args.voice, args.voice_turns, args.voices, args.silence_ms, args.chunk_ms) == (False, 20, ["Puck", "Kore"],
                                                                                          500, 20)
    assert args.listen == [10, 20, 40, 60, 80, 120]
    assert args.voice_runs == ["manual", "default", "silence"]
    args = build_parser().parse_args(["bench", "--voice", "--voice-runs", "silence, Default"])
    assert args.voice_runs == ["default", "silence"]  # always in the order they run
    assert voice_runs("manual") == ["manual"]
    for bad_runs in ("", "manual,auto", ","):
        with pytest.raises(argparse.ArgumentTypeError):
            voice_runs(bad_runs)
    args = build_parser().parse_args(["bench", "--voice", "--voices", "kore, PUCK,Kore", "--listen", "none"])
    assert args.voice and args.voices == ["Kore", "Puck"] and args.listen == []
    assert listen_levels("0,5,10") == [0, 5, 10]
    for bad in ("5,1", "1,1", "x", "1,9999"):
        with pytest.raises(argparse.ArgumentTypeError):
            listen_levels(bad)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--voices", "Nobody"])
    assert "unknown voice" in capsys.readouterr().err


def test_backchannel_report_counts_right_outcomes_and_names_what_was_heard_instead() -> None:
    from benchmarks.backchannels import Trial, report

    trials = [
        Trial("Kore", "Yeah.", True, "Yeah.", "the"),  # right with the prior, wrong without
        Trial("Kore", "Mm-hm.", True, "Mama.", "Mama."),  # a word: interrupts, wrongly
        Trial("Kore", "Wait.", False, "Wait.", "Wait."),
        Trial("Kore", "Huh?", False, "Yeah.", "Huh?"),  # a listener's word with the prior, a request without
    ]
    assert [t.right for t in trials] == [True, False, True, False]
    assert [t.right_plain for t in trials] == [False, False, True, True]
    text = report(trials, ["Kore"], 1.0)
    assert "| backchannels let the answer go on | 1/2 | 0/2 |" in text
    assert "| requests interrupt | 1/2 | 2/2 |" in text
    assert "| Mm-hm. | 0/1 | Kore: 'Mama.' |" in text


def _engine_run(key: str, first_audio_ms: float) -> EngineRun:
    turns = [VoiceTurn(question="What is two plus two?", session_id=f"{key}{i}", speech_s=1.5,
                       first_audio_ms=first_audio_ms + i, generation_ms=2000.0, response_audio_s=2.0,
                       heard="What is two plus two?", said="Four.", first_clause="Four.", first_clause_audio_s=0.5,
                       stages=StageTimings(200.0, 400.0, first_audio_ms - 5 + i, 0.1, 0.2))
             for i in range(3)]
    return EngineRun(key, CONFIG_LABELS[key], "(defaults)", summarize_run("manual", "Puck", "joe", None, 20, turns))


def test_engines_report_gives_ratios_stages_and_barge_in_verdicts() -> None:
    runs = [_engine_run("embedded", 1000.0), _engine_run("remote-llm", 1100.0), _engine_run("all-remote", 1500.0)]
    assert ratio(runs[1], runs[0]) == pytest.approx(1101.0 / 1001.0)
    barge = summarize_barge_ins([BargeIn(50.0, 5.0, False), BargeIn(70.0, 4.0, False), BargeIn(None, None, True),
                                 BargeIn(None, 6.0, False)])
    assert barge.stopped_ms is not None and barge.stopped_ms.p50 == pytest.approx(60.0)
    assert (barge.finished_before, barge.not_seen) == (1, 1)
    result = EnginesResult(turns=3, chunk_ms=20, max_tokens=48, voice="Puck", runs=runs, same_answers=3,
                           barge_in=barge, background_cpu_pct=25.0, steal_pct=0.0, skipped=[])
    machine = _results().machine
    text = render_engines(result, machine, "python -m benchmarks.engines")
    assert "Command: `python -m benchmarks.engines`" in text and "Test CPU, 2 logical cores" in text
    assert "|           1.10 |     yes |" in text  # remote LLM: 1,101 / 1,001 at p50, within 1.15×
    assert "|           1.50 |       - |" in text
    assert "| remote-llm    | 200 / 200 | 200 / 200 |       400 / 400 |    596 / 597 |" in text  # LLM TTFT = 400 − 200
    assert "| activityStart → backend stopped generating |  60 |" in text and "|          yes |" in text
    assert "1 answers complete before the barge-in; 1 with no stop line" in text
    assert "a noisy machine" in text
    assert json.loads(to_engines_json(result, machine, "x"))["engines"]["runs"][1]["key"] == "remote-llm"
    with pytest.raises(SystemExit):  # a research benchmark, not an option of `localive bench`
        build_parser().parse_args(["bench", "--engines"])


def test_the_pause_start_report_counts_errors_and_disagreements() -> None:
    import numpy as np

    from benchmarks.pause_start import Results, _with_pause, report

    results = Results({"pause start + 32 ms": [("What do bees make?", "What do these make?"),
                                               ("Turn on the radio.", "turn on the radio")]},
                      [("a", 0.9, 0.8), ("b", 0.6, 0.4)])
    text = report(results)
    assert "| pause start + 32 ms | 2 | 12.5 % | 1 |" in text  # 1 word of 8; case and punctuation do not count
    assert "1 of 2 decisions agree" in text and "disagrees: 'b': 0.600 at 200 ms, 0.400 at the start" in text
    with_pause = np.frombuffer(_with_pause(np.ones(1600, dtype="<i2"), 0.05, 0.5), dtype="<i2")
    assert len(with_pause) == 1600 + 8000 and not with_pause[800:8800].any() and with_pause[8800:].all()


def test_the_admission_report_meets_only_with_refusals_a_kept_p90_and_no_backlog() -> None:
    from benchmarks.admission import Result, report

    def result(**changes: object) -> Result:
        fields: dict[str, object] = dict(
            attempts=400, admitted=30, refused_1013=370, failed_otherwise=0, first_refused_at=31, idle_ms=[300.0],
            loaded_ms=[400.0], idle_p50=250.0, idle_p90=300.0, loaded_p50=350.0, loaded_p90=400.0, p90_ratio=1.33,
            backlog_p50_ms=5.0, backlog_max_ms=9.0, server_cpu_pct=55.0, bench_cpu_pct=15.0,
            refusal_reasons=["serving work 0.31"], machine="a test machine")
        fields.update(changes)
        return Result(**fields)  # type: ignore[arg-type]

    text = report(result())
    assert "a test machine" in text and "| 400 | 30 | 370 | 0 | 31 |" in text and text.count("| yes |") == 1
    assert "| no |" in report(result(p90_ratio=1.6))  # the admitted sessions' latency was not kept
    assert "| no |" in report(result(refused_1013=0))  # nothing was refused: the excess got in
    assert "| no |" in report(result(backlog_max_ms=250.0))  # the admitted sessions fell behind


def test_the_relay_benchmark_reports_each_path_against_the_direct_one() -> None:
    from benchmarks.relay import report

    text = report({"direct": [0.002] * 10, "relay": [0.003] * 10, "replay": [0.001] * 10})
    rows = {line.split()[0]: line.split() for line in text.splitlines()[1:]}
    assert rows["direct"][1:] == ["2.00", "2.00", "1.00x"]
    assert rows["relay"][3] == "1.50x" and rows["replay"][3] == "0.50x"
