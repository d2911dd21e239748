"""Faults on demand (docs/testing.md): a real `localive serve --llm emulator` whose script's `[faults]` table makes it
misbehave as the real service does, seen through the official google-genai SDK and two small apps (tests/apps/):
one that reconnects on goAway with its newest resumption handle, one that does not."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.genai import errors, types

from localive.testing.server import LocaliveServer, start_server
from tests.support.server import sdk_client
from tests.support.turns import ask, resuming

DATA = Path(__file__).parent.parent / "data"
APPS = Path(__file__).parent.parent / "apps"
SCRIPT = DATA / "emulator_script.toml"
FAULT_SCRIPT = DATA / "emulator_faults.toml"  # goAway 1.5 s into each connection, the close 1 s later
VOICE_SCRIPT = DATA / "voice_emulator.toml"
MODEL = "gemini-2.0-flash-live-001"
QUESTIONS = 5
APP_TIMEOUT_S = 120
TURN_TIMEOUT_S = 60
UNAVAILABLE = "The service is currently unavailable."
LIGHTS = types.Tool(function_declarations=[types.FunctionDeclaration(name="turn_on_the_lights",
                                                                     description="Turn on the lights.")])


def script_with(tmp_path: Path, base: Path, faults: str) -> str:
    """A copy of an emulator script with a [faults] table added."""
    script = tmp_path / f"{base.stem}-faults.toml"
    script.write_text(f"{base.read_text()}\n[faults]\n{faults}\n")
    return str(script)


@pytest.fixture(scope="module")
def going_away(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    server = start_server(tmp_path_factory.mktemp("going-away"), "--llm", "emulator", "--voice", "off",
                          "--emulator-script", str(FAULT_SCRIPT))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def misbehaving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    """Silent after each connection's first turn, closing at each tool call, refusing a resumption while the old
    connection is open."""
    where = tmp_path_factory.mktemp("misbehaving")
    script = script_with(where, SCRIPT, "silent_after_turns = 1\nclose_after_tool_call_ms = 0\n"
                                        "refuse_resume_while_open = true")
    server = start_server(where, "--llm", "emulator", "--voice", "off", "--emulator-script", script)
    yield server
    server.stop()


def run_app(name: str, server: LocaliveServer) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(APPS / name), "--questions", str(QUESTIONS), "--pause-s", "1"],
                          env=server.client_env(), capture_output=True, text=True, timeout=APP_TIMEOUT_S)


def test_an_app_that_resumes_on_goaway_gets_every_answer_with_its_history(going_away: LocaliveServer) -> None:
    result = run_app("reconnecting_app.py", going_away)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # the questions took longer than a connection lasts, and the resumed sessions kept the history: turn N is N
    assert lines[:-1] == [f"This is turn {n}." for n in range(1, QUESTIONS + 1)]
    assert int(lines[-1].removeprefix("connections: ")) >= 2


def test_a_naive_app_dies_with_the_deadline_close(going_away: LocaliveServer) -> None:
    result = run_app("naive_app.py", going_away)
    assert result.returncode != 0
    assert "1011" in result.stderr and "Deadline expired before operation could complete." in result.stderr
    assert 0 < len(result.stdout.splitlines()) < QUESTIONS  # it got the first answers only


async def test_the_goaway_fault_says_the_time_left_then_closes_with_the_real_reason(
        going_away: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    client = sdk_client(going_away, monkeypatch)
    async with client.aio.live.connect(model=MODEL, config=resuming(None)) as session:
        go_away = None
        with pytest.raises(errors.APIError) as closed:
            async with asyncio.timeout(TURN_TIMEOUT_S):
                while True:
                    async for message in session.receive():
                        go_away = go_away or message.go_away
    assert go_away is not None and go_away.time_left == "1s"
    assert closed.value.code == 1011 and "Deadline expired before operation could complete." in str(closed.value)


async def test_setup_errors_refuse_the_first_setups_then_the_service_is_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = script_with(tmp_path, SCRIPT, f'setup_error = {{ code = 1011, reason = "{UNAVAILABLE}", count = 2 }}')
    with start_server(tmp_path, "--llm", "emulator", "--voice", "off", "--emulator-script", script) as server:
        client = sdk_client(server, monkeypatch)
        for _ in range(2):
            with pytest.raises(errors.APIError) as refused:
                async with client.aio.live.connect(model=MODEL, config=resuming(None)):
                    pass
            assert refused.value.code == 1011 and UNAVAILABLE in str(refused.value)
        async with client.aio.live.connect(model=MODEL, config=resuming(None)) as session:
            answer, _ = await ask(session)
        assert answer == "This is turn 1."


async def test_a_close_during_a_tool_call(misbehaving: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    client = sdk_client(misbehaving, monkeypatch)
    config = types.LiveConnectConfig(response_modalities=[types.Modality.TEXT], tools=[LIGHTS])
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="lights please")]))
        calls = []
        with pytest.raises(errors.APIError) as closed:
            async with asyncio.timeout(TURN_TIMEOUT_S):
                async for message in session.receive():
                    calls += message.tool_call.function_calls or [] if message.tool_call else []
    assert [call.name for call in calls] == ["turn_on_the_lights"]  # the call came, then the close
    assert closed.value.code == 1011 and "Internal error encountered." in str(closed.value)


async def test_silence_after_a_turn_leaves_the_client_waiting_on_an_open_socket(
        misbehaving: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    client = sdk_client(misbehaving, monkeypatch)
    async with client.aio.live.connect(model=MODEL, config=resuming(None)) as session:
        answer, _ = await ask(session)
        assert answer == "This is turn 1."
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="hello?")]))
        with pytest.raises(TimeoutError):  # the client's own timeout: nothing comes
            async with asyncio.timeout(2):
                async for _ in session.receive():
                    pass
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="anyone?")]))
        assert session._ws.close_code is None  # the socket is still open: no close came either


async def test_a_resumption_is_refused_while_the_old_connection_is_open(
        misbehaving: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    client = sdk_client(misbehaving, monkeypatch)
    async with client.aio.live.connect(model=MODEL, config=resuming(None)) as first:
        answer, handle = await ask(first)
        assert answer == "This is turn 1." and handle
        with pytest.raises(errors.APIError) as refused:
            async with client.aio.live.connect(model=MODEL, config=resuming(handle)):
                pass
        assert refused.value.code == 1011 and "Internal error encountered." in str(refused.value)
    for _ in range(50):  # the server notices the first connection's end at once; give its close a moment
        try:
            async with client.aio.live.connect(model=MODEL, config=resuming(handle)) as resumed:
                answer, _ = await ask(resumed)
            break
        except errors.APIError:
            await asyncio.sleep(0.1)
    assert answer == "This is turn 2."  # the handle still resumes the session, once its old socket is closed


# --- speech: late transcripts, slow audio (--voice emulator) ---------------------------------------------------

AUDIO = {"response_modalities": ["AUDIO"], "output_audio_transcription": {}}
TRANSCRIPT_DELAY_S = 4.0
AUDIO_PACE = 0.5


@pytest.fixture(scope="module")
def late_transcripts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    where = tmp_path_factory.mktemp("late-transcripts")
    script = script_with(where, VOICE_SCRIPT, f"transcript_delay_ms = {TRANSCRIPT_DELAY_S * 1000:.0f}")
    server = start_server(where, "--llm", "emulator", "--voice", "emulator", "--emulator-script", script)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def slow_audio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    where = tmp_path_factory.mktemp("slow-audio")
    script = script_with(where, VOICE_SCRIPT, f"audio_pace = {AUDIO_PACE}")
    server = start_server(where, "--llm", "emulator", "--voice", "emulator", "--emulator-script", script)
    yield server
    server.stop()


def said(messages: list[types.LiveServerMessage]) -> str:
    parts = [m.server_content.output_transcription for m in messages if m.server_content]
    return "".join(p.text or "" for p in parts if p is not None)


async def test_transcripts_arrive_after_the_audio_and_turn_they_belong_to(
        late_transcripts: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    client = sdk_client(late_transcripts, monkeypatch)
    async with client.aio.live.connect(model=MODEL, config=AUDIO) as session:
        sent = time.monotonic()
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(
            text="What is the capital of France?")]))
        async with asyncio.timeout(TURN_TIMEOUT_S):
            turn = [m async for m in session.receive()]  # until turnComplete
            assert turn[-1].server_content and turn[-1].server_content.turn_complete
            assert any(m.data for m in turn) and said(turn) == ""  # the audio and the turn's end, no transcript
            late: list[types.LiveServerMessage] = []
            async for message in session.receive():  # what comes after the turn's end
                late.append(message)
                content = message.server_content
                if content and content.output_transcription and content.output_transcription.finished:
                    break
        assert time.monotonic() - sent >= TRANSCRIPT_DELAY_S  # none can come sooner than its delay
    assert said(late).strip() == "The capital of France is Paris."


async def test_audio_paced_at_half_real_time(slow_audio: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    client = sdk_client(slow_audio, monkeypatch)
    async with client.aio.live.connect(model=MODEL, config=AUDIO) as session:
        sent = last_audio = time.monotonic()
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(
            text="What is the capital of France?")]))
        turn: list[types.LiveServerMessage] = []
        async with asyncio.timeout(TURN_TIMEOUT_S):
            async for message in session.receive():
                turn.append(message)
                last_audio = time.monotonic() if message.data else last_audio
    audio_s = sum(len(m.data or b"") for m in turn) / 48000  # 24 kHz 16-bit mono
    assert audio_s > 1.0 and said(turn).strip() == "The capital of France is Paris."
    # the client's playback underruns: the answer's audio took twice its length to arrive (no sooner is possible)
    assert last_audio - sent >= audio_s / AUDIO_PACE
