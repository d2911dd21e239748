"""Render docs/conformance.md from the rules in tests/conformance/fields.py: `python -m tests.conformance.render`."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conformance.fields import CLIENT_RULES, INVALID, NO_EFFECT, SERVER_FIELDS, UNSUPPORTED, WORKS, Rule

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "conformance.md"
MESSAGES = ("setup", "clientContent", "realtimeInput", "toolResponse", "contextUpdate")
SHOWN = {WORKS: "works", NO_EFFECT: "accepted, no effect", INVALID: "refused, 1007", UNSUPPORTED: "refused, 1008"}


def _versions() -> dict[str, str]:
    python = re.search(r'"google-genai==([0-9.]+)"', (ROOT / "pyproject.toml").read_text())
    oldest = re.search(r"OLDEST_PYTHON_SDK=([0-9.]+)", (ROOT / "scripts" / "test.sh").read_text())
    js = json.loads((ROOT / "tests" / "js" / "package.json").read_text())["dependencies"]
    assert python and oldest
    return {"python": python.group(1), "python_oldest": oldest.group(1), "js": js["@google/genai"],
            "js_oldest": js["genai-oldest"].rpartition("@")[2]}


def _path(pattern: str) -> str:
    return "`" + pattern.removesuffix(".**").replace("*AudioTranscription", "{input,output}AudioTranscription") + (
        ".…`" if pattern.endswith(".**") else "`")


def _behaviour(rule: Rule) -> str:
    text = SHOWN[rule.behaviour]
    for value, behaviour in sorted(rule.values.items()):
        text += f"; `{value}`: {SHOWN[behaviour]}"
    return text


def markdown() -> str:
    v = _versions()
    lines = [
        "# Conformance with the official SDKs",
        "",
        "What localive does with every field the official Live API clients can send, and when it sends each field",
        "the clients can receive. Generated from `tests/conformance/fields.py` by",
        "`.venv/bin/python -m tests.conformance.render`; do not edit by hand.",
        "",
        "## How it is checked",
        "",
        "`tests/conformance/test_conformance.py` walks the SDK's own types (`LiveConnectConfig` and the parameters",
        "of every `AsyncSession.send_*`, recursively: one case per field, one per value of an enum) and sends each",
        "case through the SDK's real `connect`/`send_*` (its own converters) to a running localive, capturing the",
        "frame the SDK put on the socket. Each outcome must be the one below: *works* and *accepted, no effect*",
        "mean the session goes on (a setup gets `setupComplete`; a runtime message is followed by a turn that is",
        "answered); *refused* means the session is closed with that code and a short reason naming the field.",
        "A wire field no rule names fails the test, so an SDK release that adds a field is caught.",
        "",
        f"It runs against google-genai **{v['python']}** (the newest release; the pin of the `test` extra) and",
        f"**{v['python_oldest']}** (the oldest supported; `scripts/test.sh` installs it in `.venv/oldest-sdk`),",
        f"and the JS SDK @google/genai **{v['js']}** and **{v['js_oldest']}** (`tests/js/package.json`) takes the",
        "same cases through its own methods (`tests/conformance/js_walk.mjs`; the JS SDK's types cannot be walked",
        "at run time, so its cases are the Python walk's, in camelCase). The JS SDK drops a few fields before the wire",
        "(`historyConfig`, a schema's `additionalProperties`), and refuses a function response without `response`.",
        "When a new SDK is released: raise the pins, run the test, give every",
        "new field a behaviour in localive and a rule in `tests/conformance/fields.py`, and render this page.",
        "",
        "Fields the SDK itself refuses in Gemini API mode (Vertex AI only: `retrieval`, `enterpriseWebSearch`,",
        "`partialArgs`, `explicitVadSignal`, …) never reach a server from the SDKs and are not listed unless a raw",
        "client could send them to localive.",
        "",
        "## Client messages",
        "",
    ]
    for message in MESSAGES:
        lines += [f"### `{message}`", "", "| Wire field | Behaviour | What it does here | Shown by |",
                  "|---|---|---|---|"]
        for rule in CLIENT_RULES:
            if rule.pattern.split(".")[0] == message:
                test = f"`{rule.test}`" if rule.test else ""
                lines.append(f"| {_path(rule.pattern)} | {_behaviour(rule)} | {rule.note} | {test} |")
        lines.append("")
    lines += ["## Server messages", "", "| Server field | When localive sends it | Shown by |", "|---|---|---|"]
    for server_field in SERVER_FIELDS:
        test = f"`{server_field.test}`" if server_field.test else ""
        lines.append(f"| `{server_field.path}` | {server_field.when} | {test} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    DOC.write_text(markdown())
    print(f"wrote {DOC.relative_to(ROOT)}")
