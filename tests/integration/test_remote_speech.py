"""Speech recognition and synthesis on real third-party OpenAI-compatible servers from PyPI, started here
(faster-whisper-server on /v1/audio/transcriptions, local-tts-studio's Piper on /v1/audio/speech), driven through
the official Python SDK; the LLM is the scripted emulator. Also what a speech server that is down at start
(`--tts-may-start-down`) or full (`--asr-max-concurrency`, `--tts-max-concurrency`) means for new sessions: 1013.

Skipped when .venv-engines (scripts/install-test-engines.sh) is missing, unless LOCALIVE_REQUIRE_ENGINES is set
(scripts/test.sh sets it): then a missing engine fails these tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from google import genai
from google.genai import errors, types

from localive.testing.backends import Backend
from localive.testing.server import LocaliveServer, free_port, start_server
from localive.testing.speech import speech_pcm
from localive.testing.text import CLOSE_WER, word_error_rate
from tests.conftest import EMULATOR_SCRIPT, SILENCE_TURNS
from tests.support.server import sdk_client
from tests.support.speech_servers import (
    REQUIRE_ENV,
    engines_installed,
    start_speech_server,
    start_transcription_server,
)

pytestmark = pytest.mark.skipif(not engines_installed() and not os.environ.get(REQUIRE_ENV),
                                reason="no .venv-engines: run scripts/install-test-engines.sh")

MODEL = "gemini-2.0-flash-live-001"
CHUNK = 3200  # 100 ms of 16 kHz 16-bit audio
TURN_TIMEOUT_S = 90
QUESTION = "what is the capital of Germany"
AUDIO = {"response_modalities": ["AUDIO"], "output_audio_transcription": {}}
TEXT = {"response_modalities": ["TEXT"]}


def remote_args(asr: Backend | None, tts: Backend | None) -> list[str]:
    args = ["--llm", "emulator", "--emulator-script", str(EMULATOR_SCRIPT), *SILENCE_TURNS]
    if asr is not None:
        args += ["--asr-url", asr.url, "--asr-model", "whisper-base"]
    if tts is not None:
        args += ["--tts-url", tts.url, "--tts-model", "tts-1"]
    return args


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Backend, Backend]]:
    workdir = tmp_path_factory.mktemp("speech-engines")
    asr = start_transcription_server(workdir)
    try:
        tts = start_speech_server(workdir)
    except BaseException:
        asr.stop()
        raise
    yield asr, tts
    tts.stop()
    asr.stop()


@pytest.fixture(scope="module")
def remote_server(engines: tuple[Backend, Backend],
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    server = start_server(tmp_path_factory.mktemp("remote-speech"), *remote_args(*engines))
    yield server
    server.stop()


@pytest.fixture
def client(remote_server: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> genai.Client:
    return sdk_client(remote_server, monkeypatch)


async def send_audio(session: genai.live.AsyncSession, pcm: bytes) -> None:
    for i in range(0, len(pcm), CHUNK):
        await session.send_realtime_input(audio=types.Blob(data=pcm[i:i + CHUNK], mime_type="audio/pcm;rate=16000"))


async def one_turn(session: genai.live.AsyncSession) -> list[types.LiveServerMessage]:
    async with asyncio.timeout(TURN_TIMEOUT_S):
        return [m async for m in session.receive()]


def transcripts(messages: list[types.LiveServerMessage], kind: str) -> str:
    parts = [getattr(m.server_content, kind) for m in messages if m.server_content]
    return "".join(p.text or "" for p in parts if p is not None)


def audio_parts(messages: list[types.LiveServerMessage]) -> list[types.Blob]:
    return [p.inline_data for m in messages if m.server_content and m.server_content.model_turn
            for p in m.server_content.model_turn.parts or [] if p.inline_data]


def words(text: str) -> str:
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c.isspace()).split())


async def ask(session: genai.live.AsyncSession) -> list[types.LiveServerMessage]:
    await session.send_client_content(turns={"role": "user", "parts": [{"text": QUESTION}]})
    return await one_turn(session)


def answered(messages: list[types.LiveServerMessage], config: dict[str, object]) -> bool:
    """The question was answered in the session's modality: speech (with its transcription) or text."""
    if config["response_modalities"] == ["TEXT"]:
        return "berlin" in words("".join(m.text or "" for m in messages))
    return bool(audio_parts(messages)) and "berlin" in words(transcripts(messages, "output_transcription"))


async def refusal(client: genai.Client, config: dict[str, object]) -> errors.APIError:
    """The error a new session gets (it must get one)."""
    with pytest.raises(errors.APIError) as refused:
        async with client.aio.live.connect(model=MODEL, config=config) as session:
            await ask(session)
    return refused.value


async def admitted_turn(client: genai.Client, config: dict[str, object],
                        within_s: float = 30.0) -> list[types.LiveServerMessage]:
    """One turn of a new session, tried again while it is refused with 1013: a backend back up is known at the next
    recheck (at most 2 s), a slot is given back once the server has seen the last session's close."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            async with client.aio.live.connect(model=MODEL, config=config) as session:
                return await ask(session)
        except errors.APIError as exc:
            if exc.code != 1013 or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def test_a_spoken_question_is_heard_and_answered_in_speech_by_the_remote_servers(
        client: genai.Client, engines: tuple[Backend, Backend], whisper: object) -> None:
    from localive.audio.pcm import Pcm16

    asr, tts = engines
    config = {"response_modalities": ["AUDIO"], "input_audio_transcription": {}, "output_audio_transcription": {}}
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        await send_audio(session, speech_pcm(QUESTION))
        messages = await one_turn(session)
    heard = transcripts(messages, "input_transcription")
    assert word_error_rate(QUESTION, heard) <= CLOSE_WER, heard
    assert "berlin" in words(transcripts(messages, "output_transcription"))
    blobs = audio_parts(messages)
    assert blobs and {b.mime_type for b in blobs} == {"audio/pcm;rate=24000"}
    audio = b"".join(b.data or b"" for b in blobs)
    assert len(audio) > 24000 * 2  # more than a second of speech
    spoken = (await whisper.transcribe(Pcm16(audio, 24000))).text  # type: ignore[attr-defined]
    assert word_error_rate("The capital of Germany is Berlin.", spoken) <= CLOSE_WER, spoken
    # The speech came from the servers: each logged the requests.
    assert "/v1/audio/transcriptions" in asr.log()
    assert "speech reply" in tts.log() or "synthesized" in tts.log(), tts.log()


async def test_barge_in_stops_the_remote_speech(client: genai.Client) -> None:
    config = {"response_modalities": ["AUDIO"], "output_audio_transcription": {}}
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "count slowly"}]})
        first: list[types.LiveServerMessage] = []
        async with asyncio.timeout(TURN_TIMEOUT_S):
            async for message in session.receive():
                first.append(message)
                if message.data and len(first) < 3:  # the model is talking: the user starts to speak
                    await send_audio(session, speech_pcm(QUESTION))
        flags = [i for i, m in enumerate(first) if m.server_content and m.server_content.interrupted]
        assert len(flags) == 1
        assert not any(m.data for m in first[flags[0]:]), "no audio of the interrupted turn after interrupted"
        assert "twenty" not in words(transcripts(first, "output_transcription"))
        second = await one_turn(session)
    assert "berlin" in words(transcripts(second, "output_transcription"))


async def test_a_server_that_dies_mid_session_closes_it_with_1011_naming_the_stage(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asr, tts = start_transcription_server(tmp_path), start_speech_server(tmp_path)
    server = start_server(tmp_path / "serve", *remote_args(asr, tts))
    try:
        client = sdk_client(server, monkeypatch)
        config = {"response_modalities": ["AUDIO"]}
        tts.kill()
        async with client.aio.live.connect(model=MODEL, config=config) as session:
            await session.send_client_content(turns={"role": "user", "parts": [{"text": "count slowly"}]})
            with pytest.raises(errors.APIError) as caught:
                await one_turn(session)
        assert caught.value.code == 1011
        assert "speech synthesis" in str(caught.value) and tts.url not in str(caught.value)

        asr.kill()
        async with client.aio.live.connect(model=MODEL, config={"response_modalities": ["TEXT"]}) as session:
            await send_audio(session, speech_pcm(QUESTION))
            with pytest.raises(errors.APIError) as caught:
                await one_turn(session)
        assert caught.value.code == 1011
        assert "speech recognition" in str(caught.value) and asr.url not in str(caught.value)
    finally:
        server.stop()
        asr.stop()
        tts.stop()


@pytest.mark.parametrize("stage", ["asr", "tts"])
def test_serve_refuses_to_start_when_a_remote_stage_is_down(stage: str, tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    flags = ["--asr-url", down, "--asr-model", "m"] if stage == "asr" else ["--tts-url", down, "--tts-model", "m"]
    result = subprocess.run([sys.executable, "-m", "localive", "serve", "--llm", "emulator", "--port",
                             str(free_port()), "--data-dir", str(tmp_path), *flags],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if "backend" in line]
    name = "speech recognition" if stage == "asr" else "speech synthesis"
    assert len(lines) == 1 and name in lines[0] and "not reachable" in lines[0], result.stderr


async def test_a_synthesis_server_down_at_start_refuses_spoken_sessions_with_1013_until_it_answers(
        engines: tuple[Backend, Backend], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--tts-may-start-down`: serve starts without its speech synthesis server; sessions that answer in AUDIO are
    refused with 1013 naming it, text sessions work; once the server answers, spoken sessions work — nothing
    restarts. A server that then stops answering fails its session (1011) and is down again for new ones."""
    asr, _ = engines
    port = free_port()
    server = start_server(tmp_path / "serve", *remote_args(asr, None), "--tts-url", f"http://127.0.0.1:{port}/v1",
                          "--tts-model", "tts-1", "--tts-may-start-down")
    tts: Backend | None = None
    try:
        assert "speech synthesis backend" in server.log() and "starting anyway" in server.log()
        client = sdk_client(server, monkeypatch)
        refused = await refusal(client, AUDIO)
        assert refused.code == 1013 and "speech synthesis" in str(refused) and str(port) not in str(refused)
        async with client.aio.live.connect(model=MODEL, config=TEXT) as session:  # text needs no synthesis
            assert answered(await ask(session), TEXT)

        tts = start_speech_server(tmp_path / "tts", port)
        assert answered(await admitted_turn(client, AUDIO), AUDIO)

        tts.kill()
        failed = await refusal(client, AUDIO)  # admitted (it was up), fails mid-turn
        assert failed.code == 1011 and "speech synthesis" in str(failed)
        refused = await refusal(client, AUDIO)
        assert refused.code == 1013 and "speech synthesis" in str(refused)
    finally:
        server.stop()
        if tts is not None:
            tts.stop()


async def test_a_speech_server_at_its_concurrency_limit_refuses_new_sessions_with_1013(
        engines: tuple[Backend, Backend], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--asr-max-concurrency 2 --tts-max-concurrency 1`: every session needs recognition (any may send audio),
    only spoken ones synthesis; a session beyond a limit gets 1013 naming the stage; closed sessions free it."""
    server = start_server(tmp_path / "serve", *remote_args(*engines), "--asr-max-concurrency", "2",
                          "--tts-max-concurrency", "1")
    try:
        client = sdk_client(server, monkeypatch)
        async with client.aio.live.connect(model=MODEL, config=AUDIO) as speaking:  # recognition 1/2, synthesis 1/1
            refused = await refusal(client, AUDIO)
            assert refused.code == 1013 and "speech synthesis" in str(refused) and "try again later" in str(refused)
            # the refused session's recognition slot was given back: a text session still gets one (2/2)
            async with client.aio.live.connect(model=MODEL, config=TEXT) as writing:
                refused = await refusal(client, TEXT)
                assert refused.code == 1013 and "speech recognition" in str(refused)
                assert answered(await ask(writing), TEXT)
            assert answered(await ask(speaking), AUDIO)  # the admitted sessions work as usual
        assert answered(await admitted_turn(client, AUDIO), AUDIO)  # both slots are free again
    finally:
        server.stop()
