"""Draining a server (SIGTERM): each open session gets `goAway`, a fresh resumption handle, and a 1001 close at the
drain's deadline; new sessions are refused with 1013. In virtual time, with the session store in memory."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from localive.clock import VirtualClock
from localive.engines.llm.emulator import EmulatorLLM, EmulatorScript
from localive.engines.llm.pool import LLMPool
from localive.models.registry import ModelRegistry
from localive.protocol.errors import GOING_AWAY, Close, Overloaded
from localive.server.state import ServerSettings, ServerState
from localive.session.engines import Engines
from localive.session.live import LiveSession
from localive.stores.sqlite import SqliteStore
from localive.testing.session import send

MODEL = "gemini-2.0-flash-live-001"


def make_session(clock: VirtualClock, store: SqliteStore, delay_ms: float = 0.0) -> LiveSession:
    llm = EmulatorLLM(EmulatorScript(delay_ms=delay_ms), clock=clock)
    return LiveSession(registry=ModelRegistry(), engines=Engines(llm_for=lambda entry: llm), session_id="s",
                       clock=clock, store=store)


def setup(**fields: object) -> dict[str, Any]:
    return {"setup": {"model": MODEL, "generationConfig": {"responseModalities": ["TEXT"]}, **fields}}


def user_turn(text: str) -> dict[str, Any]:
    return {"clientContent": {"turns": [{"role": "user", "parts": [{"text": text}]}], "turnComplete": True}}


async def next_out(session: LiveSession) -> Any:
    return await asyncio.wait_for(session.outbox.get(), 5)


async def until(session: LiveSession, key: str) -> list[Any]:
    """Messages up to and including the first with `key` (or a Close)."""
    seen = []
    while True:
        message = await next_out(session)
        seen.append(message)
        if isinstance(message, Close) or key in message or key in message.get("serverContent", {}):
            return seen


async def until_handle(session: LiveSession) -> list[Any]:
    """Messages up to and including the next resumable handle (a turn starts with a non-resumable update)."""
    seen = []
    while True:
        seen += await until(session, "sessionResumptionUpdate")
        if isinstance(seen[-1], Close) or seen[-1]["sessionResumptionUpdate"]["resumable"]:
            return seen


async def test_an_idle_session_gets_a_fresh_handle_then_goaway_then_1001_at_the_deadline() -> None:
    clock = VirtualClock()
    store = SqliteStore(":memory:", clock=clock)
    session = make_session(clock, store)
    await send(session, setup(sessionResumption={}))
    await until(session, "sessionResumptionUpdate")
    await send(session, user_turn("remember the word tangerine"))
    await until_handle(session)  # the turn's own checkpoint
    await until(session, "turnComplete")
    session.go_away(clock.time() + 20)
    update = await next_out(session)
    assert update["sessionResumptionUpdate"]["resumable"] is True
    fresh = update["sessionResumptionUpdate"]["newHandle"]
    assert await next_out(session) == {"goAway": {"timeLeft": "20s"}}
    await clock.advance(19)
    assert len(session.outbox) == 0  # the client may still talk until the deadline
    await clock.advance(1)
    close = await next_out(session)
    assert isinstance(close, Close) and close.code == GOING_AWAY
    await session.aclose()
    # the fresh handle resumes the conversation elsewhere
    other = make_session(clock, store)
    await send(other, setup(sessionResumption={"handle": fresh}))
    await until(other, "setupComplete")
    assert "tangerine" in " ".join(entry.text for entry in other.history)
    await other.aclose()
    store.close()


async def test_a_session_in_a_turn_gets_goaway_now_and_its_handle_when_the_turn_ends() -> None:
    clock = VirtualClock()
    store = SqliteStore(":memory:", clock=clock)
    session = make_session(clock, store, delay_ms=100)  # the emulator's words come 100 ms apart
    await send(session, setup(sessionResumption={}))
    await until(session, "sessionResumptionUpdate")
    await send(session, user_turn("one two three four five six"))
    await clock.advance(0.15)  # the answer has begun
    session.go_away(clock.time() + 30)
    seen = await until(session, "goAway")
    # no handle mid-turn (it would miss the turn): only the turn's "not resumable now"
    assert not any(m.get("sessionResumptionUpdate", {}).get("resumable") for m in seen)
    await clock.advance(2)  # the answer ends
    seen = await until_handle(session)
    assert [m for m in seen if "serverContent" in m][-1]["serverContent"]["modelTurn"]["parts"][0]["text"] == "six"
    await session.aclose()
    store.close()


async def test_a_drain_that_begins_before_the_setup_is_applied_still_reaches_the_session() -> None:
    clock = VirtualClock()
    store = SqliteStore(":memory:", clock=clock)
    session = make_session(clock, store)
    session.go_away(clock.time() + 10)  # posted before the setup: applied once the setup is
    await send(session, setup())
    seen = await until(session, "goAway")
    assert "setupComplete" in seen[0]
    assert seen[-1] == {"goAway": {"timeLeft": "10s"}}
    await clock.advance(10)
    assert (await next_out(session)).code == GOING_AWAY
    await session.aclose()
    store.close()


async def test_the_server_refuses_new_sessions_while_draining_and_returns_once_the_open_ones_left() -> None:
    clock = VirtualClock()
    store = SqliteStore(":memory:", clock=clock)
    state = ServerState(settings=ServerSettings(), registry=ModelRegistry(), llms=LLMPool(),
                        engines=Engines(llm_for=lambda entry: EmulatorLLM()), store=store, clock=clock)
    state.admit()
    session = make_session(clock, store)
    state.opened(session)
    await send(session, setup())
    await until(session, "setupComplete")
    drained = asyncio.create_task(state.drain(5))
    assert await next_out(session) == {"goAway": {"timeLeft": "5s"}}
    with pytest.raises(Overloaded) as refused:
        state.admit()
    assert refused.value.close_code == 1013 and "shutting down" in refused.value.reason
    assert not drained.done()
    await clock.advance(5)
    assert (await next_out(session)).code == GOING_AWAY
    await session.aclose()
    state.release(session)  # the transport does this when the connection ends
    await asyncio.wait_for(drained, 5)
    assert state.active_sessions == 0
    store.close()


async def test_a_drain_with_no_session_returns_at_once() -> None:
    state = ServerState(settings=ServerSettings(), registry=ModelRegistry(), llms=LLMPool(),
                        engines=Engines(llm_for=lambda entry: EmulatorLLM()))
    await asyncio.wait_for(state.drain(60), 1)
    assert state.draining
