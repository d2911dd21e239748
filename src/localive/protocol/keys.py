"""Key normalisation for incoming JSON (live-protocol.md §0.1, §2.3).

Google's service parses proto3 JSON, which accepts both the proto field name (snake_case) and the JSON name
(lowerCamelCase) for every field, and the Python SDK really does send a mix of both. We normalise every key to
camelCase, at every depth, except inside free-form payloads (``Struct``/``Value`` fields such as function call
``args``) which are kept verbatim, and map fields whose keys are user data (a schema's ``properties``).
"""

from __future__ import annotations

from typing import Any

from localive.protocol.errors import InvalidArgument

MAX_DEPTH = 64

# Fields whose whole value is free-form user data: never touched.
VERBATIM_FIELDS = frozenset({
    "args",
    "response",
    "parametersJsonSchema",
    "responseJsonSchema",
    "labels",
    "example",
    "default",
})

# Fields that are maps: their keys are user data (kept), their values are messages (normalised).
MAP_FIELDS = frozenset({"properties", "defs"})


def snake_to_camel(key: str) -> str:
    if "_" not in key:
        return key
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def normalise_keys(value: Any, *, _depth: int = 0) -> Any:
    """Return a copy of a parsed JSON value with every message key in camelCase."""
    if _depth > MAX_DEPTH:
        raise InvalidArgument("Request is nested too deeply.")
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for raw_key, item in value.items():
            key = snake_to_camel(raw_key)
            if key in out:
                raise InvalidArgument(f'Field "{key}" is given twice (as snake_case and camelCase).')
            if key in VERBATIM_FIELDS:
                check_depth(item, _depth + 1)
                out[key] = item
            elif key in MAP_FIELDS and isinstance(item, dict):
                out[key] = {k: normalise_keys(v, _depth=_depth + 2) for k, v in item.items()}
            else:
                out[key] = normalise_keys(item, _depth=_depth + 1)
        return out
    if isinstance(value, list):
        return [normalise_keys(item, _depth=_depth + 1) for item in value]
    return value


def check_depth(value: Any, depth: int = 0) -> None:
    """Refuse free-form payloads nested beyond MAX_DEPTH (iteratively: no recursion to exhaust)."""
    stack = [(value, depth)]
    while stack:
        item, level = stack.pop()
        if level > MAX_DEPTH:
            raise InvalidArgument("Request is nested too deeply.")
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
