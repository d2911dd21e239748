"""Voice through the official Python SDK: audio in (VAD, manual activity), audio out, transcriptions, barge-in."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from google import genai
from google.genai import errors, types

from localive.testing.server import LocaliveServer
from localive.testing.speech import read_wav, speech_pcm, speech_wav
from localive.testing.text import CLOSE_WER, word_error_rate
from tests.support.server import sdk_client

SEED = Path(__file__).parent.parent / "seed_programs"
MODEL = "gemini-2.0-flash-live-001"
NATIVE = "gemini-2.5-flash-preview-native-audio-dialog"
CHUNK = 3200  # 100 ms of 16 kHz 16-bit audio, as a microphone would send it
TURN_TIMEOUT_S = 60


@pytest.fixture
def emulator(emulator_server: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> genai.Client:
    return sdk_client(emulator_server, monkeypatch)


@pytest.fixture
def llm(llm_server: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> genai.Client:
    return sdk_client(llm_server, monkeypatch)


async def send_audio(session: genai.live.AsyncSession, pcm: bytes, rate: int = 16000, *,
                     mime_type: str | None = None) -> None:
    for i in range(0, len(pcm), CHUNK):
        blob = types.Blob(data=pcm[i:i + CHUNK], mime_type=mime_type or f"audio/pcm;rate={rate}")
        await session.send_realtime_input(audio=blob)


async def one_turn(session: genai.live.AsyncSession) -> list[types.LiveServerMessage]:
    async with asyncio.timeout(TURN_TIMEOUT_S):
        return [m async for m in session.receive()]


def audio_of(messages: list[types.LiveServerMessage]) -> bytes:
    return b"".join(m.data or b"" for m in messages)


def transcripts(messages: list[types.LiveServerMessage], kind: str) -> str:
    parts = [getattr(m.server_content, kind) for m in messages if m.server_content]
    return "".join(p.text or "" for p in parts if p is not None)


def spectral_centroid_hz(pcm: bytes, rate: int = 24000) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    return float((spectrum * freqs).sum() / spectrum.sum())


def run_seed(name: str, server: LocaliveServer, cwd: Path) -> str:
    result = subprocess.run([sys.executable, str(SEED / name)], env=server.client_env(), cwd=cwd,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    return result.stdout


# --- the seed's programs, verbatim -----------------------------------------------------------------------

@pytest.mark.llm
def test_seed_sending_audio_example(llm_server: LocaliveServer, tmp_path: Path) -> None:
    shutil.copy(speech_wav("What is the capital of France?"), tmp_path / "sample.wav")
    out = run_seed("sending_audio_example.py", llm_server, tmp_path)
    answer = " ".join(line for line in out.splitlines() if line.startswith("Model Text Response:"))
    assert "Paris" in answer
    assert "Generation complete." in out and "Audio sending example finished." in out


def test_seed_receiving_audio_example_speaks_the_reply(emulator_server: LocaliveServer, tmp_path: Path,
                                                        whisper: object) -> None:
    out = run_seed("receiving_audio_example.py", emulator_server, tmp_path)
    assert "Audio generation complete." in out
    pcm, rate = read_wav(tmp_path / "received_audio.wav")
    assert rate == 24000 and len(pcm) > 24000 * 2  # more than a second of speech
    heard = asyncio.run(transcribe(whisper, pcm, rate))  # the emulator's scripted reply, spoken
    assert word_error_rate("You said: Tell me a short story.", heard) <= CLOSE_WER, heard


# --- spoken questions, spoken answers ---------------------------------------------------------------------

@pytest.mark.llm
async def test_spoken_question_gets_a_spoken_answer_with_transcriptions(llm: genai.Client, whisper: object) -> None:
    config = {"response_modalities": ["AUDIO"], "input_audio_transcription": {},
              "output_audio_transcription": {}, "temperature": 0.0}
    async with llm.aio.live.connect(model=NATIVE, config=config) as session:
        await send_audio(session, speech_pcm("What is the capital of France?"))
        messages = await one_turn(session)
    heard = words(transcripts(messages, "input_transcription")).split()
    assert "capital" in heard and "france" in heard  # Whisper base often hears espeak's "of" as "on"
    said = transcripts(messages, "output_transcription")
    assert "Paris" in said
    audio = audio_of(messages)
    assert len(audio) > 24000  # at least half a second at 24 kHz
    assert "paris" in words(await transcribe(whisper, audio, 24000))
    chunk_sizes = {len(m.data) for m in messages if m.data}
    assert max(chunk_sizes) <= 9600
    kinds = [k for m in messages for k in ("generation_complete", "turn_complete")
             if m.server_content and getattr(m.server_content, k)]
    assert kinds == ["generation_complete", "turn_complete"]
    usage = messages[-1].usage_metadata
    assert usage is not None and {d.modality for d in usage.response_tokens_details} == {types.MediaModality.AUDIO}


async def test_text_reply_to_audio_input(emulator: genai.Client) -> None:
    config = {"response_modalities": ["TEXT"], "input_audio_transcription": {}}
    async with emulator.aio.live.connect(model=MODEL, config=config) as session:
        await send_audio(session, speech_pcm("what is the capital of Germany"))
        messages = await one_turn(session)
    assert "".join(m.text or "" for m in messages) == "The capital of Germany is Berlin."
    assert "germany" in words(transcripts(messages, "input_transcription"))


async def test_other_input_rates_are_resampled(emulator: genai.Client) -> None:
    async with emulator.aio.live.connect(model=MODEL, config={"response_modalities": ["TEXT"]}) as session:
        await send_audio(session, speech_pcm("what is the capital of Germany", rate_hz=48000), rate=48000)
        messages = await one_turn(session)
    assert "Berlin" in "".join(m.text or "" for m in messages)


async def test_bare_audio_pcm_is_16_khz(emulator: genai.Client) -> None:
    """Google's cookbook and the SDKs' send(input=…)/start_stream send "audio/pcm" with no rate: Gemini hears
    16 kHz."""
    async with emulator.aio.live.connect(model=MODEL, config={"response_modalities": ["TEXT"]}) as session:
        await send_audio(session, speech_pcm("what is the capital of Germany"), mime_type="audio/pcm")
        messages = await one_turn(session)
    assert "Berlin" in "".join(m.text or "" for m in messages)


# --- turn taking ------------------------------------------------------------------------------------------

async def test_audio_stream_end_flushes_a_turn_that_silence_has_not_ended(emulator: genai.Client) -> None:
    config = {"response_modalities": ["TEXT"],
              "realtime_input_config": {"automatic_activity_detection": {"silence_duration_ms": 5000}}}
    async with emulator.aio.live.connect(model=MODEL, config=config) as session:
        await send_audio(session, speech_pcm("what is the capital of Germany", trail_s=1.2))
        receiving = asyncio.ensure_future(one_turn(session))
        done, _ = await asyncio.wait({receiving}, timeout=3)
        assert not done, "1.2 s of silence must not end the turn when silenceDurationMs is 5000"
        await session.send_realtime_input(audio_stream_end=True)
        messages = await asyncio.wait_for(receiving, TURN_TIMEOUT_S)
    assert "Berlin" in "".join(m.text or "" for m in messages)


async def test_manual_activity_signals_drive_the_turn(emulator: genai.Client) -> None:
    config = {"response_modalities": ["TEXT"],
              "realtime_input_config": {"automatic_activity_detection": {"disabled": True}}}
    async with emulator.aio.live.connect(model=MODEL, config=config) as session:
        await send_audio(session, speech_pcm("what is the capital of France"))  # outside activity: ignored
        await session.send_realtime_input(activity_start=types.ActivityStart())
        await send_audio(session, speech_pcm("what is the capital of Germany", trail_s=0.0))
        await session.send_realtime_input(activity_end=types.ActivityEnd())
        messages = await one_turn(session)
    assert "".join(m.text or "" for m in messages) == "The capital of Germany is Berlin."


async def speak_while_the_model_counts(session: genai.live.AsyncSession) -> list[types.LiveServerMessage]:
    """Ask the emulator to count slowly; once its audio starts, the user asks another question."""
    await session.send_client_content(turns={"role": "user", "parts": [{"text": "count slowly"}]})
    first: list[types.LiveServerMessage] = []
    async with asyncio.timeout(TURN_TIMEOUT_S):
        async for message in session.receive():
            first.append(message)
            if message.data and len(first) < 3:  # the model is talking: the user starts to speak
                await send_audio(session, speech_pcm("what is the capital of Germany"))
    return first


async def test_barge_in_interrupts_at_once_and_the_next_answer_follows(emulator: genai.Client) -> None:
    config = {"response_modalities": ["AUDIO"], "output_audio_transcription": {}}
    async with emulator.aio.live.connect(model=MODEL, config=config) as session:
        first = await speak_while_the_model_counts(session)
        flags = [i for i, m in enumerate(first) if m.server_content and m.server_content.interrupted]
        assert len(flags) == 1
        assert not any(m.data for m in first[flags[0]:]), "no audio of the interrupted turn after interrupted"
        assert first[-1].server_content.turn_complete
        heard = transcripts(first, "output_transcription")
        assert "twenty" not in heard
        second = await one_turn(session)
    assert "berlin" in words(transcripts(second, "output_transcription"))


async def test_no_interruption_keeps_the_model_talking(emulator: genai.Client) -> None:
    config = {"response_modalities": ["AUDIO"], "output_audio_transcription": {},
              "realtime_input_config": {"activity_handling": "NO_INTERRUPTION"}}
    async with emulator.aio.live.connect(model=MODEL, config=config) as session:
        first = await speak_while_the_model_counts(session)
        assert not any(m.server_content and m.server_content.interrupted for m in first)
        assert "twenty" in words(transcripts(first, "output_transcription"))
        second = await one_turn(session)  # the user's words are answered after
    assert "berlin" in words(transcripts(second, "output_transcription"))


# --- voices -----------------------------------------------------------------------------------------------

async def spoken(client: genai.Client, voice: str) -> bytes:
    config = {"response_modalities": ["AUDIO"],
              "speech_config": {"voice_config": {"prebuilt_voice_config": {"voice_name": voice}}}}
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "capital of France?"}]})
        return audio_of(await one_turn(session))


async def test_two_voice_names_sound_different(emulator: genai.Client) -> None:
    kore, charon = await spoken(emulator, "Kore"), await spoken(emulator, "charon")  # names match in any case
    assert kore and charon and kore != charon
    assert abs(spectral_centroid_hz(kore) - spectral_centroid_hz(charon)) > 100


async def test_the_default_voice_speaks_the_whole_answer_in_order_first_words_first(emulator: genai.Client,
                                                                                    whisper: object) -> None:
    """The answer is cut into a short first phrase, then sentences: every piece arrives as its transcription
    followed by its audio, in order, and the audio as a whole says the whole reply (nothing lost at the joins)."""
    said = ("My brother moved to Canada last year for a new job. He likes the snow, the lakes and the quiet "
            "summer evenings. Dr. Smith helped him find a flat.")
    reply = f"You said: {said}"  # the emulator's echo (tests/data/emulator_script.toml)
    config = {"response_modalities": ["AUDIO"], "output_audio_transcription": {}}  # no voice: the default, Puck
    async with emulator.aio.live.connect(model=NATIVE, config=config) as session:
        await session.send_client_content(turns={"role": "user", "parts": [{"text": said}]})
        messages = await one_turn(session)
    pieces: list[tuple[str, int]] = []  # each transcription piece and the bytes of audio that follow it
    for m in messages:
        piece = m.server_content.output_transcription if m.server_content else None
        if piece is not None and piece.text:
            pieces.append((piece.text, 0))
        elif m.data:
            assert pieces, "audio before its transcription"
            pieces[-1] = (pieces[-1][0], pieces[-1][1] + len(m.data))
    assert "".join(text for text, _ in pieces).split() == reply.split()  # in order, nothing lost or repeated
    assert len(pieces) >= 4 and len(pieces[0][0].split()) <= 6  # a short first phrase, then sentences
    assert all(audio_bytes > 0 for _, audio_bytes in pieces)  # every piece was spoken
    heard = await transcribe(whisper, audio_of(messages), 24000)
    assert word_error_rate(reply, heard) <= CLOSE_WER, heard


async def test_unknown_voice_is_refused(emulator: genai.Client) -> None:
    with pytest.raises(errors.APIError) as info:
        await spoken(emulator, "NoSuchVoice")
    assert info.value.code == 1007 and "NoSuchVoice" in str(info.value)


# --- helpers ----------------------------------------------------------------------------------------------

def words(text: str) -> str:
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c.isspace()).split())


async def transcribe(whisper: object, pcm: bytes, rate: int) -> str:
    from localive.audio.pcm import Pcm16

    return (await whisper.transcribe(Pcm16(pcm, rate))).text  # type: ignore[attr-defined]
