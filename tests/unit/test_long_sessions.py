"""Context-window compression, the context limit, and connection lifetime with GoAway — in virtual time: half an
hour of a session's life runs in well under a second."""

from __future__ import annotations

import asyncio

from localive.clock import VirtualClock
from localive.engines.llm.emulator import EmulatorLLM, EmulatorScript
from localive.models.registry import ModelRegistry
from localive.protocol.errors import Close
from localive.session.engines import Engines
from localive.session.lifetime import DEADLINE_REASON, GEMINI_LIMITS, LOCAL_LIMITS, Limits
from localive.session.live import LiveSession
from localive.stores.sqlite import SqliteStore
from localive.testing.session import send


def make_session(*, context_tokens: int = 32768, limits: Limits = LOCAL_LIMITS, clock: VirtualClock | None = None,
                 store: SqliteStore | None = None) -> LiveSession:
    llm = EmulatorLLM(EmulatorScript(context_tokens=context_tokens))
    return LiveSession(registry=ModelRegistry(), engines=Engines(llm_for=lambda entry: llm), session_id="s",
                       limits=limits, clock=clock, store=store)


def setup(**fields: object) -> dict:
    return {"setup": {"model": "gemini-2.0-flash-live-001", "generationConfig": {"responseModalities": ["TEXT"],
                                                                                 "maxOutputTokens": 50},
                      **fields}}


async def turn(session: LiveSession, text: str) -> list[object]:
    await send(session, {"clientContent": {"turns": [{"role": "user", "parts": [{"text": text}]}],
                                           "turnComplete": True}})
    messages: list[object] = []
    while True:
        message = await asyncio.wait_for(session.outbox.get(), 5)
        messages.append(message)
        if isinstance(message, Close) or message.get("serverContent", {}).get("turnComplete"):
            return messages


async def test_compression_keeps_a_session_going_for_thousands_of_turns() -> None:
    session = make_session(context_tokens=600)
    await send(session, setup(contextWindowCompression={"triggerTokens": 400, "slidingWindow": {"targetTokens": 200}},
                              systemInstruction={"parts": [{"text": "Be brief."}]}))
    await session.outbox.get()
    longest = 0
    for i in range(2000):
        messages = await turn(session, f"message number {i} with a few more words in it")
        assert not any(isinstance(m, Close) for m in messages)
        longest = max(longest, len(session.history))
    assert longest < 60  # bounded: about 400 tokens of history, never the 4000 entries of 2000 turns
    assert session.history[-2].text == "message number 1999 with a few more words in it"
    assert session.history[0].role == "user"  # whole turns were dropped
    assert session.chat_messages()[0].text == "Be brief."  # the system instruction stays
    await session.aclose()


async def test_without_compression_a_full_context_ends_the_session_cleanly() -> None:
    session = make_session(context_tokens=600)
    await send(session, setup())
    await session.outbox.get()
    for i in range(200):
        messages = await turn(session, f"message number {i} with a few more words in it")
        if isinstance(messages[-1], Close):
            assert messages[-1].code == 1011 and "contextWindowCompression" in messages[-1].reason
            assert i > 5
            break
    else:
        raise AssertionError("the context never filled up")
    await session.aclose()


async def test_goaway_comes_before_the_connection_ends() -> None:
    clock = VirtualClock()
    session = make_session(limits=GEMINI_LIMITS, clock=clock)
    await send(session, setup(contextWindowCompression={}))  # compressed: only the 10-minute connection limit
    await session.outbox.get()
    await clock.advance(539)
    assert len(session.outbox) == 0
    await clock.advance(1)
    assert await asyncio.wait_for(session.outbox.get(), 5) == {"goAway": {"timeLeft": "60s"}}
    await clock.advance(59)
    assert len(session.outbox) == 0
    await clock.advance(1)
    assert await asyncio.wait_for(session.outbox.get(), 5) == Close(1011, DEADLINE_REASON)
    await session.aclose()


async def test_a_session_without_compression_ends_at_its_age_limit_even_across_resumptions() -> None:
    clock = VirtualClock()
    store = SqliteStore(":memory:", clock=clock)
    limits = Limits(max_connection_s=600, goaway_before_s=60, max_session_s=900)
    first = make_session(limits=limits, clock=clock, store=store)
    await send(first, setup(sessionResumption={}))
    await first.outbox.get()
    handle = (await first.outbox.get())["sessionResumptionUpdate"]["newHandle"]
    await clock.advance(540)
    assert await asyncio.wait_for(first.outbox.get(), 5) == {"goAway": {"timeLeft": "60s"}}
    await first.aclose()  # the client reconnects with its handle after the GoAway
    second = make_session(limits=limits, clock=clock, store=store)
    await send(second, setup(sessionResumption={"handle": handle}))
    await second.outbox.get()
    await second.outbox.get()
    await clock.advance(299)  # the new connection could last 600 s, but the session is 839 s old
    assert len(second.outbox) == 0
    await clock.advance(1)
    assert await asyncio.wait_for(second.outbox.get(), 5) == {"goAway": {"timeLeft": "60s"}}
    await second.aclose()


# --- half an hour in virtual time ----------------------------------------------------------------------------

async def connect(clock: VirtualClock, store: SqliteStore, handle: str | None, **fields: object) -> LiveSession:
    session = make_session(limits=GEMINI_LIMITS, clock=clock, store=store)
    await send(session, setup(sessionResumption={"handle": handle} if handle else {}, **fields))
    assert "setupComplete" in await session.outbox.get()
    return session


def newest_handle(messages: list[object], handle: str | None) -> str | None:
    for message in messages:
        update = message.get("sessionResumptionUpdate", {}) if isinstance(message, dict) else {}
        if update.get("resumable") and update.get("newHandle"):
            handle = update["newHandle"]
    return handle


async def talk_until_goaway(session: LiveSession, clock: VirtualClock, handle: str | None,
                            goaway_in: float) -> str | None:
    """A turn every virtual minute, the last one a minute before the goAway is due; then quiet until one second
    before it."""
    goaway_at = clock.now + goaway_in
    while True:
        messages = await turn(session, f"what time is it at {clock.now:.0f}")
        assert not any(isinstance(m, Close) or "goAway" in m for m in messages)  # type: ignore[operator]
        handle = newest_handle(messages, handle)
        if goaway_at - clock.now <= 60:
            break
        await clock.advance(60)
    await clock.advance(goaway_at - clock.now - 1)
    assert len(session.outbox) == 0
    return handle


async def test_half_an_hour_with_compression_over_three_connections() -> None:
    """GEMINI_LIMITS with contextWindowCompression: each 10-minute connection gets its goAway at 9 minutes and its
    close at 10, exactly; the client resumes each time, and the conversation lasts its 30 minutes."""
    clock = VirtualClock()
    started = clock.now
    store = SqliteStore(":memory:", clock=clock)
    handle: str | None = None
    for connection in range(3):
        session = await connect(clock, store, handle, contextWindowCompression={})
        assert clock.now - started == 600 * connection
        handle = await talk_until_goaway(session, clock, handle, 540)
        await clock.advance(1)
        assert await asyncio.wait_for(session.outbox.get(), 5) == {"goAway": {"timeLeft": "60s"}}
        assert clock.now - started == 600 * connection + 540
        await clock.advance(60 - 2**-10)
        assert len(session.outbox) == 0
        await clock.advance(2**-10)
        assert await asyncio.wait_for(session.outbox.get(), 5) == Close(1011, DEADLINE_REASON)
        await session.aclose()
    assert clock.now - started == 1800
    assert sum(1 for t in session.history if t.role == "user") == 27  # every turn of the half hour was kept


async def test_a_session_without_compression_is_cut_at_fifteen_minutes() -> None:
    clock = VirtualClock()
    started = clock.now
    store = SqliteStore(":memory:", clock=clock)
    first = await connect(clock, store, None)
    handle = await talk_until_goaway(first, clock, None, 540)
    await clock.advance(1)
    assert await asyncio.wait_for(first.outbox.get(), 5) == {"goAway": {"timeLeft": "60s"}}
    await clock.advance(60)
    assert await asyncio.wait_for(first.outbox.get(), 5) == Close(1011, DEADLINE_REASON)
    await first.aclose()
    second = await connect(clock, store, handle)  # a new 10-minute connection, in a session 10 minutes old
    await talk_until_goaway(second, clock, handle, 240)
    await clock.advance(1)
    assert await asyncio.wait_for(second.outbox.get(), 5) == {"goAway": {"timeLeft": "60s"}}
    assert clock.now - started == 840
    await clock.advance(60 - 2**-10)
    assert len(second.outbox) == 0
    await clock.advance(2**-10)
    assert await asyncio.wait_for(second.outbox.get(), 5) == Close(1011, DEADLINE_REASON)
    assert clock.now - started == 900
    await second.aclose()
