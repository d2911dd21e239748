"""Newer SDK fields in a Content, and binary data in a setup (found by the conformance walk, tests/conformance)."""

from __future__ import annotations

import base64
import json

import pytest

from localive.engines.llm.emulator import EmulatorLLM, EmulatorScript
from localive.models.registry import ModelRegistry
from localive.protocol.errors import InvalidArgument, Unimplemented
from localive.protocol.parse import parse_client_message
from localive.session.engines import Engines
from localive.session.live import LiveSession
from tests.unit.test_session import SETUP, drain_turn, text_of

PNG_HEAD = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()  # not UTF-8: a setup holding it must still work


def make_session() -> LiveSession:
    llm = EmulatorLLM(EmulatorScript.from_dict({"reply": []}))
    return LiveSession(registry=ModelRegistry(), engines=Engines(llm_for=lambda entry: llm), session_id="s1")


async def send(session: LiveSession, frame: dict) -> None:
    await session.handle(parse_client_message(json.dumps(frame)))


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
