"""Key normalisation for incoming JSON (docs/protocol-notes.md#key-names-and-values).

Google's service parses proto3 JSON, which accepts both the proto field name (snake_case) and the JSON name
(lowerCamelCase) for every field, and the Python SDK really does send a mix of both. We normalise every key to
camelCase, at every depth, except inside free-form payloads (``Struct``/``Value`` fields such as function call
``args``) which are kept verbatim, and map fields whose keys are user data (a schema's ``properties``).
"""

from __future__ import annotations

from typing import Any

from localive.protocol.errors import InvalidArgument

MAX_DEPTH = 64
# JSON values one message may hold: a 1 MiB audio chunk or a long conversation is a few thousand; validating
# 20,000 costs about 40 ms (see docs/security.md)
MAX_NODES = 20_000

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


def normalise_keys(value: Any, *, max_nodes: int = MAX_NODES) -> Any:
    """Return a copy of a parsed JSON value with every message key in camelCase.

    The walk also bounds the work that validating the message can cost: more than `max_nodes` JSON values
    (objects, arrays and scalars together), or nesting beyond MAX_DEPTH, is refused with 1007 before any model
    validation runs (security finding F2: 60,000-part messages cost 370 ms of validation each).
    """
    return _normalise(value, 0, _Budget(max_nodes))


class _Budget:
    __slots__ = ("left",)

    def __init__(self, nodes: int) -> None:
        self.left = nodes

    def take(self, nodes: int = 1) -> None:
        self.left -= nodes
        if self.left < 0:
            raise InvalidArgument("Request has too many fields, parts or values for one message.")


def _normalise(value: Any, depth: int, budget: _Budget) -> Any:
    if depth > MAX_DEPTH:
        raise InvalidArgument("Request is nested too deeply.")
    budget.take()
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for raw_key, item in value.items():
            key = snake_to_camel(raw_key)
            if key in out:
                raise InvalidArgument(f'Field "{key}" is given twice (as snake_case and camelCase).')
            if key in VERBATIM_FIELDS:
                check_depth(item, depth + 1, budget)
                out[key] = item
            elif key in MAP_FIELDS and isinstance(item, dict):
                budget.take(len(item))
                out[key] = {k: _normalise(v, depth + 2, budget) for k, v in item.items()}
            else:
                out[key] = _normalise(item, depth + 1, budget)
        return out
    if isinstance(value, list):
        return [_normalise(item, depth + 1, budget) for item in value]
    return value


def check_depth(value: Any, depth: int = 0, budget: _Budget | None = None) -> None:
    """Refuse free-form payloads nested beyond MAX_DEPTH or holding more values than the message's budget
    (iteratively: no recursion to exhaust)."""
    stack = [(value, depth)]
    while stack:
        item, level = stack.pop()
        if level > MAX_DEPTH:
            raise InvalidArgument("Request is nested too deeply.")
        if budget is not None:
            budget.take()
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
