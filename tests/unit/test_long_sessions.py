"""Context-window compression, the context limit, and connection lifetime with GoAway — in virtual time."""

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
    store = SqliteStore(":memory:", clock=clock.time)
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
