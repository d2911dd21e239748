"""Long sessions through the official Python SDK: resumption (also across a `kill -9`), GoAway, compression."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest
from google import genai
from google.genai import types

from tests.support.server import RunningServer, sdk_client

SEED = Path(__file__).parent.parent / "seed_programs"
MODEL = "gemini-2.0-flash-live-001"


async def ask(session: genai.live.AsyncSession, text: str) -> tuple[str, str | None]:
    """One turn; returns the answer and the last resumable handle received during it."""
    await session.send_client_content(turns={"role": "user", "parts": [{"text": text}]})
    answer, handle = "", None
    async for message in session.receive():
        answer += message.text or ""
        update = message.session_resumption_update
        if update and update.resumable and update.new_handle:
            handle = update.new_handle
    return answer, handle


@pytest.mark.llm
async def test_seed_resumption_program_then_resume_with_its_handle(llm_server: RunningServer,
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
    client = sdk_client(llm_server, monkeypatch)
    config = {"response_modalities": ["TEXT"], "temperature": 0.0,
              "session_resumption": {"handle": handle.group(1)}}
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        answer, _ = await ask(session, "Repeat exactly the first message I sent you.")
    assert "hello world" in answer.lower()


@pytest.mark.llm
async def test_a_resumed_session_remembers_a_fact(llm_server: RunningServer,
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
