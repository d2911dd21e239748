"""Newer SDK fields in a Content, and binary data in a setup (found by the conformance walk, tests/conformance)."""

from __future__ import annotations

import base64

import pytest

from localive.engines.llm.emulator import EmulatorLLM, EmulatorScript
from localive.models.registry import ModelRegistry
from localive.protocol.errors import InvalidArgument, Unimplemented
from localive.session.engines import Engines
from localive.session.live import LiveSession
from localive.testing.session import drain_turn, send
from tests.unit.test_session import SETUP, text_of

PNG_HEAD = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()  # not UTF-8: a setup holding it must still work


def make_session() -> LiveSession:
    llm = EmulatorLLM(EmulatorScript.from_dict({"reply": []}))
    return LiveSession(registry=ModelRegistry(), engines=Engines(llm_for=lambda entry: llm), session_id="s1")


async def test_an_audio_transcription_part_is_what_was_said() -> None:
    session = make_session()
    await send(session, SETUP)
    await session.outbox.get()
    await send(session, {"clientContent": {"turns": [{"role": "user", "parts": [
        {"audioTranscription": {"text": "what time is it", "finished": True}}]}], "turnComplete": True}})
    assert text_of(await drain_turn(session)) == "You said: what time is it"
    await session.aclose()


async def test_metadata_on_a_text_part_is_accepted() -> None:
    session = make_session()
    await send(session, SETUP)
    await session.outbox.get()
    await send(session, {"clientContent": {"turns": [{"role": "user", "parts": [
        {"text": "hello", "mediaResolution": {"level": "MEDIA_RESOLUTION_HIGH"}, "partMetadata": {"k": 1},
         "speechMetadata": {"speaker": "a"}, "audioMetadata": {"startOffset": "1s"},
         "videoMetadata": {"contentLayers": ["FRAMES"]}}]}], "turnComplete": True}})
    assert text_of(await drain_turn(session)) == "You said: hello"
    await session.aclose()


async def test_binary_data_in_a_setup_is_refused_by_name_not_an_internal_error() -> None:
    """Replays the walk's finding: an image part in systemInstruction closed with 1011 (the saved setup could not
    be written as JSON); it is a 1008 naming the part."""
    session = make_session()
    setup = {"setup": {**SETUP["setup"], "systemInstruction": {"parts": [
        {"inlineData": {"mimeType": "image/png", "data": PNG_HEAD}}]}}}
    with pytest.raises(Unimplemented, match="inlineData"):
        await send(session, setup)
    await session.aclose()


async def test_an_empty_part_is_an_invalid_argument_not_an_internal_error() -> None:
    """Replays the JS walk's finding: `{parts: [{}]}` (the JS SDK sends it for a Content with no parts) gave 1011."""
    session = make_session()
    setup = {"setup": {**SETUP["setup"], "systemInstruction": {"role": "user", "parts": [{}]}}}
    with pytest.raises(InvalidArgument, match="no data"):
        await send(session, setup)
    await session.aclose()


async def test_a_replayed_conversation_keeps_its_tool_exchanges() -> None:
    """An app rebuilding a conversation (a reconnect without resumption) sends the model's calls and their
    results back: they become history the model reads, as if the session had made them."""
    session = make_session()
    await send(session, SETUP)
    await session.outbox.get()
    await send(session, {"clientContent": {"turns": [
        {"role": "user", "parts": [{"text": "weather in Paris?"}]},
        {"role": "model", "parts": [{"functionCall": {"id": "c1", "name": "get_weather", "args": {"city": "Paris"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"id": "c1", "name": "get_weather",
                                                         "response": {"output": "21 C and sunny"}}}]},
        {"role": "model", "parts": [{"text": "It is 21 C."}, {"executableCode": {"code": "print(6*7)"}}]},
        {"role": "user", "parts": [{"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "42"}}]},
        {"role": "user", "parts": [{"text": "thanks"}]}], "turnComplete": True}})
    assert text_of(await drain_turn(session)) == "You said: thanks"
    roles = [(t.role, t.name) for t in session.history]
    assert roles[:6] == [("user", None), ("model", None), ("tool", "get_weather"), ("model", None),
                         ("tool", "code_execution"), ("user", None)]
    call = session.history[1].calls[0]
    assert (call.name, call.args, session.history[1].call_ids) == ("get_weather", {"city": "Paris"}, ("c1",))
    assert "21 C and sunny" in session.history[2].text and "print(6*7)" in session.history[3].text
    seen = "\n".join(m.text for m in session.chat_messages())
    assert "21 C and sunny" in seen and "42" in seen  # the model reads the replayed results
    await session.aclose()


async def test_a_function_call_in_a_user_turn_is_refused() -> None:
    session = make_session()
    await send(session, SETUP)
    await session.outbox.get()
    with pytest.raises(InvalidArgument, match="functionCall"):
        await send(session, {"clientContent": {"turns": [
            {"role": "user", "parts": [{"functionCall": {"name": "get_weather"}}]}], "turnComplete": True}})
    await session.aclose()
