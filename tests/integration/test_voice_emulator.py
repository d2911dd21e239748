"""`localive serve --voice emulator` through the official Python SDK: what an app's own CI sees without models.

The emulator hears by energy and transcribes by the length of the speech ([[hear]] rules in
tests/data/voice_emulator.toml), and answers with tones, 60 ms a character at 24 kHz, with the answer's text as
outputTranscription. All of that is its documented contract (docs/engines.md), so the tests assert it exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from google import genai
from google.genai import types

from localive.testing.server import LocaliveServer, start_server
from tests.support.server import sdk_client

SCRIPT = Path(__file__).parent.parent / "data" / "voice_emulator.toml"
MODEL = "gemini-2.0-flash-live-001"
CHUNK = 3200  # 100 ms of 16 kHz 16-bit audio
TURN_TIMEOUT_S = 60
AUDIO = {"response_modalities": ["AUDIO"], "input_audio_transcription": {}, "output_audio_transcription": {}}


@pytest.fixture(scope="module")
def voice_emulator_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    server = start_server(tmp_path_factory.mktemp("voice-emulator"), "--llm", "emulator", "--voice", "emulator",
                          "--emulator-script", str(SCRIPT))
    yield server
    server.stop()


@pytest.fixture
def client(voice_emulator_server: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> genai.Client:
    return sdk_client(voice_emulator_server, monkeypatch)


def utterance(speech_s: float, silence_s: float = 1.0, hz: float = 300.0) -> bytes:
    """`speech_s` of a loud tone (-13 dBFS), then `silence_s` of silence: 16 kHz PCM."""
    t = np.arange(round(speech_s * 16000)) / 16000
    tone = (0.3 * np.sin(2 * np.pi * hz * t) * 32767).astype("<i2").tobytes()
    return tone + bytes(2 * round(silence_s * 16000))


async def send_audio(session: genai.live.AsyncSession, pcm: bytes) -> None:
    for i in range(0, len(pcm), CHUNK):
        await session.send_realtime_input(audio=types.Blob(data=pcm[i:i + CHUNK], mime_type="audio/pcm;rate=16000"))


async def one_turn(session: genai.live.AsyncSession) -> list[types.LiveServerMessage]:
    async with asyncio.timeout(TURN_TIMEOUT_S):
        return [m async for m in session.receive()]


def transcripts(messages: list[types.LiveServerMessage], kind: str) -> str:
    parts = [getattr(m.server_content, kind) for m in messages if m.server_content]
    return "".join(p.text or "" for p in parts if p is not None)


def audio_of(messages: list[types.LiveServerMessage]) -> bytes:
    return b"".join(m.data or b"" for m in messages)


async def test_speech_is_heard_by_its_length_and_answered_with_speech(client: genai.Client) -> None:
    async with client.aio.live.connect(model=MODEL, config=AUDIO) as session:
        await send_audio(session, utterance(0.8))
        messages = await one_turn(session)
        assert transcripts(messages, "input_transcription").strip() == "What is the capital of France?"
        said = transcripts(messages, "output_transcription")
        assert said.strip() == "The capital of France is Paris."
        audio = audio_of(messages)
        assert {m.server_content.model_turn.parts[0].inline_data.mime_type for m in messages
                if m.data} == {"audio/pcm;rate=24000"}
        # 60 ms a character of each spoken clause, at 24 kHz 16-bit: about 1.9 s here
        assert abs(len(audio) / 48000 - 0.06 * len(said.strip())) < 0.3
        assert messages[-1].server_content.turn_complete
        # no rule fits 3 s of speech: the default transcript, echoed by the emulator LLM
        await send_audio(session, utterance(3.0))
        second = await one_turn(session)
    assert transcripts(second, "input_transcription").strip() == "I spoke for 3.0 seconds."
    assert transcripts(second, "output_transcription").strip() == "You said: I spoke for 3.0 seconds."


async def test_speech_while_the_model_talks_interrupts_it(client: genai.Client) -> None:
    async with client.aio.live.connect(model=MODEL, config=AUDIO) as session:
        await send_audio(session, utterance(1.5))  # "Count slowly, please.": twenty numbers, 100 ms apart
        first: list[types.LiveServerMessage] = []
        async with asyncio.timeout(TURN_TIMEOUT_S):
            async for message in session.receive():
                first.append(message)
                if message.data and sum(1 for m in first if m.data) == 1:  # the model talks: the user speaks
                    await send_audio(session, utterance(0.5))
        flags = [i for i, m in enumerate(first) if m.server_content and m.server_content.interrupted]
        assert len(flags) == 1
        assert not any(m.data for m in first[flags[0]:]), "no audio of the interrupted turn after interrupted"
        assert first[-1].server_content.turn_complete
        assert "twenty" not in transcripts(first, "output_transcription")
        second = await one_turn(session)  # the interruption (0.5 s of speech) is answered
    assert transcripts(second, "input_transcription").strip() == "What is the capital of France?"
    assert transcripts(second, "output_transcription").strip() == "The capital of France is Paris."
    assert second[-1].server_content.turn_complete


async def test_text_turns_work_as_without_speech(client: genai.Client) -> None:
    async with client.aio.live.connect(model=MODEL, config={"response_modalities": ["TEXT"]}) as session:
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "capital of France?"}]})
        messages = await one_turn(session)
    assert "".join(m.text or "" for m in messages) == "The capital of France is Paris."


@pytest.mark.llm
async def test_a_real_llm_answers_what_the_emulator_heard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulator's speech in front of the embedded LLM (Qwen2.5-Coder-0.5B): only speech is emulated."""
    server = start_server(tmp_path, "--voice", "emulator", "--emulator-script", str(SCRIPT))
    try:
        client = sdk_client(server, monkeypatch)
        async with client.aio.live.connect(model=MODEL, config={**AUDIO, "temperature": 0.0}) as session:
            await send_audio(session, utterance(0.8))
            messages = await one_turn(session)
    finally:
        server.stop()
    assert transcripts(messages, "input_transcription").strip() == "What is the capital of France?"
    said = transcripts(messages, "output_transcription")
    assert "Paris" in said
    assert len(audio_of(messages)) > 24000  # spoken: at least half a second of tones
    assert messages[-1].server_content.turn_complete
