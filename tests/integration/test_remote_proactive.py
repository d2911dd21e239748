"""Proactive audio with a remote LLM (`serve --llm-url`): the judge is the backend itself, asked the yes/no
question alone (chat completions cannot score continuations), read from its logprobs or, where it returns none,
from a constrained answer. The backend is llama-cpp-python's server on the Qwen2.5-Coder-1.5B GGUF (the 0.5B's
yes/no answer is "no" to nearly everything: engines/llm/addressed.py); the server without logprobs is the same
program started with `--logits_all false`, on the 0.5B (only that the judgement still comes is checked there)."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from google.genai import errors

from localive.engines.llm.addressed import ANSWERS, yes_no_messages
from localive.engines.llm.base import BackendError
from localive.engines.llm.openai_chat import OpenAIChatLLM, RemoteSettings, check_backend
from localive.models.weights import QWEN_15B
from localive.session.proactive import judge
from localive.testing.backends import Backend
from localive.testing.server import LocaliveServer, free_port, start_server
from localive.testing.speech import speech_pcm
from tests.integration.test_proactive import COOK, answered
from tests.integration.test_remote_llm import start_backend
from tests.integration.test_voice import NATIVE, send_audio
from tests.support.server import sdk_client

pytestmark = pytest.mark.llm
# Judged by the 1.5B's yes/no question (benchmarks/proactive.py's path) with wide margins: log P(yes) - log P(no)
# measured at +2.21 and -2.55 (x 5.6 in the verdict), and the constrained answer agrees on both.
QUESTION = "How do I make a simple tomato sauce?"
SIDE = "Honey, can you pick up the kids after school?"
REQUEST = "POST /v1/chat/completions"
NO_LOGPROBS = ("--logits_all", "false")  # llama-cpp-python's server then answers logprobs with HTTP 500


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    started = start_backend(tmp_path_factory.mktemp("llama-server-judge"), weights=QWEN_15B)
    yield started
    started.kill()


@pytest.fixture(scope="module")
def remote_server(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    server = start_server(tmp_path_factory.mktemp("remote-judge"), "--llm-url", backend.url,
                          "--turn-taking", "silence", "--llm-timeout-s", "120")  # a 1.5B on 2 shared cores
    yield server
    server.stop()


def remote_llm(url: str, *, logprobs: bool = True) -> OpenAIChatLLM:
    settings = RemoteSettings(url, logprobs=logprobs, first_token_timeout_s=120, read_timeout_s=120)
    return OpenAIChatLLM(replace(settings, model=check_backend(settings)))


async def test_side_talk_gets_no_answer_when_the_remote_backend_judges(
        remote_server: LocaliveServer, backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    client = sdk_client(remote_server, monkeypatch)
    requests = backend.log().count(REQUEST)
    assert await answered(client, True, SIDE, QUESTION) == [False, True]
    assert await answered(client, False, SIDE) == [True]
    judged = [line for line in remote_server.log().splitlines() if "proactive session=" in line]
    assert len(judged) == 2  # the side talk and the question; nothing without the flag
    assert all(f"@{backend.url} " in line and "channel=-" in line for line in judged)  # the backend, question alone
    assert "respond=False" in judged[0] and "respond=True" in judged[1]
    assert "yes_no=inf" not in " ".join(judged) and "returned no logprobs" not in remote_server.log()
    assert backend.count(REQUEST, requests + 4) >= requests + 4  # two judgements, two answers
    print("\n".join(judged))


async def test_the_logprobs_and_the_constrained_answer_agree_on_the_backend(backend: Backend) -> None:
    from_logprobs, constrained = remote_llm(backend.url), remote_llm(backend.url, logprobs=False)
    try:
        for llm in (from_logprobs, constrained):
            question, side = await judge(llm, COOK, QUESTION, []), await judge(llm, COOK, SIDE, [])
            assert question.respond and not side.respond and question.channel is None
            # read from probabilities, or (constrained) an answer with none: yes_no is then ±inf
            assert math.isfinite(question.yes_no) == (llm is from_logprobs) == math.isfinite(side.yes_no)
            print(f"{'logprobs' if llm is from_logprobs else 'constrained'}: yes_no {question.yes_no:+.2f} "
                  f"(question) / {side.yes_no:+.2f} (side talk)")
    finally:
        await from_logprobs.aclose()
        await constrained.aclose()


async def test_a_backend_without_logprobs_is_found_out_once_and_judges_by_a_constrained_answer(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    plain = start_backend(tmp_path, extra=NO_LOGPROBS)
    llm = remote_llm(plain.url)
    try:
        with caplog.at_level(logging.INFO, logger="localive.engines"):
            first = await llm.reply_start_logprobs(yes_no_messages(COOK, QUESTION), ANSWERS)
            second = await llm.reply_start_logprobs(yes_no_messages(COOK, SIDE), ANSWERS)
        for answer in (first, second):
            assert sorted(answer) == [-math.inf, 0.0]  # one answer chosen (which one: the 0.5B's business)
        assert not llm.logprobs
        told = [r.getMessage() for r in caplog.records if "returned no logprobs" in r.getMessage()]
        assert len(told) == 1 and plain.url in told[0]
        # refused once each, not every time: the logprobs, then OpenAI's json_schema form of the constrained answer
        assert plain.count(f'{REQUEST} HTTP/1.1" 500', 2) == 2
        assert plain.count(f'{REQUEST} HTTP/1.1" 200', 2) == 2  # the constrained answers, llama-cpp-python's form
        assert llm.schema_form == "json_object"
    finally:
        await llm.aclose()
        plain.kill()


async def test_a_judgement_that_fails_on_the_backend_closes_the_session_with_1011(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = start_backend(tmp_path / "llm", extra=NO_LOGPROBS)
    server = start_server(tmp_path / "localive", "--llm-url", plain.url, "--turn-taking", "silence")
    try:
        client = sdk_client(server, monkeypatch)
        config = {"response_modalities": ["AUDIO"], "system_instruction": COOK, "temperature": 0.0,
                  "proactivity": {"proactive_audio": True}}
        async with client.aio.live.connect(model=NATIVE, config=config) as session:  # type: ignore[arg-type]
            await send_audio(session, speech_pcm(QUESTION))
            async with asyncio.timeout(120):  # judged by a constrained answer, answered or not: the turn ends
                async for message in session.receive():
                    if message.server_content and message.server_content.turn_complete:
                        break
            assert server.log().count("returned no logprobs") == 1
            plain.kill()
            with pytest.raises(errors.APIError) as closed:
                await send_audio(session, speech_pcm(SIDE))
                async with asyncio.timeout(60):
                    _ = [m async for m in session.receive()]
        assert closed.value.code == 1011 and "LLM backend" in str(closed.value)
        assert "Internal error" not in str(closed.value)
    finally:
        server.stop()
        plain.kill()


async def test_an_unreachable_judge_fails_like_any_backend() -> None:
    llm = OpenAIChatLLM(RemoteSettings(f"http://127.0.0.1:{free_port()}/v1", model="m"))
    try:
        with pytest.raises(BackendError, match="LLM backend failed: connection refused"):
            await judge(llm, COOK, QUESTION, [])
        assert llm.health.down  # new sessions are refused (1013) until it answers again
    finally:
        await llm.aclose()
