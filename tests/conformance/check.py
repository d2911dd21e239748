"""Compare what the SDK walk saw (tests/conformance/sdk_walk.py) with the rules of tests/conformance/fields.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic.alias_generators import to_camel

from tests.conformance.fields import CLIENT_RULES, SEVERITY, WORKS, Rule

# The SDK refusing a value before sending it (Gemini mode): fine, nothing reaches the server.
SDK_REFUSALS = ("only supported in", "not supported in the live api",
                # the JS SDK re-throws its Vertex-only refusal of partialArgs/willContinue in a turn as this:
                'failed to parse client content "turns"')


def wire_paths(frame: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(camelCase wire path, leaf value) for every leaf of a client frame; an empty object is a leaf too."""
    if isinstance(frame, dict):
        if not frame and path:
            yield path, {}
        for key, value in frame.items():
            yield from wire_paths(value, f"{path}.{to_camel(key)}" if path else to_camel(key))
    elif isinstance(frame, list):
        for item in frame:
            yield from wire_paths(item, path + "[]")
    else:
        yield path, frame


def matches(pattern: str, path: str) -> bool:
    want, have = pattern.split("."), path.replace("[]", "").split(".")  # a list's items match its name
    for i, segment in enumerate(want):
        if segment == "**":
            return True
        if i >= len(have):
            return False
        if segment.removesuffix("[]") != have[i] and not _glob(segment.removesuffix("[]"), have[i]):
            return False
    return len(want) == len(have)


def _glob(segment: str, name: str) -> bool:
    if "*" not in segment:
        return False
    head, _, tail = segment.partition("*")
    return name.startswith(head) and name.endswith(tail) and len(name) >= len(head) + len(tail)


def rule_for(path: str) -> Rule | None:
    # "x.**" also covers the object x itself (an empty {} or a value there)
    return next((r for r in CLIENT_RULES if matches(r.pattern, path) or (
        r.pattern.endswith(".**") and matches(r.pattern[:-3], path))), None)


@dataclass(frozen=True)
class Verdict:
    expected: str  # "ok" or "closed N"
    problems: tuple[str, ...]


def judge(record: dict[str, Any]) -> Verdict:
    """What the rules expect of one case, and what is wrong with its outcome."""
    outcome: str = record["outcome"]
    where = f"{record['sdk']} {record['message']} {record['case']}"
    if outcome.startswith("sdk:"):
        if any(s in outcome.lower() for s in SDK_REFUSALS):
            return Verdict("sdk", ())
        return Verdict("sdk", (f"{where}: the walk's sample was refused by the SDK: {outcome}",))
    if record["frame"] is None:
        return Verdict("?", (f"{where}: {outcome}",))
    worst, problems = WORKS, []
    for path, value in wire_paths(record["frame"]):
        rule = rule_for(path)
        if rule is None:
            problems.append(f"{where}: no rule for the wire field {path} (new in this SDK? add it to localive and "
                            "to tests/conformance/fields.py)")
            continue
        behaviour = rule.behaviour_for(value)
        if SEVERITY[behaviour] > SEVERITY[worst]:
            worst = behaviour
    expected = "ok" if SEVERITY[worst] == 0 else f"closed {worst}"
    if not problems and not outcome.startswith(expected):
        problems.append(f"{where}: expected {expected}, got {outcome}")
    return Verdict(expected, tuple(problems))
