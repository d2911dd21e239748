"""The official google-genai Python SDK, configured only through `localive env` variables, against a real server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from google import genai
from google.genai import errors, types

from localive.testing.server import LocaliveServer
from tests.support.server import sdk_client

SEED = Path(__file__).parent.parent / "seed_programs"
TEXT = {"response_modalities": ["TEXT"]}
MODEL = "gemini-2.0-flash-live-001"


def run_seed(name: str, server: LocaliveServer) -> str:
    result = subprocess.run([sys.executable, str(SEED / name)], env=server.client_env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def client(emulator_server: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> genai.Client:
    return sdk_client(emulator_server, monkeypatch)


async def ask(session: genai.live.AsyncSession, text: str) -> tuple[str, list[types.LiveServerMessage]]:
    await session.send_client_content(turns={"role": "user", "parts": [{"text": text}]}, turn_complete=True)
    messages = [m async for m in session.receive()]
    return "".join(m.text or "" for m in messages), messages


def test_seed_establishing_a_connection_runs_verbatim(emulator_server: LocaliveServer) -> None:
    out = run_seed("establishing_a_connection.py", emulator_server)
    assert "Session started successfully." in out
    assert "error" not in out.lower()


def test_seed_sending_and_receiving_text_runs_verbatim(emulator_server: LocaliveServer) -> None:
    out = run_seed("sending_and_receiving_text.py", emulator_server)
    assert "Gemini: You said: Hello, how are you?" in out
    assert "Generation complete." in out
    assert "Session ended." in out


async def test_turn_streams_text_then_generation_complete_then_turn_complete(client: genai.Client) -> None:
    async with client.aio.live.connect(model=MODEL, config=TEXT) as session:
        assert session.session_id  # from setupComplete.sessionId
        text, messages = await ask(session, "What is the capital of France?")
    assert text == "The capital of France is Paris."
    content = [m.server_content for m in messages if m.server_content]
    texts = [i for i, c in enumerate(content) if c.model_turn]
    generation = [i for i, c in enumerate(content) if c.generation_complete]
    assert len(texts) > 1, "the reply should stream in several pieces"
    assert generation == [len(content) - 2] and content[-1].turn_complete
    assert max(texts) < generation[0]


async def test_system_instruction_and_models_prefix_are_accepted(client: genai.Client) -> None:
    config = {
        "system_instruction": types.Content(parts=[types.Part(text="You are a friendly and helpful assistant.")]),
        "response_modalities": ["TEXT"],
        "temperature": 0.2, "top_p": 0.9, "top_k": 40, "max_output_tokens": 256, "seed": 7,
    }
    async with client.aio.live.connect(model=f"models/{MODEL}", config=config) as session:
        text, _ = await ask(session, "ping")
    assert text == "You said: ping"


async def test_incremental_content_updates(client: genai.Client) -> None:
    """turn_complete=False adds to context without answering; turn_complete=True answers."""
    async with client.aio.live.connect(model=MODEL, config=TEXT) as session:
        turns = [
            {"role": "user", "parts": [{"text": "What is the capital of France?"}]},
            {"role": "model", "parts": [{"text": "Paris"}]},
        ]
        await session.send_client_content(turns=turns, turn_complete=False)
        next_turn = [{"role": "user", "parts": [{"text": "What about Germany?"}]}]
        await session.send_client_content(turns=next_turn, turn_complete=True)
        messages = [m async for m in session.receive()]
    text = "".join(m.text or "" for m in messages)
    assert text == "The capital of Germany is Berlin."  # one answer only: the first send did not trigger one
    usage = messages[-1].usage_metadata
    assert usage is not None and usage.prompt_token_count > 12  # all three turns are in the prompt


async def test_token_count(client: genai.Client) -> None:
    async with client.aio.live.connect(model=MODEL, config=TEXT) as session:
        _, messages = await ask(session, "What is the capital of France?")
    usage = [m.usage_metadata for m in messages if m.usage_metadata]
    assert len(usage) == 1 and messages[-1].usage_metadata is usage[0]
    u = usage[0]
    assert u.prompt_token_count > 0 and u.response_token_count > 0
    assert u.total_token_count == u.prompt_token_count + u.response_token_count
    assert [(d.modality, d.token_count) for d in u.response_tokens_details] == [
        (types.MediaModality.TEXT, u.response_token_count)]
    assert [d.modality for d in u.prompt_tokens_details] == [types.MediaModality.TEXT]


async def test_realtime_text_input_gets_an_answer(client: genai.Client) -> None:
    async with client.aio.live.connect(model=MODEL, config=TEXT) as session:
        await session.send_realtime_input(text="capital of France?")
        text = "".join([m.text or "" async for m in session.receive()])
    assert text == "The capital of France is Paris."


async def test_client_content_interrupts_the_answer(client: genai.Client) -> None:
    async with client.aio.live.connect(model=MODEL, config=TEXT) as session:
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "count slowly"}]})
        first: list[types.LiveServerMessage] = []
        async for message in session.receive():
            first.append(message)
            if message.text:  # the model is speaking: interrupt it
                await session.send_client_content(
                    turns={"role": "user", "parts": [{"text": "capital of France?"}]})
        interrupted = [m for m in first if m.server_content and m.server_content.interrupted]
        assert len(interrupted) == 1
        assert first[-1].server_content.turn_complete
        assert not any(m.server_content and m.server_content.generation_complete for m in first)
        partial = "".join(m.text or "" for m in first)
        assert partial and len(partial) < len("one two three four five six seven eight nine ten")
        second = "".join([m.text or "" async for m in session.receive()])
    assert second == "The capital of France is Paris."


async def test_fifty_concurrent_sessions_all_complete(client: genai.Client) -> None:
    async def one(i: int) -> str:
        async with client.aio.live.connect(model=MODEL, config=TEXT) as session:
            text, _ = await ask(session, f"session {i}")
            return text

    results = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(50))), timeout=120)
    assert results == [f"You said: session {i}" for i in range(50)]


async def test_unknown_model_is_refused_with_1008(client: genai.Client) -> None:
    with pytest.raises(errors.APIError) as info:
        async with client.aio.live.connect(model="gemini-no-such-model", config=TEXT) as session:
            await session.send_client_content(turns={"role": "user", "parts": [{"text": "hi"}]})
            async for _ in session.receive():
                pass
    assert info.value.code == 1008
    assert "models/gemini-no-such-model is not found" in str(info.value)
