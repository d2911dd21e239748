"""Function declarations → JSON Schema, call-intent detection, the call grammar, and code-block splitting."""

from __future__ import annotations

import pytest

from localive.engines.llm.base import FunctionSpec
from localive.engines.llm.calls import call_intent, calls_grammar
from localive.protocol.errors import InvalidArgument
from localive.protocol.messages import Tool
from localive.session.code_blocks import CodeBlocks
from localive.tools.functions import function_tools, openapi_to_json_schema


def test_openapi_schema_becomes_json_schema() -> None:
    schema = openapi_to_json_schema({
        "type": "OBJECT",
        "properties": {
            "city": {"type": "STRING", "description": "a city"},
            "days": {"type": "INTEGER", "minimum": 1, "nullable": True},
            "tags": {"type": "ARRAY", "items": {"type": "STRING", "enum": ["a", "b"]}},
        },
        "required": ["city"],
    })
    assert schema == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "a city"},
            "days": {"type": ["integer", "null"], "minimum": 1},
            "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
        },
        "required": ["city"],
    }


def test_declarations_are_checked_and_validate_arguments() -> None:
    tools = [Tool.model_validate({"functionDeclarations": [
        {"name": "get_weather", "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}},
                                               "required": ["city"]}},
        {"name": "ping"},
        {"name": "raw", "parametersJsonSchema": {"type": "object", "properties": {"n": {"type": "integer"}}},
         "behavior": "NON_BLOCKING"},
    ]})]
    weather, ping, raw = function_tools(tools)
    assert weather.validate({"city": "Paris"}) is None
    assert "required" in (weather.validate({}) or "")
    assert ping.validate({}) is None and ping.validate({"x": 1}) is not None
    assert raw.non_blocking and raw.validate({"n": "five"}) is not None
    with pytest.raises(InvalidArgument, match="declared twice"):
        function_tools([Tool.model_validate({"functionDeclarations": [{"name": "a"}, {"name": "a"}]})])


@pytest.mark.parametrize("text, intent", [
    ("", None), ("  ", None), ('{"name"', True), ("<tool_call>", True), ("<tool", None), ("[{", True),
    ("```", None), ("```json\n{", True), ("```json\n", None), ("```python\nprint(1)", False),
    ("The", False), ("`", None), ("I will", False),
])
def test_call_intent_from_the_first_characters(text: str, intent: bool | None) -> None:
    assert call_intent(text) is intent


def test_calls_grammar_admits_only_declared_functions() -> None:
    pytest.importorskip("llama_cpp")
    from llama_cpp.llama_grammar import LlamaGrammar

    grammar = calls_grammar([
        FunctionSpec("get_weather", "", {"type": "object", "properties": {"city": {"type": "string"}},
                                         "required": ["city"]}),
        FunctionSpec("ping", "", {"type": "object", "properties": {}, "additionalProperties": False}),
    ])
    assert grammar.startswith("root ::= call")
    assert '"\\"get_weather\\""' in grammar and '"\\"ping\\""' in grammar
    LlamaGrammar.from_string(grammar, verbose=False)  # parses


def split(pieces: list[str]) -> tuple[str, str | None]:
    blocks = CodeBlocks()
    shown = "".join(blocks.push(p) for p in pieces)
    shown += blocks.flush()
    return shown, blocks.code


def test_code_block_is_taken_out_of_the_prose() -> None:
    text = "Here is a program:\n```python\nprint(sum(range(5)))\n```\nIt prints 10."
    for size in (1, 3, 7, len(text)):
        shown, code = split([text[i:i + size] for i in range(0, len(text), size)])
        assert code == "print(sum(range(5)))"
        assert shown == "Here is a program:\n"


def test_other_fences_stay_prose_and_an_unclosed_python_block_is_code() -> None:
    assert split(["Use ```json\n{}\n``` then done"]) == ("Use ```json\n{}\n``` then done", None)
    assert split(["```python\nprint(1)\n"]) == ("", "print(1)")
    assert split(["plain `code` text"]) == ("plain `code` text", None)


# --- hostile schemas (security findings F2, F18) ----------------------------------------------------------------

def test_a_catastrophic_pattern_cannot_freeze_validation() -> None:
    """`^(a+)+$` against "aaa…a!" backtracks for ever in Python's `re`; the check must return, with a problem."""
    import concurrent.futures

    tool, = function_tools([Tool.model_validate({"functionDeclarations": [{
        "name": "check", "parametersJsonSchema": {"type": "object", "properties": {
            "s": {"type": "string", "pattern": "^(a+)+$"}}}}]})])
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a regression fails the test instead of hanging it
        problem = pool.submit(tool.validate, {"s": "a" * 50_000 + "!"}).result(timeout=30)
    assert problem is not None and "does not match" in problem
    assert tool.validate({"s": "aaaa"}) is None


def test_at_most_512_declarations() -> None:
    from localive.tools.functions import MAX_DECLARATIONS

    decls = [{"name": f"f{i}"} for i in range(MAX_DECLARATIONS + 1)]
    with pytest.raises(InvalidArgument, match=f"{MAX_DECLARATIONS}"):
        function_tools([Tool.model_validate({"functionDeclarations": decls})])
    assert len(function_tools([Tool.model_validate({"functionDeclarations": decls[:-1]})])) == MAX_DECLARATIONS


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"a": {"type": "strin"}}},
    {"type": "object", "properties": {"a": {"type": "string", "pattern": "(unclosed"}}},
    {"type": "object", "minProperties": -1},
])
def test_invalid_json_schemas_are_refused(schema: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument, match="invalid parametersJsonSchema"):
        function_tools([Tool.model_validate({"functionDeclarations": [{"name": "f", "parametersJsonSchema": schema}]})])
