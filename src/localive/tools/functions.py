"""Function declarations: from the wire (`tools[].functionDeclarations`) to JSON Schema, and argument validation.

Gemini declares parameters either as an OpenAPI-subset `Schema` (`parameters`, upper-case types, `nullable`) or as
raw JSON Schema (`parametersJsonSchema`). Both become one JSON Schema here: the LLM is constrained to it and every
call is validated against it before it reaches the client.

Schemas come from the client and are hostile (security findings F2, F18): they are checked and applied with
jsonschema-rs (Rust), whose regular expressions cannot backtrack without bound, so a `pattern` such as
``^(a+)+$`` cannot freeze the server; a schema's compiled validator is cached by its canonical JSON, and one
message may declare at most MAX_DECLARATIONS functions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jsonschema_rs

from localive.protocol import messages as wire
from localive.protocol.errors import InvalidArgument

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")
_TYPES = {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"}
_COPIED = ("description", "format", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern",
           "minItems", "maxItems", "minProperties", "maxProperties", "title", "default")
NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}
MAX_DECLARATIONS = 512  # functions one setup or contextUpdate may declare
BACKTRACK_LIMIT = 100_000  # steps a schema's `pattern` may backtrack before the match counts as failed
_REGEX = jsonschema_rs.FancyRegexOptions(backtrack_limit=BACKTRACK_LIMIT)


@dataclass(frozen=True)
class FunctionTool:
    """A declared function: what the model is told, and how its calls are checked and scheduled."""

    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema of the `args` object
    non_blocking: bool = False
    _validator: Any = field(default=None, repr=False, compare=False)

    def validate(self, args: object) -> str | None:
        """None when `args` fits the declared parameters, else a short description of the first problem."""
        validator = self._validator or _validator(_canonical(self.parameters))
        for error in validator.iter_errors(args):
            return _describe(error)
        return None

    def as_spec(self) -> dict[str, Any]:
        """The OpenAI-style function entry that chat templates (and llama.cpp) expect."""
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.parameters}}


def openapi_to_json_schema(schema: object, where: str = "parameters") -> dict[str, Any]:
    """Gemini's OpenAPI-subset Schema (``{"type": "OBJECT", "properties": …, "nullable": true}``) as JSON Schema."""
    if not isinstance(schema, dict):
        raise InvalidArgument(f"{where} must be a Schema object.")
    out: dict[str, Any] = {}
    kind = schema.get("type")
    if kind is not None:
        if not isinstance(kind, str) or kind.upper() not in _TYPES | {"TYPE_UNSPECIFIED"}:
            raise InvalidArgument(f"{where}.type '{str(kind)[:20]}' is not a Schema type.")
        if kind.upper() != "TYPE_UNSPECIFIED":
            out["type"] = kind.lower()
    for key in _COPIED:
        if key in schema:
            out[key] = schema[key]
    if "properties" in schema:
        props = schema["properties"]
        if not isinstance(props, dict):
            raise InvalidArgument(f"{where}.properties must be an object.")
        out["properties"] = {k: openapi_to_json_schema(v, f"{where}.{k}") for k, v in props.items()}
        out.setdefault("type", "object")
    if "required" in schema:
        out["required"] = list(schema["required"])
    if "items" in schema:
        out["items"] = openapi_to_json_schema(schema["items"], f"{where}.items")
    if "anyOf" in schema:
        out["anyOf"] = [openapi_to_json_schema(s, f"{where}.anyOf") for s in schema["anyOf"]]
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if out.get("type") == "object" and "properties" not in out:
        out["properties"] = {}
    return out


def function_tools(tools: Iterable[wire.Tool]) -> list[FunctionTool]:
    """All function declarations of a setup (or contextUpdate), checked; invalid ones are refused with 1007."""
    declared: dict[str, FunctionTool] = {}
    for tool in tools:
        if len(declared) + len(tool.function_declarations or []) > MAX_DECLARATIONS:
            raise InvalidArgument(f"At most {MAX_DECLARATIONS} function declarations are supported.")
        for decl in tool.function_declarations or []:
            if not NAME.match(decl.name):
                raise InvalidArgument(f"Invalid function name '{decl.name[:40]}': use letters, digits, _ . : -")
            if decl.name in declared:
                raise InvalidArgument(f"Function '{decl.name}' is declared twice.")
            parameters = _parameters(decl)
            declared[decl.name] = FunctionTool(
                name=decl.name,
                description=decl.description or "",
                parameters=parameters,
                non_blocking=decl.behavior == "NON_BLOCKING",
                _validator=_validator(_canonical(parameters)),
            )
    return list(declared.values())


def _parameters(decl: wire.FunctionDeclaration) -> dict[str, Any]:
    if decl.parameters is not None and decl.parameters_json_schema is not None:
        raise InvalidArgument(f"Function '{decl.name}': give parameters or parametersJsonSchema, not both.")
    if decl.parameters_json_schema is not None:
        schema = decl.parameters_json_schema
        if not isinstance(schema, dict):
            raise InvalidArgument(f"Function '{decl.name}': parametersJsonSchema must be an object.")
        if problem := _schema_problem(_canonical(schema)):
            raise InvalidArgument(f"Function '{decl.name}': invalid parametersJsonSchema: {problem}"[:120])
    elif decl.parameters is not None:
        schema = openapi_to_json_schema(decl.parameters, f"{decl.name}.parameters")
    else:
        return dict(NO_PARAMETERS)
    if schema.get("type", "object") != "object":
        raise InvalidArgument(f"Function '{decl.name}': parameters must describe an object.")
    return {"type": "object", "properties": {}, **schema}


def _describe(error: Any) -> str:
    """A short description of a validation error; a long value is named by its path, not quoted whole."""
    message = str(error.message)
    quoted = json.dumps(error.instance, ensure_ascii=False)
    if len(quoted) > 60:
        where = "/".join(str(part) for part in error.instance_path) or "the arguments"
        message = message.replace(quoted, f"the value at {where}")
    return message[:200]


def _canonical(schema: dict[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


@lru_cache(maxsize=1024)
def _schema_problem(canonical: str) -> str | None:
    """Why a JSON Schema is not a valid Draft 2020-12 schema (checked against the meta-schema), or None."""
    try:
        jsonschema_rs.meta.validate(json.loads(canonical))
        _validator(canonical)
    except jsonschema_rs.ValidationError as exc:
        return str(exc.message)[:200]
    except ValueError as exc:  # e.g. a `pattern` that is no regular expression
        return (str(exc).splitlines() or ["cannot be compiled"])[0][:200]
    return None


@lru_cache(maxsize=1024)
def _validator(canonical: str) -> Any:
    """A compiled validator for a schema (cached: clients resend the same declarations with each contextUpdate)."""
    return jsonschema_rs.Draft202012Validator(json.loads(canonical), pattern_options=_REGEX)
