"""Other languages than English, through the official Python SDK against a real server: the session's language
(speechConfig.languageCode), the recogniser's (inputAudioTranscription.languageCodes) and translationConfig."""

from __future__ import annotations

import asyncio
import shutil

import pytest
from google import genai
from google.genai import errors, types

from localive.audio.pcm import Pcm16
from localive.testing.server import LocaliveServer
from localive.testing.speech import speech_pcm
from localive.testing.text import text_language
from tests.support.server import sdk_client

MODEL = "gemini-2.0-flash-live-001"
CHUNK = 3200  # 100 ms of 16 kHz 16-bit audio
TURN_TIMEOUT_S = 120

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="the fallback voice needs espeak-ng")


@pytest.fixture
def emulator(emulator_server: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> genai.Client:
    return sdk_client(emulator_server, monkeypatch)


@pytest.fixture
def llm(llm_server: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> genai.Client:
    return sdk_client(llm_server, monkeypatch)


async def one_turn(session: genai.live.AsyncSession) -> list[types.LiveServerMessage]:
    async with asyncio.timeout(TURN_TIMEOUT_S):
        return [m async for m in session.receive()]


def transcript(messages: list[types.LiveServerMessage], kind: str) -> str:
    parts = [getattr(m.server_content, kind) for m in messages if m.server_content]
    return "".join(p.text or "" for p in parts if p is not None)


async def test_a_voice_session_in_a_language_no_voice_speaks_is_refused(emulator: genai.Client) -> None:
    config = types.LiveConnectConfig(response_modalities=[types.Modality.AUDIO],
                                     speech_config=types.SpeechConfig(language_code="zz-ZZ"))
    with pytest.raises(errors.APIError) as info:
        async with emulator.aio.live.connect(model=MODEL, config=config) as session:
            await session.send_client_content(turns={"role": "user", "parts": [{"text": "hello"}]})
            await one_turn(session)
    assert info.value.code == 1008 and "zz-ZZ" in str(info.value)


@pytest.mark.llm
async def test_a_spanish_sessions_spoken_answer_is_heard_as_spanish(llm: genai.Client, whisper: object) -> None:
    config = types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO], temperature=0, max_output_tokens=60,
        speech_config=types.SpeechConfig(language_code="es-ES"),
        output_audio_transcription=types.AudioTranscriptionConfig())
    async with llm.aio.live.connect(model=MODEL, config=config) as session:
        await session.send_client_content(
            turns={"role": "user", "parts": [{"text": "¿Puedes recomendarme un libro para leer este verano?"}]})
        messages = await one_turn(session)
    audio = b"".join(m.data or b"" for m in messages)
    assert len(audio) > 24000 * 2  # more than a second of speech
    heard = await whisper.transcribe(Pcm16(audio, 24000), detect_among=())  # type: ignore[attr-defined]
    assert heard.language == "es", heard  # Whisper, free to pick any language, hears Spanish
    assert text_language(transcript(messages, "output_transcription")) == "es"


@pytest.mark.llm
async def test_spanish_speech_is_transcribed_in_spanish_and_a_translation_comes_in_the_target_language(
        llm: genai.Client) -> None:
    config = types.LiveConnectConfig(
        response_modalities=[types.Modality.TEXT], temperature=0, max_output_tokens=60,
        translation_config=types.TranslationConfig(target_language_code="en"),
        input_audio_transcription=types.AudioTranscriptionConfig(language_codes=["es-ES", "fr-FR"]))
    pcm = speech_pcm("El tren sale de la estación a las ocho de la mañana.", voice="es")
    async with llm.aio.live.connect(model=MODEL, config=config) as session:
        for i in range(0, len(pcm), CHUNK):
            await session.send_realtime_input(audio=types.Blob(data=pcm[i:i + CHUNK], mime_type="audio/pcm;rate=16000"))
        messages = await one_turn(session)
    heard = transcript(messages, "input_transcription")
    assert text_language(heard) == "es", heard  # detected among es/fr, transcribed as Spanish
    answer = "".join(m.text or "" for m in messages)
    assert text_language(answer) == "en", answer  # translated, not answered in Spanish
