"""All three stages remote (issue 16): the LLM on llama-cpp-python's OpenAI-compatible server, speech recognition
on faster-whisper-server, speech synthesis on local-tts-studio — real third-party servers started here, not mocks.
Through them the seed's programs run unchanged, and barge-in and tool-call cancellation behave as with the
embedded engines."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from google import genai
from google.genai import types

from localive.testing.backends import Backend
from localive.testing.server import LocaliveServer, start_server
from localive.testing.speech import read_wav, speech_pcm, speech_wav
from tests.integration.test_remote_llm import start_backend
from tests.integration.test_tools import LIGHTS, calls_of
from tests.integration.test_voice import SEED, audio_of, send_audio
from tests.support.server import sdk_client
from tests.support.speech_servers import (
    REQUIRE_ENV,
    engines_installed,
    start_speech_server,
    start_transcription_server,
)

pytestmark = [
    pytest.mark.llm,
    pytest.mark.skipif(not engines_installed() and not os.environ.get(REQUIRE_ENV),
                       reason="no .venv-engines: run scripts/install-test-engines.sh"),
]
MODEL = "gemini-2.0-flash-live-001"
TURN_TIMEOUT_S = 120


@dataclass
class Remote:
    server: LocaliveServer
    llm: Backend
    asr: Backend
    tts: Backend

    def requests(self) -> tuple[int, int, int]:
        """Requests each backend has logged: chat completions, transcriptions, speech."""
        tts = self.tts.log()  # local-tts-studio logs each synthesis, not the path
        return (self.llm.log().count("POST /v1/chat/completions"),
                self.asr.log().count("/v1/audio/transcriptions"), tts.count("speech reply") + tts.count("synthesized"))

    def requests_after(self, before: tuple[int, int, int], *stages: int) -> tuple[int, int, int]:
        """The counts once each of `stages` has logged more than `before` (up to 10 s: a server writes its access
        line after the response, so the client can be done first)."""
        deadline = time.monotonic() + 10
        now = self.requests()
        while not all(now[i] > before[i] for i in stages) and time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.requests()
        return now


@pytest.fixture(scope="module")
def remote_engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    workdir = tmp_path_factory.mktemp("all-remote")
    started: list[Backend] = []
    try:
        llm = start_backend(workdir / "llm")
        started.append(llm)
        asr = start_transcription_server(workdir)
        started.append(asr)
        tts = start_speech_server(workdir)
        started.append(tts)
        server = start_server(workdir / "localive", "--llm-url", llm.url, "--asr-url", asr.url,
                              "--asr-model", "whisper-base", "--tts-url", tts.url, "--tts-model", "tts-1",
                              "--turn-taking", "silence")
    except BaseException:
        for backend in started:
            backend.stop()
        raise
    yield Remote(server, llm, asr, tts)
    server.stop()
    for backend in started:
        backend.stop()


@pytest.fixture
def remote(remote_engines: Remote) -> LocaliveServer:
    return remote_engines.server


def run_seed(name: str, server: LocaliveServer, cwd: Path) -> str:
    result = subprocess.run([sys.executable, str(SEED / name)], env=server.client_env(), cwd=cwd,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_the_seeds_text_programs_run_unchanged(remote: LocaliveServer, tmp_path: Path) -> None:
    assert "Session started successfully." in run_seed("establishing_a_connection.py", remote, tmp_path)
    out = run_seed("sending_and_receiving_text.py", remote, tmp_path)
    assert re.search(r"Gemini: \S", out), out  # the remote model answered
    assert "Generation complete." in out and "Session ended." in out


def test_the_seeds_audio_in_program_runs_unchanged(remote_engines: Remote, tmp_path: Path) -> None:
    shutil.copy(speech_wav("What is the capital of France?"), tmp_path / "sample.wav")
    before = remote_engines.requests()
    out = run_seed("sending_audio_example.py", remote_engines.server, tmp_path)
    answer = "".join(line.removeprefix("Model Text Response:") for line in out.splitlines()
                     if line.startswith("Model Text Response:"))
    assert answer.strip(), out  # the spoken question was answered (its words are the 0.5B model's to choose)
    assert "Audio sending example finished." in out
    after = remote_engines.requests_after(before, 0, 1)
    assert after[0] > before[0] and after[1] > before[1]  # heard by the remote recogniser, answered remotely


def test_the_seeds_audio_out_program_runs_unchanged(remote_engines: Remote, tmp_path: Path) -> None:
    before = remote_engines.requests()
    out = run_seed("receiving_audio_example.py", remote_engines.server, tmp_path)
    assert remote_engines.requests_after(before, 2)[2] > before[2]  # spoken by the remote voice
    assert "Audio generation complete." in out
    pcm, rate = read_wav(tmp_path / "received_audio.wav")
    assert rate == 24000 and len(pcm) > 24000 * 2  # over a second of the remote voice, at the Live API's rate


def test_the_seeds_function_calling_program_runs_unchanged(remote: LocaliveServer, tmp_path: Path) -> None:
    out = run_seed("function_calling.py", remote, tmp_path)
    assert "Executing function: turn_on_the_lights with ID: " in out
    assert "Generation complete for this turn." in out


def test_the_seeds_resumption_program_runs_unchanged(remote: LocaliveServer, tmp_path: Path) -> None:
    out = run_seed("session_resumption.py", remote, tmp_path)
    handle = re.search(r"After first run, handle is: (\S+)", out)
    assert handle and handle.group(1) != "None", out


async def test_barge_in_stops_the_remote_voice(remote: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    client = sdk_client(remote, monkeypatch)
    config = {"response_modalities": ["AUDIO"], "output_audio_transcription": {}, "temperature": 0.0}
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        await session.send_client_content(turns={"role": "user", "parts": [
            {"text": "Count from one to sixty in words, separated by commas."}]})
        first: list[types.LiveServerMessage] = []
        async with asyncio.timeout(TURN_TIMEOUT_S):
            async for message in session.receive():
                first.append(message)
                if message.data and sum(1 for m in first if m.data) == 1:  # the model talks: the user speaks
                    await send_audio(session, speech_pcm("what is the capital of Germany"))
        flags = [i for i, m in enumerate(first) if m.server_content and m.server_content.interrupted]
        assert len(flags) == 1
        assert not any(m.data for m in first[flags[0]:]), "no audio of the interrupted turn after interrupted"
        async with asyncio.timeout(TURN_TIMEOUT_S):
            second = [m async for m in session.receive()]
    assert audio_of(second)  # the spoken question got a spoken answer


async def test_interrupting_a_pending_call_cancels_it(remote: LocaliveServer,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    client: genai.Client = sdk_client(remote, monkeypatch)
    config = {"response_modalities": ["TEXT"], "tools": [{"function_declarations": LIGHTS}], "temperature": 0.0}
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "Turn on the lights please"}]})
        seen: list[types.LiveServerMessage] = []
        async with asyncio.timeout(TURN_TIMEOUT_S):
            async for message in session.receive():
                seen.append(message)
                if message.tool_call:
                    await session.send_client_content(turns={"role": "user", "parts": [
                        {"text": "Stop, never mind."}]})
    call_id = calls_of(seen)[0].id
    cancellations = [m.tool_call_cancellation for m in seen if m.tool_call_cancellation]
    assert cancellations and cancellations[0].ids == [call_id]
