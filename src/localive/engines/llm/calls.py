"""How a local chat model's function calls are recognised and then constrained to the declared schemas.

Small models call functions by answering with a JSON object (`{"name": …, "arguments": …}`), sometimes inside a
```json fence or `<tool_call>` tags, but not reliably well-formed. So the first characters of a free answer only
reveal the *intent* (`call_intent`); the call itself is generated again under a GBNF grammar compiled from the
declared JSON Schemas (`calls_grammar`, llama.cpp's own JSON-Schema converter), which admits only declared
names with schema-shaped arguments, one call per line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from localive.engines.llm.base import FunctionSpec

CALL_MAX_TOKENS = 384
MAX_PARALLEL_CALLS = 4
_DECIDE_CHARS = 12  # how much of the answer is enough to tell a call from prose


def call_intent(text: str) -> bool | None:
    """Whether an answer that starts with `text` is a function call; None while that cannot be told yet."""
    head = text.lstrip()
    if not head:
        return None
    if head[0] in "{[" or head.startswith("<tool_call>"):
        return True
    if "<tool_call>".startswith(head):
        return None
    if head.startswith("```"):
        if "\n" not in head:
            return None if len(head) < 40 else False
        fence, _, rest = head.partition("\n")
        if fence.strip("`").strip().lower() in ("json", "tool_call", ""):
            rest = rest.lstrip()
            return None if not rest else rest[0] in "{["
        return False
    return None if len(head) < 2 and head in "`<" else False


def calls_grammar(functions: Sequence[FunctionSpec]) -> str:
    """GBNF for 1–4 calls, one JSON object per line: {"name": <declared>, "arguments": <its schema>}."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    alternatives = [{
        "type": "object",
        "properties": {"name": {"const": f.name}, "arguments": strict(f.parameters)},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    } for f in functions]
    schema = alternatives[0] if len(alternatives) == 1 else {"oneOf": alternatives}
    gbnf = json_schema_to_gbnf(json.dumps(schema), prop_order=["name", "arguments"])
    gbnf = re.sub(r"^root ::=", "call ::=", gbnf, flags=re.MULTILINE)
    more = ' ( "\\n" call )?' * (MAX_PARALLEL_CALLS - 1)
    return f"root ::= call{more}\n{gbnf}"


def strict(schema: dict[str, object]) -> dict[str, object]:
    """The arguments schema, closed to undeclared properties (a small model otherwise invents some)."""
    if schema.get("type") == "object" and "additionalProperties" not in schema:
        return {**schema, "additionalProperties": False}
    return schema
