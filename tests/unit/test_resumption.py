"""Session resumption in the session state machine: handles, restored history, refusals (emulator, no sockets)."""

from __future__ import annotations

import asyncio

import pytest

from localive.clock import VirtualClock
from localive.engines.llm.emulator import EmulatorLLM
from localive.models.registry import ModelRegistry
from localive.protocol.errors import Close, PolicyViolation
from localive.session.engines import Engines
from localive.session.live import LiveSession
from localive.stores.sqlite import SqliteStore
from localive.testing.session import send


def make_session(store: SqliteStore, principal: str = "key-a") -> LiveSession:
    llm = EmulatorLLM()
    return LiveSession(registry=ModelRegistry(), engines=Engines(llm_for=lambda entry: llm), session_id="s",
                       principal=principal, store=store)


def setup(handle: str | None = None, **resumption: object) -> dict:
    config = {**({"handle": handle} if handle else {}), **resumption}
    return {"setup": {"model": "gemini-2.0-flash-live-001", "generationConfig": {"responseModalities": ["TEXT"]},
                      "sessionResumption": config}}


async def until(session: LiveSession, predicate: object) -> list[dict]:
    messages = []
    while True:
        message = await asyncio.wait_for(session.outbox.get(), 5)
        assert not isinstance(message, Close), message
        messages.append(message)
        if predicate(message):  # type: ignore[operator]
            return messages


def turn_complete(message: dict) -> bool:
    return bool(message.get("serverContent", {}).get("turnComplete"))


async def say(session: LiveSession, text: str) -> list[dict]:
    await send(session, {"clientContent": {"turns": [{"role": "user", "parts": [{"text": text}]}],
                                           "turnComplete": True}})
    return await until(session, turn_complete)


def handles(messages: list[dict]) -> list[str]:
    return [m["sessionResumptionUpdate"]["newHandle"] for m in messages
            if m.get("sessionResumptionUpdate", {}).get("resumable")]


async def test_updates_come_at_resumable_points_and_a_handle_restores_the_conversation() -> None:
    store = SqliteStore(":memory:")
    first = make_session(store)
    await send(first, setup())
    opening = await until(first, lambda m: "sessionResumptionUpdate" in m)
    assert "setupComplete" in opening[0] and handles(opening)
    messages = await say(first, "remember the word teal")
    updates = [m["sessionResumptionUpdate"] for m in messages if "sessionResumptionUpdate" in m]
    assert updates[0] == {"newHandle": "", "resumable": False}  # while the model answers
    assert updates[-1]["resumable"] and len(updates[-1]["newHandle"]) >= 32  # ≥ 128 bits, url-safe
    kinds = [next(iter(m.get("serverContent", m))) for m in messages]
    assert kinds.index("sessionResumptionUpdate", 1) < kinds.index("generationComplete")
    handle = handles(messages)[-1]
    await first.aclose()

    second = make_session(store)
    await send(second, setup(handle))
    await until(second, lambda m: "sessionResumptionUpdate" in m)
    assert [(t.role, t.text) for t in second.history] == [("user", "remember the word teal"),
                                                          ("model", "You said: remember the word teal")]
    await say(second, "and now?")
    assert len(second.history) == 4
    await second.aclose()


async def test_transparent_mode_reports_the_last_consumed_message() -> None:
    session = make_session(SqliteStore(":memory:"))
    await send(session, setup(transparent=True))
    opening = await until(session, lambda m: "sessionResumptionUpdate" in m)
    assert opening[-1]["sessionResumptionUpdate"]["lastConsumedClientMessageIndex"] == "0"
    messages = await say(session, "hi")
    last = [m for m in messages if m.get("sessionResumptionUpdate", {}).get("resumable")][-1]
    assert last["sessionResumptionUpdate"]["lastConsumedClientMessageIndex"] == "1"
    await session.aclose()


@pytest.mark.parametrize("case", ["unknown", "other key", "expired"])
async def test_bad_handles_are_refused(case: str) -> None:
    clock = VirtualClock(1000.0)
    store = SqliteStore(":memory:", ttl_s=60, clock=clock)
    first = make_session(store)
    await send(first, setup())
    handle = handles(await until(first, lambda m: "sessionResumptionUpdate" in m))[0]
    await first.aclose()
    principal = "key-b" if case == "other key" else "key-a"
    if case == "unknown":
        handle = handle[:-4] + "AAAA"
    if case == "expired":
        clock.now += 61
    second = make_session(store, principal)
    with pytest.raises(PolicyViolation, match="invalid or has expired"):
        await send(second, setup(handle))
    await second.aclose()  # as the server does after the close
