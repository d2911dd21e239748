"""localive.testing, the public test package: its pytest plugin (a test that leaves a task or a thread running
fails), its import cost, the session harness and the server launcher."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from localive.clock import VirtualClock
from localive.testing import (
    EmulatorLLM,
    EmulatorScript,
    ScriptedASR,
    SessionHarness,
    ToneTTS,
    serve,
    tone_frame,
)

SRC = Path(__file__).resolve().parents[2] / "src"

LEAKY_TESTS = '''
import asyncio
import threading

import pytest


async def test_leaves_a_task_running():
    asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="forgotten")


async def test_awaits_its_task():
    task = asyncio.create_task(asyncio.sleep(0.01))
    await task


async def test_cancels_its_task_without_waiting():
    task = asyncio.create_task(asyncio.sleep(3600))
    task.cancel()  # done a loop pass later: not a leak


def test_leaves_a_thread_running():
    threading.Thread(target=threading.Event().wait, args=(3,), name="forgotten-thread").start()


def test_leaves_a_daemon_thread():  # a process-wide pool's, say: not counted
    threading.Thread(target=threading.Event().wait, args=(3,), daemon=True).start()


def test_joins_its_thread():
    thread = threading.Thread(target=lambda: None)
    thread.start()
    thread.join()


@pytest.mark.leaves_running("a fixture would stop it")
async def test_marked_may_leave_a_task():
    asyncio.get_running_loop().create_task(asyncio.sleep(3600))
'''


def test_the_plugin_fails_tests_that_leave_a_task_or_a_thread_running(tmp_path: Path) -> None:
    (tmp_path / "test_leaky.py").write_text(LEAKY_TESTS)
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "localive.testing.pytest_plugin", "-p",
                          "no:cacheprovider", "-o", "asyncio_mode=auto", "-rA", "-q", "test_leaky.py"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
                         env={**os.environ, "PYTHONPATH": str(SRC)})
    outcomes = {line.split("::")[-1].split()[0]: line.split()[0] for line in run.stdout.splitlines()
                if line.startswith(("PASSED ", "FAILED ", "ERROR "))}
    assert outcomes == {
        "test_leaves_a_task_running": "FAILED",
        "test_awaits_its_task": "PASSED",
        "test_cancels_its_task_without_waiting": "PASSED",
        "test_leaves_a_thread_running": "FAILED",
        "test_leaves_a_daemon_thread": "PASSED",
        "test_joins_its_thread": "PASSED",
        "test_marked_may_leave_a_task": "PASSED",
    }, run.stdout[-3000:]
    assert "left 1 asyncio task(s) running" in run.stdout and "forgotten" in run.stdout
    assert "left 1 thread(s) running: forgotten-thread" in run.stdout


def test_importing_localive_testing_loads_neither_numpy_nor_pytest() -> None:
    code = ("import json, sys; import localive.testing as t; t.serve; t.VirtualClock; t.tone_frame; t.text_language; "
            "print(json.dumps([m for m in ('numpy', 'soxr', 'pytest', 'google.genai') if m in sys.modules]))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
                         env={**os.environ, "PYTHONPATH": str(SRC)})
    assert json.loads(run.stdout) == []


async def test_the_session_harness_runs_a_text_turn_on_the_emulator() -> None:
    llm = EmulatorLLM(EmulatorScript.from_dict({"default": "You said: {input}"}))
    async with SessionHarness(llm=llm, clock=VirtualClock()) as session:
        assert "setupComplete" in await session.setup()
        messages = await session.say("hello there")
        assert SessionHarness.text_of(messages) == "You said: hello there"
        assert messages[-1]["serverContent"]["turnComplete"]


async def test_the_session_harness_hears_speech_and_answers_with_audio() -> None:
    asr = ScriptedASR(["what time is it"])
    async with SessionHarness(llm=EmulatorLLM(), asr=asr, tts=ToneTTS(ms_per_char=5.0)) as session:
        await session.setup(generationConfig={"responseModalities": ["AUDIO"]})
        for frame in (tone_frame(0.2, loud=False), tone_frame(0.6), tone_frame(0.7, loud=False)):
            await session.send(frame)  # speech, then more than the default 500 ms of silence
        messages = await session.drain_turn()
        assert SessionHarness.audio_of(messages)
        assert [c.audio_s for c in asr.calls] and asr.calls[0].audio_s >= 0.5


def test_serve_runs_localive_serve_for_the_block(tmp_path: Path) -> None:
    import asyncio

    async def one_turn(url: str) -> str:
        async with connect(url, open_timeout=30) as ws:
            await ws.send(json.dumps({"setup": {"model": "models/gemini-2.0-flash-live-001",
                                                "generationConfig": {"responseModalities": ["TEXT"]}}}))
            assert "setupComplete" in json.loads(await ws.recv())
            await ws.send(json.dumps({"clientContent": {"turns": [{"role": "user", "parts": [{"text": "ping"}]}],
                                                        "turnComplete": True}}))
            text = ""
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                content = message.get("serverContent", {})
                text += "".join(p.get("text", "") for p in content.get("modelTurn", {}).get("parts", []))
                if content.get("turnComplete"):
                    return text

    with serve("--llm", "emulator", "--voice", "off", workdir=tmp_path) as server:
        assert "ping" in asyncio.run(one_turn(server.live_url))
        assert server.env and (server.data_dir / "tls" / "ca.pem").is_file()
        process = server.process.process
    assert process.poll() is not None  # stopped at the end of the block


async def test_serve_works_in_async_with_too() -> None:
    async with serve("--llm", "emulator", "--voice", "off") as server:
        data_dir = server.data_dir
        assert data_dir.is_dir() and server.pid > 0
    assert not data_dir.exists()  # its temporary directory went with it


@pytest.mark.parametrize("name", ["serve", "SessionHarness", "VirtualClock", "speech_pcm", "word_error_rate"])
def test_every_public_name_resolves(name: str) -> None:
    import localive.testing

    assert getattr(localive.testing, name) is not None
    assert name in localive.testing.__all__
