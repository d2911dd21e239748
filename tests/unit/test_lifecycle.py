"""The turn lifecycle's table (session/lifecycle.py): its shape, the diagram docs/architecture.md shows of it, and
the moves a session makes (the fuzz test, tests/unit/test_session_fuzz.py, checks those of 2,000 sessions)."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import pytest

from localive.engines.llm.emulator import EmulatorLLM, EmulatorScript
from localive.models.registry import ModelRegistry
from localive.session import lifecycle
from localive.session.engines import Engines
from localive.session.lifecycle import BETWEEN_TURNS, IN_TURN, TRANSITIONS, Lifecycle, Phase, Trigger
from localive.session.live import LiveSession
from localive.testing.session import drain_turn, send

ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
SETUP = {"setup": {"model": "gemini-2.0-flash-live-001", "generationConfig": {"responseModalities": ["TEXT"]}}}


def test_the_documented_diagram_is_the_table() -> None:
    section = ARCHITECTURE.read_text().split("## The turn lifecycle", 1)[1]
    diagram = re.search(r"```mermaid\n(.*?)```", section, re.DOTALL)
    assert diagram is not None
    assert diagram.group(1) == lifecycle.mermaid()


def test_a_turn_starts_only_between_turns_and_every_turn_phase_can_be_interrupted() -> None:
    starts = {phase for (phase, trigger) in TRANSITIONS if trigger is Trigger.TURN_STARTED}
    assert starts == set(BETWEEN_TURNS)
    for phase in IN_TURN:
        assert TRANSITIONS[(phase, Trigger.INTERRUPT)] is Phase.INTERRUPTED
    assert set(IN_TURN) | set(BETWEEN_TURNS) == set(Phase)


def test_every_phase_is_reachable_from_idle() -> None:
    reached, frontier = {Phase.IDLE}, [Phase.IDLE]
    while frontier:
        phase = frontier.pop()
        for (start, _), end in TRANSITIONS.items():
            if start is phase and end not in reached:
                reached.add(end)
                frontier.append(end)
    assert reached == set(Phase)


def test_a_move_the_table_does_not_allow_is_refused_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    life = Lifecycle("s1")
    with caplog.at_level(logging.ERROR, logger="localive.session"):
        life.move(Trigger.PLAYED_OUT)
    assert life.phase is Phase.IDLE
    assert "not a transition" in caplog.text


async def test_a_session_moves_through_the_table() -> None:
    script = EmulatorScript.from_dict({"reply": [{"match": "slow", "text": "a b c d e f g h i j", "delay_ms": 20}]})
    llm = EmulatorLLM(script)
    session = LiveSession(registry=ModelRegistry(), engines=Engines(llm_for=lambda entry: llm), session_id="s1")
    moves: list[tuple[Phase, Trigger, Phase | None]] = []
    with lifecycle.observing(lambda start, trigger, end: moves.append((start, trigger, end))):
        await send(session, SETUP)
        await session.outbox.get()
        await send(session, {"clientContent": {"turns": [{"parts": [{"text": "hi"}]}], "turnComplete": True}})
        await drain_turn(session)
        await send(session, {"clientContent": {"turns": [{"parts": [{"text": "slow"}]}], "turnComplete": True}})
        await session.outbox.get()  # the first words: the model is generating
        await send(session, {"clientContent": {"turns": [{"parts": [{"text": "stop"}]}], "turnComplete": False}})
        await drain_turn(session)
        await asyncio.sleep(0)
        await session.aclose()
    assert [(start.value, trigger.value, end and end.value) for start, trigger, end in moves] == [
        ("idle", "turn started", "transcribing"), ("transcribing", "transcribed", "generating"),
        ("generating", "generation complete", "playing_out"), ("playing_out", "played out", "complete"),
        ("complete", "turn started", "transcribing"), ("transcribing", "transcribed", "generating"),
        ("generating", "interrupt", "interrupted"),
    ]
