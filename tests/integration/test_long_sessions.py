"""Long sessions through the official Python SDK: resumption (also across a `kill -9`), GoAway, compression."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from google import genai
from google.genai import types

from localive.testing.server import LocaliveServer, start_server
from tests.support.server import sdk_client
from tests.support.turns import ask, resuming, turn_of

SEED = Path(__file__).parent.parent / "seed_programs"
MODEL = "gemini-2.0-flash-live-001"


@pytest.mark.llm
async def test_seed_resumption_program_then_resume_with_its_handle(llm_server: LocaliveServer,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    program = await asyncio.create_subprocess_exec(sys.executable, str(SEED / "session_resumption.py"),
                                                   env=llm_server.client_env(), stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(program.communicate(), 180)
    stdout = out.decode()
    assert program.returncode == 0, err.decode()
    assert "Received new session handle: " in stdout
    handle = re.search(r"After first run, handle is: (\S+)", stdout)
    assert handle and handle.group(1) != "None"
    sdk_client(llm_server, monkeypatch)  # base URL and CA from `localive env`
    client = genai.Client(api_key="YOUR_GEMINI_API_KEY")  # the seed program's key: handles are bound to it
    config = {"response_modalities": ["TEXT"], "temperature": 0.0,
              "session_resumption": {"handle": handle.group(1)}}
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        answer, _ = await ask(session, "Repeat exactly the first message I sent you.")
    assert "hello world" in answer.lower()


@pytest.mark.llm
async def test_a_resumed_session_remembers_a_fact(llm_server: LocaliveServer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    client = sdk_client(llm_server, monkeypatch)
    config: dict[str, object] = {"response_modalities": ["TEXT"], "temperature": 0.0, "session_resumption": {}}
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        _, handle = await ask(session, "Hi, my name is Marisol.")
    assert handle
    config["session_resumption"] = types.SessionResumptionConfig(handle=handle)
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        answer, _ = await ask(session, "What is my name?")
    assert "marisol" in answer.lower()


# --- with the emulator: exact turn counting -------------------------------------------------------------

SCRIPT = str(Path(__file__).parent.parent / "data" / "emulator_script.toml")
RESUMABLE = resuming(None)


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    server = start_server(tmp_path_factory.mktemp("short-lived"), "--llm", "emulator", "--emulator-script", SCRIPT,
                          "--voice", "off", "--max-connection-s", "4", "--goaway-before-s", "2")
    yield server
    server.stop()


async def test_goaway_then_reconnect_with_the_handle_loses_nothing(short_lived: LocaliveServer,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    client = sdk_client(short_lived, monkeypatch)
    async with client.aio.live.connect(model=MODEL, config=RESUMABLE) as session:
        answer, handle = await ask(session, "which turn is this?")
        assert answer == "This is turn 1."
        go_away = None
        with pytest.raises(genai.errors.APIError) as closed:  # the server ends the connection after the GoAway
            async for message in session.receive():
                go_away = go_away or message.go_away
    assert go_away is not None and go_away.time_left == "2s"
    assert closed.value.code == 1011 and "Deadline expired" in str(closed.value)
    async with client.aio.live.connect(model=MODEL, config=resuming(handle)) as session:
        answer, _ = await ask(session, "which turn is this now?")
    assert answer == "This is turn 2."


async def test_kill_9_mid_session_loses_no_completed_turn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    handle, completed = None, 0
    for trial in range(6):
        server = start_server(tmp_path, "--llm", "emulator", "--emulator-script", SCRIPT, "--voice", "off")
        try:
            client = sdk_client(server, monkeypatch)
            async with client.aio.live.connect(model=MODEL, config=resuming(handle)) as session:
                for i in range(1 + trial % 3):
                    answer, new_handle = await ask(session, "which turn is this?")
                    # the turn sent just before the last kill may have been saved too, though never acknowledged
                    allowed = {completed + 1, completed + 2} if i == 0 and trial else {completed + 1}
                    assert answer in {f"This is turn {n}." for n in allowed}, f"trial {trial}: {answer}"
                    completed, handle = turn_of(answer), new_handle
                await session.send_client_content(turns={"role": "user", "parts": [{"text": "which turn?"}]})
                server.process.process.send_signal(signal.SIGKILL)  # mid-session, maybe mid-turn
                server.process.process.wait()
        finally:
            server.stop()
    assert completed >= 12


async def test_compression_through_the_sdk_keeps_the_context_bounded(emulator_server: LocaliveServer,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    client = sdk_client(emulator_server, monkeypatch)
    config = {"response_modalities": ["TEXT"], "context_window_compression": {
        "trigger_tokens": 300, "sliding_window": {"target_tokens": 150}}}
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        answers = [(await ask(session, "which turn is this?"))[0] for _ in range(300)]
    turns = [turn_of(a) for a in answers]
    assert turns[:5] == [1, 2, 3, 4, 5]
    assert max(turns) < 40  # the oldest turns were dropped again and again: the context stays small
