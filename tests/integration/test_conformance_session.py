"""Issue 15's acceptance: a session set up by the newest SDK with its newer fields holds a normal voice conversation."""

from __future__ import annotations

import io

import pytest
from google import genai
from google.genai import types
from PIL import Image

from localive.testing.server import LocaliveServer
from localive.testing.speech import speech_pcm
from tests.integration.test_voice import NATIVE, audio_of, one_turn, send_audio, transcripts, words
from tests.support.server import sdk_client


@pytest.fixture
def emulator(emulator_server: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> genai.Client:
    return sdk_client(emulator_server, monkeypatch)


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def finished_transcription(messages: list[types.LiveServerMessage]) -> bool:
    return any(m.server_content and m.server_content.output_transcription
               and m.server_content.output_transcription.finished for m in messages)


def assert_spoken_turn(messages: list[types.LiveServerMessage], answer_word: str) -> None:
    assert len(audio_of(messages)) > 24000  # over half a second of 24 kHz speech
    assert answer_word in words(transcripts(messages, "output_transcription"))
    assert finished_transcription(messages)
    assert messages[-1].server_content and messages[-1].server_content.turn_complete


async def test_newest_sdk_fields_in_a_voice_conversation(emulator: genai.Client) -> None:
    config = types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        realtime_input_config=types.RealtimeInputConfig(interim_transcript_timestamp_enabled=True),
        input_audio_transcription=types.AudioTranscriptionConfig(
            language_hints=types.LanguageHints(language_codes=["en-US"])),
        output_audio_transcription=types.AudioTranscriptionConfig(),
    )
    async with emulator.aio.live.connect(model=NATIVE, config=config) as session:
        await send_audio(session, speech_pcm("what is the capital of Germany"))
        first = await one_turn(session)
        await session.send_client_content(turns=types.Content(role="user", parts=[
            types.Part(inline_data=types.Blob(mime_type="image/png", data=png()),
                       media_resolution=types.PartMediaResolution(level=types.PartMediaResolutionLevel.MEDIA_RESOLUTION_HIGH)),
            types.Part(text="and what is the capital of France?"),
        ]))
        second = await one_turn(session)
        await send_audio(session, speech_pcm("what is the capital of Germany"))
        third = await one_turn(session)
    assert "germany" in words(transcripts(first, "input_transcription"))
    assert_spoken_turn(first, "berlin")
    assert_spoken_turn(second, "paris")
    assert_spoken_turn(third, "berlin")
