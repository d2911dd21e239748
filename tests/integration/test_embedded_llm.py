"""The real embedded LLM (Qwen2.5-Coder-0.5B on llama.cpp) behind the official Python SDK."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google import genai

from localive.testing.server import LocaliveServer
from tests.support.server import sdk_client

pytestmark = pytest.mark.llm
SEED = Path(__file__).parent.parent / "seed_programs"
MODEL = "gemini-2.0-flash-live-001"


@pytest.fixture
def client(llm_server: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> genai.Client:
    return sdk_client(llm_server, monkeypatch)


async def answer(client: genai.Client, question: str, system: str | None = None, **config: object) -> str:
    settings = {"response_modalities": ["TEXT"], "temperature": 0.0, **config}
    if system:
        settings["system_instruction"] = system
    async with client.aio.live.connect(model=MODEL, config=settings) as session:
        await session.send_client_content(turns={"role": "user", "parts": [{"text": question}]})
        return "".join([m.text or "" async for m in session.receive()])


def test_seed_text_program_prints_an_answer(llm_server: LocaliveServer) -> None:
    result = subprocess.run([sys.executable, str(SEED / "sending_and_receiving_text.py")],
                            env=llm_server.client_env(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    gemini_line = next(line for line in result.stdout.splitlines() if line.startswith("Gemini: "))
    assert len(gemini_line.removeprefix("Gemini: ").strip()) > 3
    assert "Generation complete." in result.stdout


async def test_question_gets_a_relevant_answer(client: genai.Client) -> None:
    text = await answer(client, "What is the capital of France?")
    assert "Paris" in text


async def test_system_instruction_changes_the_answer(client: genai.Client) -> None:
    plain = await answer(client, "What is the capital of France?")
    french = await answer(client, "What is the capital of France?", system="Always answer in French.")
    assert "Paris" in french and french != plain
    assert any(word in french.lower() for word in ("capitale", " est ", " la ", " de "))


async def test_earlier_turns_are_context(client: genai.Client) -> None:
    async with client.aio.live.connect(model=MODEL, config={"response_modalities": ["TEXT"],
                                                            "temperature": 0.0}) as session:
        await session.send_client_content(turns=[
            {"role": "user", "parts": [{"text": "What is the capital of France?"}]},
            {"role": "model", "parts": [{"text": "Paris."}]},
        ], turn_complete=False)
        await session.send_client_content(turns=[{"role": "user", "parts": [{"text": "And of Germany?"}]}])
        text = "".join([m.text or "" async for m in session.receive()])
    assert "Berlin" in text


async def test_max_output_tokens_limits_the_reply(client: genai.Client) -> None:
    async with client.aio.live.connect(model=MODEL, config={"response_modalities": ["TEXT"],
                                                            "max_output_tokens": 5}) as session:
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "Write a long story."}]})
        messages = [m async for m in session.receive()]
    assert messages[-1].usage_metadata.response_token_count <= 5


async def test_usage_counts_match_the_models_tokenizer(client: genai.Client) -> None:
    from llama_cpp import Llama

    from localive.models.weights import QWEN_05B, ensure_weights

    tokenizer = Llama(str(ensure_weights(QWEN_05B, progress=False)), vocab_only=True, verbose=False)

    def tokens(text: str) -> int:
        return len(tokenizer.tokenize(text.encode(), add_bos=False, special=False))

    config = {"response_modalities": ["TEXT"], "temperature": 0.0}
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        usages, texts = [], []
        for question in ("What is the capital of France?", "And of Italy?"):
            await session.send_client_content(turns={"role": "user", "parts": [{"text": question}]})
            messages = [m async for m in session.receive()]
            texts.append("".join(m.text or "" for m in messages))
            usages.append(messages[-1].usage_metadata)
    for usage, text in zip(usages, texts, strict=True):
        assert usage.response_token_count == tokens(text)
        assert usage.total_token_count == usage.prompt_token_count + usage.response_token_count
    # the second prompt holds the first exchange: it grows by at least the first answer and question
    assert usages[1].prompt_token_count >= usages[0].prompt_token_count + tokens(texts[0]) + tokens("And of Italy?")
