"""Tools end to end: the official Python SDK against a real server, with the embedded LLMs (Qwen2.5-Coder 0.5B;
1.5B for sessions with code execution) — and the emulator where exact sequencing is the point."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jsonschema_rs
import pytest
from google import genai
from google.genai import types

from localive.testing.server import LocaliveServer
from tests.support.server import sdk_client

SEED = Path(__file__).parent.parent / "seed_programs"
MODEL = "gemini-2.0-flash-live-001"
LIGHTS = [{"name": "turn_on_the_lights"}, {"name": "turn_off_the_lights"}]
WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather in a city.",
    "parameters": {"type": "OBJECT", "properties": {
        "city": {"type": "STRING", "description": "the city, e.g. Paris"},
        "unit": {"type": "STRING", "enum": ["celsius", "fahrenheit"]},
    }, "required": ["city"]},
}
WEATHER_JSON_SCHEMA = {"type": "object", "properties": {
    "city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city"]}
PHRASINGS = [
    "What's the weather in Paris?",
    "Is it raining in London right now?",
    "How hot is it in Tokyo today, in fahrenheit?",
    "Tell me the temperature in Berlin.",
    "weather for madrid please",
    "Check the forecast for Sydney in celsius.",
    "How cold is it in Oslo?",
    "Could you look up the current conditions in New York?",
    "I'm flying to Lisbon, what's the weather like there?",
    "Give me the current weather for Cairo.",
]

Respond = Callable[[types.FunctionCall], dict[str, object]]


@pytest.fixture
def client(llm_server: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> genai.Client:
    return sdk_client(llm_server, monkeypatch)


async def turn(session: genai.live.AsyncSession, text: str, respond: Respond | None = None,
               **response_fields: object) -> list[types.LiveServerMessage]:
    """One user turn; function calls are answered with `respond` as they come."""
    await session.send_client_content(turns={"role": "user", "parts": [{"text": text}]}, turn_complete=True)
    messages = []
    async for message in session.receive():
        messages.append(message)
        if message.tool_call and respond is not None:
            await session.send_tool_response(function_responses=[
                types.FunctionResponse(id=call.id, name=call.name, response=respond(call), **response_fields)
                for call in message.tool_call.function_calls or []])
    return messages


def calls_of(messages: list[types.LiveServerMessage]) -> list[types.FunctionCall]:
    return [c for m in messages if m.tool_call for c in m.tool_call.function_calls or []]


def text_of(messages: list[types.LiveServerMessage]) -> str:
    return "".join(m.text or "" for m in messages)


def parts_of(messages: list[types.LiveServerMessage]) -> list[types.Part]:
    return [p for m in messages if m.server_content and m.server_content.model_turn
            for p in m.server_content.model_turn.parts or []]


@pytest.mark.llm
def test_seed_function_calling_program(llm_server: LocaliveServer) -> None:
    result = subprocess.run([sys.executable, str(SEED / "function_calling.py")], env=llm_server.client_env(),
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "Executing function: turn_on_the_lights with ID: " in result.stdout
    assert "Model: " in result.stdout  # the answer after the function's response
    assert "Generation complete for this turn." in result.stdout


@pytest.mark.llm
async def test_function_call_in_audio_mode(client: genai.Client) -> None:
    config = {"response_modalities": ["AUDIO"], "tools": [{"function_declarations": LIGHTS}],
              "output_audio_transcription": {}, "temperature": 0.0}
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        messages = await turn(session, "Turn on the lights please", lambda call: {"status": "ok"})
    assert [c.name for c in calls_of(messages)] == ["turn_on_the_lights"]
    audio = b"".join(m.data for m in messages if m.data)
    assert len(audio) > 24000  # at least half a second of spoken answer after the call
    assert messages[-1].server_content and messages[-1].server_content.turn_complete


@pytest.mark.llm
async def test_weather_calls_have_schema_valid_arguments_and_the_answer_uses_the_result(
        client: genai.Client, record_property: Callable[[str, object], None]) -> None:
    config = {"response_modalities": ["TEXT"], "tools": [{"function_declarations": [WEATHER]}], "temperature": 0.0}
    called = good = 0
    for phrasing in PHRASINGS:
        async with client.aio.live.connect(model=MODEL, config=config) as session:
            messages = await turn(session, phrasing, lambda call: {"temperature": 17, "sky": "light rain"})
        calls = calls_of(messages)
        for call in calls:  # every call that reaches the client is schema-valid (the grammar guarantees it)
            jsonschema_rs.validate(WEATHER_JSON_SCHEMA, call.args)
        valid = len(calls) == 1 and calls[0].name == "get_weather"
        called += valid
        if valid and "17" in text_of(messages):
            good += 1
        print(f"{phrasing!r}: calls={[(c.name, c.args) for c in calls]} answer={text_of(messages)[:80]!r}")
    record_property("weather_call_rate", f"{good}/{len(PHRASINGS)}")
    print(f"weather: {called}/{len(PHRASINGS)} phrasings called get_weather, {good} also used its result")
    # The rates measured here (10/10 and 9/10, docs/tools.md) are the model's, on one CPU: float rounding elsewhere
    # may tip a borderline phrasing. A clear majority is what a user relies on, and fails when calling is broken.
    assert called >= 8 and good >= 7, (called, good)


@pytest.mark.llm
async def test_interrupting_a_pending_call_cancels_it(client: genai.Client) -> None:
    config = {"response_modalities": ["TEXT"], "tools": [{"function_declarations": LIGHTS}], "temperature": 0.0}
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "Turn on the lights please"}]})
        seen: list[types.LiveServerMessage] = []
        async for message in session.receive():
            seen.append(message)
            if message.tool_call:
                await session.send_client_content(turns={"role": "user", "parts": [{"text": "Stop, never mind."}]})
        call_id = calls_of(seen)[0].id
        cancellations = [m.tool_call_cancellation for m in seen if m.tool_call_cancellation]
        assert cancellations and cancellations[0].ids == [call_id]
        assert any(m.server_content and m.server_content.interrupted for m in seen)


@pytest.mark.llm
async def test_code_execution_sum_of_first_50_primes(client: genai.Client) -> None:
    config = {"response_modalities": ["TEXT"], "tools": [{"code_execution": {}}], "temperature": 0.0}
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        messages = await turn(session, "what is the sum of the first 50 primes")
    parts = parts_of(messages)
    code = [p.executable_code for p in parts if p.executable_code]
    results = [p.code_execution_result for p in parts if p.code_execution_result]
    assert code and code[0].code and code[0].language == types.Language.PYTHON
    assert results and results[0].outcome == types.Outcome.OUTCOME_OK and "5117" in (results[0].output or "")
    assert "5117" in text_of(messages)


@pytest.mark.llm
async def test_search_grounding_points_at_the_right_document(client: genai.Client) -> None:
    config = {"response_modalities": ["TEXT"], "tools": [{"google_search": {}}], "temperature": 0.0}
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        messages = await turn(session, "How tall is Mount Everest?")
    grounding = [m.server_content.grounding_metadata for m in messages
                 if m.server_content and m.server_content.grounding_metadata]
    assert grounding, "no groundingMetadata"
    metadata = grounding[0]
    assert metadata.web_search_queries == ["How tall is Mount Everest?"]
    assert metadata.grounding_chunks and metadata.grounding_chunks[0].web
    assert (metadata.grounding_chunks[0].web.uri or "").endswith("mount-everest.md")
    assert "8,8" in text_of(messages) or "8.8" in text_of(messages) or "29," in text_of(messages)


class _Page(BaseHTTPRequestHandler):
    BODY = (b"<html><head><title>Pavilion hours</title><script>var x = 1;</script></head><body>"
            b"<h1>The Quillmere test pavilion</h1><p>The Quillmere test pavilion opens at 7:45 in the morning "
            b"every Thursday and closes at noon.</p></body></html>")

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.BODY)))
        self.end_headers()
        self.wfile.write(self.BODY)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def page_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.llm
async def test_url_context_reads_a_local_page_and_refuses_private_addresses(client: genai.Client,
                                                                              page_port: int) -> None:
    config = {"response_modalities": ["TEXT"], "tools": [{"url_context": {}}], "temperature": 0.0}
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        allowed = f"http://127.0.0.1:{page_port}/hours"  # the server runs with --url-allow 127.0.0.1
        messages = await turn(session, f"According to {allowed} what time does the test pavilion open?")
        private = f"http://127.0.0.2:{page_port}/hours"  # loopback too, but outside --url-allow
        refused = await turn(session, f"Summarize {private}")

    def statuses(msgs: list[types.LiveServerMessage]) -> list[tuple[str | None, object]]:
        return [(u.retrieved_url, u.url_retrieval_status) for m in msgs
                if m.server_content and m.server_content.url_context_metadata
                for u in m.server_content.url_context_metadata.url_metadata or []]

    assert statuses(messages) == [(allowed, types.UrlRetrievalStatus.URL_RETRIEVAL_STATUS_SUCCESS)]
    assert "7:45" in text_of(messages)
    assert statuses(refused) == [(private, types.UrlRetrievalStatus.URL_RETRIEVAL_STATUS_UNSAFE)]


@pytest.mark.llm
async def test_combining_tools_as_in_the_seed(client: genai.Client) -> None:
    config = {"response_modalities": ["TEXT"], "temperature": 0.0, "tools": [
        {"google_search": {}},
        {"code_execution": {}},
        {"function_declarations": [LIGHTS[0]]},
    ]}
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        lights = await turn(session, "Turn on the lights please", lambda call: {"status": "ok"})
        everest = await turn(session, "How tall is Mount Everest?")
    assert [c.name for c in calls_of(lights)] == ["turn_on_the_lights"]
    grounding = [m.server_content.grounding_metadata for m in everest
                 if m.server_content and m.server_content.grounding_metadata]
    assert grounding and (grounding[0].grounding_chunks or [])[0].web.uri.endswith("mount-everest.md")


# --- exact sequencing with the scripted emulator ---------------------------------------------------------

async def test_non_blocking_call_with_the_sdk(emulator_server: LocaliveServer,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    client = sdk_client(emulator_server, monkeypatch)
    config = {"response_modalities": ["TEXT"],
              "tools": [{"function_declarations": [{"name": "long_task", "behavior": "NON_BLOCKING"}]}]}
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        started = await turn(session, "start the long task")
        call = calls_of(started)[0]
        assert text_of(started) == "I started the long task."
        assert text_of(await turn(session, "hello")) == "You said: hello"  # the conversation goes on
        await session.send_tool_response(function_responses=[types.FunctionResponse(
            id=call.id, name=call.name, response={"result": "80%"}, will_continue=True,
            scheduling=types.FunctionResponseScheduling.SILENT)])
        await session.send_tool_response(function_responses=[types.FunctionResponse(
            id=call.id, name=call.name, response={"result": "done"},
            scheduling=types.FunctionResponseScheduling.WHEN_IDLE)])
        report = [m async for m in session.receive()]
    assert text_of(report) == 'The long task reported {"result": "done"}.'


async def test_unknown_response_id_closes_with_1007(emulator_server: LocaliveServer,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    client = sdk_client(emulator_server, monkeypatch)
    config = {"response_modalities": ["TEXT"], "tools": [{"function_declarations": LIGHTS}]}
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        await session.send_tool_response(function_responses=[types.FunctionResponse(
            id="function-call-nope", name="turn_on_the_lights", response={})])
        with pytest.raises(genai.errors.APIError) as error:
            async for _ in session.receive():
                pass
    assert error.value.code == 1007 and "unknown function call id" in str(error.value)
