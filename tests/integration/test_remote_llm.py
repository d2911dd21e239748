"""A remote LLM (`serve --llm-url`) behind the official Python SDK: the backend is llama-cpp-python's own
OpenAI-compatible server (`python -m llama_cpp.server`, a third-party server, not a mock), serving the embedded
GGUF, started here on a free port."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import jsonschema_rs
import pytest
from google import genai
from google.genai import errors, types

from localive.models.weights import QWEN_05B, WeightSpec, ensure_weights
from localive.testing.backends import Backend, start_llama_server
from localive.testing.server import LocaliveServer, free_port, start_server
from localive.testing.speech import speech_pcm
from tests.integration.test_tools import WEATHER, WEATHER_JSON_SCHEMA, calls_of, parts_of, text_of, turn
from tests.integration.test_video import ask_about, text_frame
from tests.integration.test_voice import audio_of, one_turn, send_audio, transcripts
from tests.support.server import sdk_client
from tests.support.turns import ask

pytestmark = pytest.mark.llm
MODEL = "gemini-2.0-flash-live-001"
NATIVE = "gemini-2.5-flash-preview-native-audio-dialog"
TEXT = {"response_modalities": ["TEXT"], "temperature": 0.0}
DISCONNECTED = "Disconnected from client"  # what llama-cpp-python's server logs when it stops a stream


def start_backend(workdir: Path, port: int | None = None, *, weights: WeightSpec = QWEN_05B,
                  extra: Sequence[str] = ()) -> Backend:
    """llama-cpp-python's server on an embedded GGUF (the Qwen2.5-Coder-0.5B unless `weights` says), with `extra`
    server options; returns once /v1/models answers."""
    return start_llama_server(workdir, port, weights=weights, extra=extra)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    started = start_backend(tmp_path_factory.mktemp("llama-server"))
    yield started
    started.kill()


@pytest.fixture(scope="module")
def remote_server(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    server = start_server(tmp_path_factory.mktemp("remote-llm"), "--llm-url", backend.url,
                          "--turn-taking", "silence")
    yield server
    server.stop()


@pytest.fixture
def client(remote_server: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> genai.Client:
    return sdk_client(remote_server, monkeypatch)


async def test_text_turn_is_answered_by_the_backend(client: genai.Client, backend: Backend) -> None:
    requests = backend.log().count("POST /v1/chat/completions")
    async with client.aio.live.connect(model=MODEL, config=TEXT) as session:
        answer, _ = await ask(session, "What is the capital of France?")
    assert "Paris" in answer
    assert backend.count("POST /v1/chat/completions", requests + 1) > requests  # it was the backend that answered


async def test_audio_turn_is_answered_with_speech(client: genai.Client) -> None:
    config = {"response_modalities": ["AUDIO"], "input_audio_transcription": {},
              "output_audio_transcription": {}, "temperature": 0.0}
    async with client.aio.live.connect(model=NATIVE, config=config) as session:
        await send_audio(session, speech_pcm("What is the capital of France?"))
        messages = await one_turn(session)
    assert "Paris" in transcripts(messages, "output_transcription")
    assert len(audio_of(messages)) > 24000  # at least half a second at 24 kHz
    assert messages[-1].server_content and messages[-1].server_content.turn_complete


async def test_history_carries_over_turns(client: genai.Client) -> None:
    async with client.aio.live.connect(model=MODEL, config=TEXT) as session:
        first, _ = await ask(session, "What is the capital of France?")
        second, _ = await ask(session, "And of Germany?")
    assert "Paris" in first and "Berlin" in second


async def weather_round_trip(client: genai.Client) -> list[types.LiveServerMessage]:
    """Ask for the weather; answer the call; return the turn's messages once it is complete."""
    config = {**TEXT, "tools": [{"function_declarations": [WEATHER]}]}
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        async with asyncio.timeout(120):
            return await turn(session, "What's the weather in Paris?",
                              lambda call: {"temperature": 17, "sky": "light rain"})


def assert_called_then_answered(messages: list[types.LiveServerMessage]) -> None:
    """What the user of a function-calling app notices: one toolCall of the declared function with arguments that
    fit its schema, then, after the toolResponse, an answer and turnComplete (its wording is the model's)."""
    calls = calls_of(messages)
    assert [c.name for c in calls] == ["get_weather"]
    jsonschema_rs.validate(WEATHER_JSON_SCHEMA, calls[0].args)
    after = messages[next(i for i, m in enumerate(messages) if m.tool_call) + 1:]
    assert text_of(after).strip()
    assert after[-1].server_content and after[-1].server_content.turn_complete


async def test_function_call_round_trip(client: genai.Client) -> None:
    assert_called_then_answered(await weather_round_trip(client))


async def test_code_execution_runs_what_the_remote_model_writes(client: genai.Client, backend: Backend) -> None:
    """With --llm-url the remote backend writes the code too (no embedded code LLM is loaded): the SDK sees the
    program, its sandboxed run and an answer that uses what it printed. The 0.5B model behind the server writes
    this date program reliably; its sums of primes are often wrong (test_tools.py uses the 1.5B for those)."""
    config = {**TEXT, "tools": [{"code_execution": {}}]}
    requests = backend.log().count("POST /v1/chat/completions")
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        async with asyncio.timeout(180):
            messages = await turn(session, "How many days are there between 2024-01-01 and 2024-12-25?")
    parts = parts_of(messages)
    code = [p.executable_code for p in parts if p.executable_code]
    results = [p.code_execution_result for p in parts if p.code_execution_result]
    assert code and code[0].code and code[0].language == types.Language.PYTHON
    assert results and results[0].outcome == types.Outcome.OUTCOME_OK and (results[0].output or "").strip()
    assert results[0].output.strip() in text_of(messages)  # the answer comes from the run
    assert messages[-1].server_content and messages[-1].server_content.turn_complete
    assert backend.count("POST /v1/chat/completions", requests + 2) >= requests + 2  # the code, then the answer


async def test_non_blocking_call_lets_the_conversation_go_on(client: genai.Client) -> None:
    """A NON_BLOCKING function (as test_tools.py checks with the emulator): its turn ends without waiting for the
    response, the user is answered meanwhile, and the final result (WHEN_IDLE; a SILENT progress report before it)
    makes the model speak up on its own."""
    long_task = {"name": "long_task", "description": "Start the long task.", "behavior": "NON_BLOCKING"}
    config = {**TEXT, "tools": [{"function_declarations": [long_task]}]}
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        async with asyncio.timeout(240):
            started = await turn(session, "start the long task")  # returns at turnComplete: nothing answered
            assert [c.name for c in calls_of(started)] == ["long_task"]
            assert started[-1].server_content and started[-1].server_content.turn_complete
            call = calls_of(started)[0]
            meanwhile = await turn(session, "hello")
            assert text_of(meanwhile).strip() and meanwhile[-1].server_content.turn_complete
            await session.send_tool_response(function_responses=[types.FunctionResponse(
                id=call.id, name=call.name, response={"result": "80%"}, will_continue=True,
                scheduling=types.FunctionResponseScheduling.SILENT)])
            await session.send_tool_response(function_responses=[types.FunctionResponse(
                id=call.id, name=call.name, response={"result": "done"},
                scheduling=types.FunctionResponseScheduling.WHEN_IDLE)])
            report = [m async for m in session.receive()]  # a turn the user did not ask for
    assert text_of(report).strip()
    assert report[-1].server_content and report[-1].server_content.turn_complete


async def test_the_remote_model_answers_about_a_video_frame(client: genai.Client, backend: Backend) -> None:
    """Frames become text in localive's own vision stage (embedded OCR here), which the remote LLM answers from."""
    requests = backend.log().count("POST /v1/chat/completions")
    answer, usage = await ask_about(client, text_frame("OPEN SESAME 42"), "What does the screen say?")
    assert {"OPEN", "SESAME", "42"} <= set(re.findall(r"\w+", answer.upper())), answer
    assert usage and any(d.modality == types.MediaModality.VIDEO for d in usage.prompt_tokens_details or [])
    assert backend.count("POST /v1/chat/completions", requests + 1) > requests


async def test_a_vision_backend_that_fails_closes_with_1011_naming_it(
        backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--vision openai` pointed at a chat server whose model cannot see (the 0.5B on llama-cpp-python's server
    answers HTTP 500 to an image): the session ends with 1011 naming the vision stage, not an internal error."""
    server = start_server(tmp_path, "--llm-url", backend.url, "--voice", "off", "--vision", "openai",
                          "--vision-url", backend.url)
    try:
        with pytest.raises(errors.APIError) as closed:
            await ask_about(sdk_client(server, monkeypatch), text_frame("HI"), "What does the screen say?")
    finally:
        server.stop()
    assert closed.value.code == 1011 and "The vision backend failed: HTTP 500" in str(closed.value)
    assert backend.url not in str(closed.value)


async def test_interruption_stops_the_backends_generation(client: genai.Client, backend: Backend) -> None:
    before = backend.log().count(DISCONNECTED)
    async with client.aio.live.connect(model=MODEL, config=TEXT) as session:
        await session.send_client_content(turns={"role": "user", "parts": [
            {"text": "Count from 1 to 400, one number per line."}]})
        seen: list[types.LiveServerMessage] = []
        interrupted_at = None
        async for message in session.receive():
            seen.append(message)
            if interrupted_at is None and len(text_of(seen)) > 20:
                await session.send_client_content(turns={"role": "user", "parts": [{"text": "Stop. Say hi."}]})
                interrupted_at = time.monotonic()
        assert interrupted_at is not None
        assert any(m.server_content and m.server_content.interrupted for m in seen)
        while time.monotonic() - interrupted_at < 5:  # the server logs it when it stops the stream
            if backend.log().count(DISCONNECTED) > before:
                break
            await asyncio.sleep(0.05)
        stopped_s = time.monotonic() - interrupted_at
        assert backend.log().count(DISCONNECTED) > before, "the backend went on generating"
        print(f"backend stopped generating {stopped_s * 1000:.0f} ms after the interrupting message")
        answer = "".join([m.text or "" async for m in session.receive()])  # the next turn is answered
    assert answer.strip()



# --- failures: a backend of their own, killed and started again --------------------------------------------


@pytest.fixture(scope="module")
def fragile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Backend, LocaliveServer, Path]]:
    workdir = tmp_path_factory.mktemp("fragile")
    backend = start_backend(workdir)
    server = start_server(workdir / "server", "--llm-url", backend.url, "--voice", "off",
                          "--llm-max-concurrency", "1", "--llm-timeout-s", "20")
    yield backend, server, workdir
    server.stop()
    backend.kill()


async def test_a_full_backend_refuses_new_sessions_with_1013(
        fragile: tuple[Backend, LocaliveServer, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    client = sdk_client(fragile[1], monkeypatch)
    async with client.aio.live.connect(model=MODEL, config=TEXT):
        with pytest.raises(errors.APIError) as refused:
            async with client.aio.live.connect(model=MODEL, config=TEXT) as second:
                _ = [m async for m in second.receive()]
        assert refused.value.code == 1013 and "LLM backend" in str(refused.value)
    async with client.aio.live.connect(model=MODEL, config=TEXT) as session:  # the slot is free again
        assert "Paris" in (await ask(session, "What is the capital of France?"))[0]


async def test_a_backend_that_dies_closes_the_session_with_1011_and_it_resumes(
        fragile: tuple[Backend, LocaliveServer, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    backend, server, workdir = fragile
    client = sdk_client(server, monkeypatch)
    config = {**TEXT, "session_resumption": {}}
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        first, handle = await ask(session, "What is the capital of France?")
        assert "Paris" in first and handle
        backend.kill()
        with pytest.raises(errors.APIError) as closed:
            await ask(session, "And of Germany?")
    assert closed.value.code == 1011 and "LLM backend" in str(closed.value)
    assert "Internal error" not in str(closed.value)
    restarted = start_backend(workdir, backend.port)  # the same URL comes back
    fragile[0].process, fragile[0].lines = restarted.process, restarted.lines
    async with client.aio.live.connect(model=MODEL, config={**TEXT, "session_resumption": {"handle": handle}}) as s:
        answer, _ = await ask(s, "And of Germany?")
    assert "Berlin" in answer  # the conversation before the failure is still there


def test_serve_refuses_to_start_without_its_backend(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    env = {**os.environ, "LOCALIVE_LLM_API_KEY": "sk-secret-not-to-be-shown"}
    result = subprocess.run([sys.executable, "-m", "localive", "serve", "--llm-url", dead, "--voice", "off",
                             "--port", str(free_port()), "--plain-port", "off", "--data-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode != 0
    errors_said = [line for line in result.stderr.splitlines() if "LLM backend" in line]
    assert errors_said == [f"localive: LLM backend failed: cannot reach {dead}: connection refused or unreachable"]
    assert "Traceback" not in result.stderr and "sk-secret" not in result.stderr + result.stdout


async def test_a_backend_down_at_start_refuses_sessions_with_1013_until_it_answers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--llm-may-start-down`: serve starts without its backend; sessions get 1013 (try later), not a session that
    fails mid-turn; once the backend answers, sessions work — nothing restarts."""
    port = free_port()
    server = start_server(tmp_path / "localive", "--llm-url", f"http://127.0.0.1:{port}/v1", "--llm-model",
                          str(ensure_weights(QWEN_05B, progress=False)), "--llm-may-start-down", "--voice", "off")
    backend: Backend | None = None
    try:
        client = sdk_client(server, monkeypatch)
        with pytest.raises(errors.APIError) as refused:
            async with client.aio.live.connect(model=MODEL, config=TEXT) as session:
                await ask(session, "What is the capital of France?")
        assert refused.value.code == 1013 and "not reachable" in str(refused.value)
        backend = start_backend(tmp_path / "llm", port)
        answer = ""
        deadline = time.monotonic() + 30
        while not answer and time.monotonic() < deadline:
            try:
                async with client.aio.live.connect(model=MODEL, config=TEXT) as session:
                    answer, _ = await ask(session, "What is the capital of France?")
            except errors.APIError as exc:
                assert exc.code == 1013, exc  # at most a recheck away (2 s)
                await asyncio.sleep(1)
        assert answer.strip()
    finally:
        server.stop()
        if backend is not None:
            backend.kill()


async def test_thinking_runs_on_the_remote_backend(client: genai.Client, backend: Backend) -> None:
    """A thinking model's reasoning pass and its answer both come from the backend; thoughts only when asked."""
    config = {"response_modalities": ["AUDIO"], "output_audio_transcription": {}, "temperature": 0.0,
              "thinking_config": {"thinking_budget": 128, "include_thoughts": True}}
    requests = backend.log().count("POST /v1/chat/completions")
    async with client.aio.live.connect(model="gemini-2.5-flash-exp-native-audio-thinking-dialog",
                                       config=config) as session:
        await session.send_client_content(turns={"role": "user", "parts": [
            {"text": "Is 91 a prime number? Answer yes or no."}]})
        async with asyncio.timeout(120):
            messages = [m async for m in session.receive()]
    parts = [p for m in messages if m.server_content and m.server_content.model_turn
             for p in m.server_content.model_turn.parts or []]
    assert any(p.thought and p.text for p in parts)  # the reasoning pass, shown as thoughts
    assert audio_of(messages) and transcripts(messages, "output_transcription").strip()  # then a spoken answer
    usage = messages[-1].usage_metadata
    assert usage is not None and (usage.thoughts_token_count or 0) > 0
    assert backend.count("POST /v1/chat/completions", requests + 2) >= requests + 2  # both passes on the backend


# --- a server whose `tools` are not used: --llm-tools json-schema --------------------------------------------


@pytest.fixture(scope="module")
def schema_server(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    server = start_server(tmp_path_factory.mktemp("json-schema-tools"), "--llm-url", backend.url,
                          "--llm-tools", "json-schema", "--voice", "off")
    yield server
    server.stop()


async def test_function_call_round_trip_without_the_servers_tools(
        schema_server: LocaliveServer, backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """The functions are described in the prompt instead of sent as `tools` (for servers started without a tool
    parser): the SDK sees the same toolCall and answer."""
    requests = backend.log().count("POST /v1/chat/completions")
    assert_called_then_answered(await weather_round_trip(sdk_client(schema_server, monkeypatch)))
    assert backend.count("POST /v1/chat/completions", requests + 2) >= requests + 2  # the call, then the answer
