"""The session state machine with the emulator model and no sockets."""

from __future__ import annotations

import asyncio

import pytest

from localive.engines.llm.emulator import EmulatorLLM, EmulatorScript
from localive.models.registry import ModelRegistry
from localive.protocol.errors import InvalidArgument, NotFound, Unimplemented
from localive.session.engines import Engines
from localive.session.live import LiveSession
from localive.testing.session import drain_turn, send

SCRIPT = EmulatorScript.from_dict({"reply": [
    {"match": "slow", "text": "a b c d e f g h i j", "delay_ms": 20},
]})


def make_session() -> LiveSession:
    llm = EmulatorLLM(SCRIPT)
    return LiveSession(registry=ModelRegistry(), engines=Engines(llm_for=lambda entry: llm), session_id="s1")


SETUP = {"setup": {"model": "models/gemini-2.0-flash-live-001", "generationConfig": {"responseModalities": ["TEXT"]}}}


def text_of(messages: list[dict]) -> str:
    parts = [p for m in messages for p in m.get("serverContent", {}).get("modelTurn", {}).get("parts", [])]
    return "".join(p["text"] for p in parts)


async def test_setup_then_turn() -> None:
    session = make_session()
    await send(session, SETUP)
    assert await session.outbox.get() == {"setupComplete": {"sessionId": "s1"}}
    await send(session, {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "hi"}]}],
                                           "turnComplete": True}})
    messages = await drain_turn(session)
    assert text_of(messages) == "You said: hi"
    assert messages[-2] == {"serverContent": {"generationComplete": True}}
    assert [t.role for t in session.history] == ["user", "model"]
    await session.aclose()


async def test_message_before_setup_and_second_setup_are_refused() -> None:
    session = make_session()
    with pytest.raises(InvalidArgument, match="first message"):
        await send(session, {"clientContent": {"turnComplete": True}})
    await send(session, SETUP)
    with pytest.raises(InvalidArgument, match="only be sent once"):
        await send(session, SETUP)
    await session.aclose()


@pytest.mark.parametrize("setup, error", [
    ({"model": "nope"}, NotFound),
    ({"model": "gemini-2.0-flash-live-001", "generationConfig": {"responseModalities": ["TEXT", "AUDIO"]}},
     InvalidArgument),
    ({"model": "gemini-2.5-flash-preview-native-audio-dialog", "generationConfig": {"responseModalities": ["TEXT"]}},
     InvalidArgument),
    ({"model": "gemini-2.0-flash-live-001", "generationConfig": {"candidateCount": 2}}, InvalidArgument),
    ({"model": "gemini-2.0-flash-live-001", "generationConfig": {"responseModalities": ["TEXT"]},
      "tools": [{"codeExecution": {}}]}, Unimplemented),
    ({"model": "gemini-2.5-flash-exp-native-audio-thinking-dialog", "tools": [{"codeExecution": {}}]}, Unimplemented),
])
async def test_setup_refusals(setup: dict, error: type[Exception]) -> None:
    session = make_session()
    with pytest.raises(error):
        await send(session, {"setup": setup})
    await session.aclose()


async def test_interruption_keeps_only_what_was_sent() -> None:
    session = make_session()
    await send(session, SETUP)
    await session.outbox.get()
    await send(session, {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "slow"}]}],
                                           "turnComplete": True}})
    first = await session.outbox.get()  # one word has been delivered to the client
    await send(session, {"clientContent": {"turnComplete": False}})
    rest = await drain_turn(session)
    assert {"serverContent": {"interrupted": True}} in rest
    assert not any("generationComplete" in m.get("serverContent", {}) for m in rest)
    sent = text_of([first, *rest])
    assert session.history[-1].role == "model" and session.history[-1].text == sent
    assert sent != "a b c d e f g h i j"
    await session.aclose()


async def test_aclose_cancels_generation() -> None:
    session = make_session()
    await send(session, SETUP)
    await send(session, {"realtimeInput": {"text": "slow"}})
    assert session.generating
    await session.aclose()
    assert not session.generating


async def test_context_update_replaces_the_system_instruction() -> None:
    session = make_session()
    await send(session, SETUP)
    await send(session, {"contextUpdate": {"systemInstruction": {"parts": [{"text": "Be brief."}]}}})
    assert session.chat_messages()[0].text == "Be brief."
    await session.aclose()


async def test_activity_signals_need_manual_vad() -> None:
    session = make_session()
    await send(session, SETUP)
    with pytest.raises(InvalidArgument):
        await send(session, {"realtimeInput": {"activityStart": {}}})
    await session.aclose()


async def test_a_turn_interrupted_before_it_starts_still_ends_with_turn_complete() -> None:
    session = make_session()
    await send(session, SETUP)
    await session.outbox.get()
    # both queued at once: the event loop applies the second right after the first, before the first turn's task
    # has run
    await asyncio.gather(
        send(session, {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "slow"}]}],
                                         "turnComplete": True}}),
        send(session, {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "hi"}]}],
                                         "turnComplete": True}}))
    first = await drain_turn(session)
    assert first == [{"serverContent": {"interrupted": True}}, {"serverContent": {"turnComplete": True}}]
    second = await drain_turn(session)
    assert text_of(second) == "You said: hi"  # both user messages are in the prompt; the emulator answers the last
    assert [t.text for t in session.history[:2]] == ["slow", "hi"]
    await session.aclose()


def partial_turn(text: str) -> dict:
    return {"clientContent": {"turns": [{"role": "user", "parts": [{"text": text}]}], "turnComplete": False}}


async def test_history_is_bounded_as_it_arrives_without_compression() -> None:
    """Security finding F6: clientContent with turnComplete false appended without limit (2 GB in 9 s)."""
    from localive.protocol.errors import ContextFull
    from localive.session.live import HISTORY_BYTES_PER_TOKEN

    session = make_session()
    await send(session, SETUP)
    assert session._llm is not None
    chunk = "x" * 100_000
    with pytest.raises(ContextFull):
        for _ in range(session._llm.context_tokens * HISTORY_BYTES_PER_TOKEN // len(chunk) + 2):
            await send(session, partial_turn(chunk))
    await session.aclose()


async def test_history_is_compressed_as_it_arrives_with_compression() -> None:
    from localive.session.live import HISTORY_BYTES_PER_TOKEN

    session = make_session()
    await send(session, {"setup": {**SETUP["setup"], "contextWindowCompression": {"slidingWindow": {}}}})
    assert session._llm is not None
    limit = session._llm.context_tokens * HISTORY_BYTES_PER_TOKEN
    for i in range(limit // 100_000 * 3):
        await send(session, partial_turn(f"{i} " + "x" * 100_000))
        assert sum(len(t.text) for t in session.history) <= limit
    await send(session, {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "slow"}]}],
                                           "turnComplete": True}})
    assert text_of(await drain_turn(session)) == "a b c d e f g h i j"  # and the session still answers
    await session.aclose()


async def test_a_flood_of_tiny_turns_is_bounded_too() -> None:
    from localive.protocol.errors import ContextFull

    session = make_session()
    await send(session, SETUP)
    turns = [{"role": "user", "parts": [{"text": "a"}]}] * 1000
    with pytest.raises(ContextFull):
        for _ in range(100):
            await send(session, {"clientContent": {"turns": turns, "turnComplete": False}})
    assert len(session.history) < 100_000
    await session.aclose()
