"""The OpenAI chat wire format of the remote LLM: messages, tool calls, SSE framing (recorded bytes). Behaviour
against a real server: tests/integration/test_remote_llm.py."""

from __future__ import annotations

import json

import pytest

from localive.engines.llm.base import CalledFunction, ChatMessage, FunctionSpec, SamplingParams
from localive.engines.llm.openai_chat import (
    SSEParser,
    ToolCallCollector,
    chat_payload,
    parse_text_calls,
    redact_url,
    refuses_schema_form,
    response_format,
    sampling_payload,
    session_tag,
)
from localive.models.registry import ModelRegistry, RegistryError, is_remote, remote_key, split_remote_key

WEATHER = FunctionSpec("get_weather", "weather", {"type": "object", "properties": {"city": {"type": "string"}},
                                                  "required": ["city"]})

# Recorded from llama-cpp-python 0.3.36's server (`python -m llama_cpp.server`), split mid-line on purpose.
RECORDED = (b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":'
            b'"assistant"},"finish_reason":null}]}\r\n\r\ndata: {"id":"chatcmpl-1","object":"chat.completion.chunk",'
            b'"choices":[{"index":0,"delta":{"content":"The"},"finish_reason":null}]}\r\n\r\n: ping - 2024\r\n\r\n'
            b'data: {"choices":[{"index":0,"delta":{"content":" capital"},"finish_reason":null}]}\r\n\r\n'
            b'data: [DONE]\r\n\r\n')


def test_sse_events_survive_any_split() -> None:
    text = RECORDED.decode()
    for size in (1, 7, 64, len(text)):
        parser = SSEParser()
        events = [e for i in range(0, len(text), size) for e in parser.feed(text[i:i + size])]
        pieces = [json.loads(e)["choices"][0]["delta"].get("content") for e in events[:-1]]
        assert pieces == [None, "The", " capital"] and events[-1] == "[DONE]" and parser.done


def test_multi_line_data_is_one_event() -> None:
    assert SSEParser().feed("data: a\ndata: b\n\n") == ["a\nb"]


def test_history_with_calls_and_results_gets_matching_ids() -> None:
    calls = (CalledFunction("get_weather", {"city": "Paris"}), CalledFunction("get_weather", {"city": "Rome"}))
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", "Weather in Paris and Rome?"),
                ChatMessage("assistant", "", calls), ChatMessage("tool", '{"t": 17}', name="get_weather"),
                ChatMessage("tool", '{"t": 25}', name="get_weather"), ChatMessage("assistant", "17 and 25.")]
    payload = chat_payload(messages)
    assert [m["role"] for m in payload] == ["system", "user", "assistant", "tool", "tool", "assistant"]
    ids = [c["id"] for c in payload[2]["tool_calls"]]
    assert len(set(ids)) == 2 and [payload[3]["tool_call_id"], payload[4]["tool_call_id"]] == ids
    assert json.loads(payload[2]["tool_calls"][1]["function"]["arguments"]) == {"city": "Rome"}
    assert payload[2]["content"] == ""  # not null: llama-cpp-python refuses null content
    assert chat_payload(messages) == payload  # stable: the same history gives the same ids (prefix caches)


def test_a_result_without_its_call_is_told_as_user_text() -> None:
    payload = chat_payload([ChatMessage("system", "be brief"), ChatMessage("assistant", "hello"),
                            ChatMessage("tool", "42", name="answer")])
    assert payload[2] == {"role": "user", "content": "(result of answer) 42"}


def test_consecutive_user_messages_are_joined_for_templates_that_want_roles_to_alternate() -> None:
    payload = chat_payload([ChatMessage("user", "hi"), ChatMessage("tool", "42", name="answer"),
                            ChatMessage("user", "so?"), ChatMessage("assistant", "42."), ChatMessage("user", "ok")])
    assert payload == [{"role": "user", "content": "hi\n\n(result of answer) 42\n\nso?"},
                       {"role": "assistant", "content": "42."}, {"role": "user", "content": "ok"}]


def test_streamed_tool_call_fragments_become_calls() -> None:
    collector = ToolCallCollector()
    collector.add([{"index": 0, "id": "c1", "type": "function", "function": {"name": "get_weather",
                                                                            "arguments": ""}}])
    collector.add([{"index": 0, "function": {"arguments": '{"city": '}}])
    collector.add([{"index": 0, "function": {"arguments": '"Paris"}'}}])
    collector.add([{"index": 1, "function": {"name": "get_weather", "arguments": "{not json"}}])
    calls = collector.calls()
    assert calls[0] == CalledFunction("get_weather", {"city": "Paris"})
    assert calls[1].name != "get_weather"  # undeclared: the session reports MALFORMED_FUNCTION_CALL


@pytest.mark.parametrize("text", [
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    '```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',
    '{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}',
])
def test_calls_written_as_text_are_read(text: str) -> None:
    assert parse_text_calls(text, [WEATHER]) == (CalledFunction("get_weather", {"city": "Paris"}),)


@pytest.mark.parametrize("text", ['{"name": "launch", "arguments": {}}', '{"name": "get_weather", "argu',
                                  'Sure: {"name": "get_weather", "arguments": {}}'])
def test_text_that_is_not_a_declared_call_is_not_one(text: str) -> None:
    assert parse_text_calls(text, [WEATHER]) is None


def test_sampling_fields_only_when_set() -> None:
    assert sampling_payload(SamplingParams()) == {}
    assert sampling_payload(SamplingParams(temperature=0.0, top_k=5, stop=("x",), seed=3)) == {
        "temperature": 0.0, "top_k": 5, "stop": ["x"], "seed": 3}


def test_session_tag_is_stable_and_opaque() -> None:
    assert session_tag("abc") == session_tag("abc") != session_tag("abd")
    assert "abc" not in session_tag("abc")


def test_urls_are_shown_without_credentials() -> None:
    assert redact_url("https://user:pw@host:8000/v1") == "https://host:8000/v1"


def test_remote_keys_and_the_models_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    key = remote_key("http://h:1/v1/", "m")
    assert is_remote(key) and split_remote_key(key) == ("http://h:1/v1", "m", "native")
    assert split_remote_key(remote_key("http://h:1/v1", None, "json-schema")) == ("http://h:1/v1", None, "json-schema")
    path = tmp_path / "models.toml"
    path.write_text('[models."gemini-2.0-flash-live-001"]\nllm_url = "http://h:1/v1"\nllm_model = "big"\n')
    entry = ModelRegistry().merged(path).resolve("gemini-2.0-flash-live-001")
    assert entry.llm == remote_key("http://h:1/v1", "big") and entry.code_llm is None
    path.write_text('[models.x]\nllm_model = "big"\n')
    with pytest.raises(RegistryError):
        ModelRegistry().merged(path)
    path.write_text('[models.x]\nllm_url = "http://h:1/v1"\nllm_tools = "json-schema"\n')
    assert split_remote_key(ModelRegistry().merged(path).resolve("x").llm)[2] == "json-schema"
    for wrong in ('llm_url = "http://h:1/v1"\nllm_tools = "grammar"\n', 'llm_tools = "json-schema"\n'):
        path.write_text(f"[models.x]\n{wrong}")
        with pytest.raises(RegistryError):
            ModelRegistry().merged(path)


def test_requests_carry_the_sessions_stable_id_and_the_declared_tools() -> None:
    from localive.engines.llm.base import SESSION_ID
    from localive.engines.llm.openai_chat import OpenAIChatLLM, RemoteSettings

    llm = OpenAIChatLLM(RemoteSettings("http://h:1/v1", model="m", api_key="sk-x"))
    assert "user" not in llm.request_body([ChatMessage("user", "hi")], SamplingParams())
    token = SESSION_ID.set("session-key")
    try:
        body = llm.request_body([ChatMessage("user", "hi")], SamplingParams(), [WEATHER])
        assert body["user"] == session_tag("session-key") and llm._headers() == {"X-Session-Id": body["user"]}
    finally:
        SESSION_ID.reset(token)
    assert body["stream"] and body["stream_options"] == {"include_usage": True} and body["model"] == "m"
    assert body["tools"][0]["function"]["name"] == "get_weather" and body["tool_choice"] == "auto"
    assert "sk-x" not in repr(llm.settings)


def test_a_text_call_with_invented_arguments_does_not_fit_and_is_asked_again() -> None:
    """What llama-cpp-python's server returned for "Turn on the lights please" at temperature 0: the function takes
    no arguments, the model invented some; the session would have ended the turn MALFORMED_FUNCTION_CALL."""
    from localive.engines.llm.openai_chat import calls_schema, fit_their_schemas, parse_text_calls

    lights = [FunctionSpec("turn_on_the_lights", "", {"type": "object", "properties": {}})]
    written = '{"name": "turn_on_the_lights", "arguments": {"type": "object", "properties": {"on": true}}}'
    calls = parse_text_calls(written, lights)
    assert calls is not None and not fit_their_schemas(calls, lights)
    fitting = parse_text_calls('{"name": "turn_on_the_lights", "arguments": {}}', lights)
    assert fitting is not None and fit_their_schemas(fitting, lights)
    assert calls_schema(lights)["properties"]["arguments"]["additionalProperties"] is False  # the retry is closed


def test_json_schema_mode_sends_no_tools_and_describes_them_as_the_chat_template_would() -> None:
    from localive.engines.llm.openai_chat import OpenAIChatLLM, RemoteSettings

    llm = OpenAIChatLLM(RemoteSettings("http://h:1/v1", model="m", tools="json-schema"))
    history = [ChatMessage("system", "Be brief."), ChatMessage("user", "Weather in Paris?"),
               ChatMessage("assistant", "Let me look.", (CalledFunction("get_weather", {"city": "Paris"}),)),
               ChatMessage("tool", '{"t": 17}', name="get_weather"), ChatMessage("user", "Answer from that.")]
    body = llm.request_body(history, SamplingParams(), [WEATHER])
    assert "tools" not in body and "tool_choice" not in body
    messages = body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]  # no tool role, no tool_calls
    system = messages[0]["content"]
    assert system.startswith("Be brief.\n\n# Tools") and "<tools>\n" in system and "<tool_call>" in system
    declared = json.loads(system.split("<tools>\n")[1].split("\n</tools>")[0])
    assert declared["function"]["name"] == "get_weather" and declared["function"]["parameters"] == WEATHER.parameters
    assert parse_text_calls(messages[2]["content"].removeprefix("Let me look."), [WEATHER]) == history[2].calls
    assert messages[3]["content"] == '<tool_response>\n{"t": 17}\n</tool_response>\nAnswer from that.'
    assert "tools" in OpenAIChatLLM(RemoteSettings("http://h:1/v1", model="m")).request_body(
        history, SamplingParams(), [WEATHER])  # native (the default) sends them


def test_a_result_without_its_call_stays_plain_text_in_json_schema_mode() -> None:
    from localive.engines.llm.openai_chat import text_chat_payload

    payload = text_chat_payload([ChatMessage("user", "sum?"), ChatMessage("assistant", "```python\nprint(1)\n```"),
                                 ChatMessage("tool", "1", name="code_execution")])
    assert payload[-1] == {"role": "user", "content": "(result of code_execution) 1"}
    assert payload[0] == {"role": "user", "content": "sum?"}  # no functions: no tools prompt, no system message


def test_a_400_to_tools_says_what_to_do_and_nothing_else_does() -> None:
    from localive.engines.llm.openai_chat import OpenAIChatLLM, RemoteSettings

    llm = OpenAIChatLLM(RemoteSettings("http://u:pw@h:1/v1", model="m", api_key="sk-x"))
    vllm = '{"error": {"message": "\\"auto\\" tool choice requires --enable-auto-tool-choice"}}'
    refused = str(llm._refusal(400, vllm, {"tools": []}))
    assert "--llm-tools json-schema" in refused and "tool-call parser" in refused
    assert len(f"{refused}".encode()) <= 123  # fits a WebSocket close reason
    assert "json-schema" not in str(llm._refusal(400, "bad", {})) and "HTTP 400" in str(llm._refusal(400, "x", {}))


def test_a_schema_goes_in_openais_form_or_in_llama_cpp_pythons() -> None:
    schema = {"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}}}
    assert response_format(schema, "json_schema") == {
        "type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": schema}}
    assert response_format(schema, "json_object") == {"type": "json_object", "schema": schema}


def test_a_refusal_of_the_json_schema_form_is_told_from_other_errors() -> None:
    # llama-cpp-python 0.3's server, as recorded
    recorded = ('{"error":{"message":"1 validation error:\\n  {\'type\': \'literal_error\', \'loc\': (\'body\', '
                '\'response_format\', \'type\'), \'msg\': \"Input should be \'text\' or \'json_object\'\"'
                '","type":"internal_server_error"}}')
    assert refuses_schema_form(500, recorded)
    assert refuses_schema_form(400, '{"error": "json_schema is not supported"}')
    assert not refuses_schema_form(500, '{"error": "out of memory"}')
    assert not refuses_schema_form(200, '{"response_format": "…"}')
