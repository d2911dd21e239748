"""Pure helpers of `localive bench`: percentiles, summaries, CPU model parsing, the report, the options."""

from __future__ import annotations

import json

import pytest

from localive.bench.llm import LlmResult, prompt_for
from localive.bench.load import LoadResult
from localive.bench.machine import MachineInfo, cpu_model
from localive.bench.report import BenchResults, render_markdown, table, to_json
from localive.bench.stats import Summary, percentile, summarize
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
    assert (ms.n, ms.p50, ms.max) == (3, pytest.approx(2.0), pytest.approx(3.0))


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
