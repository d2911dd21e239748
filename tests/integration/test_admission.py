"""Admission by load through the official Python SDK: a process over its load limit refuses a new session with
1013 and says so on /readyz, and still admits a session that resumes with a handle (made on another process
sharing the session store)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from google import genai

from localive.server.load import BUSY_REASON
from localive.testing.server import LocaliveServer, start_server
from tests.support.server import sdk_client
from tests.support.turns import ask, resuming, turn_of

MODEL = "gemini-2.0-flash-live-001"
SCRIPT = str(Path(__file__).parent.parent / "data" / "emulator_script.toml")


def readyz(server: LocaliveServer) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"{server.plain_base_url}/readyz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


async def test_an_overloaded_process_refuses_new_sessions_and_admits_resuming_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = str(tmp_path / "sessions.sqlite3")
    common = ("--llm", "emulator", "--emulator-script", SCRIPT, "--voice", "off", "--sessions-db", shared)
    normal = start_server(tmp_path / "normal", *common)
    # any work at all is over this limit: the process counts as overloaded from its first load sample on
    loaded = start_server(tmp_path / "loaded", *common, "--admission", "load", "--admission-cores", "0.000000001")
    try:
        client = sdk_client(normal, monkeypatch)
        async with client.aio.live.connect(model=MODEL, config=resuming(None)) as session:
            answer, handle = await ask(session)
        assert turn_of(answer) == 1 and handle
        assert readyz(normal)[0] == 200
        for _ in range(100):  # its first load sample comes 0.25 s after the start
            status, body = readyz(loaded)
            if status == 503:
                break
            await asyncio.sleep(0.05)
        assert (status, body) == (503, {"status": "unavailable", "reasons": ["overloaded"]})
        client = sdk_client(loaded, monkeypatch)
        with pytest.raises(genai.errors.APIError) as refused:
            async with client.aio.live.connect(model=MODEL, config=resuming(None)) as session:
                await ask(session)
        assert refused.value.code == 1013 and BUSY_REASON in str(refused.value)
        async with client.aio.live.connect(model=MODEL, config=resuming(handle)) as session:
            answer, _ = await ask(session)
        assert turn_of(answer) == 2  # admitted ahead of new sessions, with its conversation
        assert "a new session refused (1013): serving work" in loaded.log()
    finally:
        normal.stop()
        loaded.stop()
