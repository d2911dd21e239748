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
from localive.bench.stats import Summary


@dataclass(frozen=True)
class BenchResults:
    machine: MachineInfo
    load: LoadResult
    llm: LlmResult | None = None


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


def to_json(results: BenchResults) -> str:
    return json.dumps(dataclasses.asdict(results), indent=2)
