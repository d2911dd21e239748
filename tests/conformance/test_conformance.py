"""Conformance with the official SDKs: every field they can send, through their own converters, into a live server.

The walk (tests/conformance/sdk_walk.py) runs under the newest google-genai (the `test` extra's pin) and under the
oldest one localive supports (.venv/oldest-sdk, installed by scripts/test.sh); each case's outcome must be what
tests/conformance/fields.py says, and a wire field no rule names fails the test: a new SDK release that adds a field
is caught here. docs/conformance.md is rendered from the same rules and must be current.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.genai import types
from pydantic.alias_generators import to_camel

from localive.testing.server import LocaliveServer, start_server
from tests.conformance import render
from tests.conformance.check import judge, rule_for
from tests.conformance.fields import SERVER_FIELDS
from tests.conftest import EMULATOR_SCRIPT

ROOT = Path(__file__).resolve().parents[2]
WALK = Path(__file__).with_name("sdk_walk.py")
JS_WALK = Path(__file__).with_name("js_walk.mjs")
OLDEST = ROOT / ".venv" / "oldest-sdk"


def _pinned(package: str) -> str:
    match = re.search(rf'"{re.escape(package)}==([0-9.]+)"', (ROOT / "pyproject.toml").read_text())
    assert match, f"pyproject.toml pins {package}"
    return match.group(1)


def _oldest_version() -> str:
    found = sorted(OLDEST.glob("google_genai-*.dist-info"))
    assert found, f"the oldest supported SDK is missing from {OLDEST}: scripts/test.sh installs it"
    return found[0].name.removeprefix("google_genai-").removesuffix(".dist-info")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    """An emulator server that lets one client open the walk's ~1,000 short sessions quickly."""
    running = start_server(tmp_path_factory.mktemp("conformance"), "--llm", "emulator", "--emulator-script",
                           str(EMULATOR_SCRIPT), "--turn-taking", "silence", "--client-work-share", "100")
    yield running
    running.stop()


def walk(server: LocaliveServer, sdk_path: Path | None) -> list[dict[str, Any]]:
    env = server.client_env()
    if sdk_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(sdk_path), env.get("PYTHONPATH", "")) if p)
    done = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", str(WALK)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.mark.parametrize("release", ["newest", "oldest"])
def test_every_field_the_python_sdk_sends_is_handled_as_documented(server: LocaliveServer, release: str) -> None:
    expected_version = _pinned("google-genai") if release == "newest" else _oldest_version()
    records = walk(server, None if release == "newest" else OLDEST)
    assert {r["sdk"] for r in records} == {expected_version}
    by_message: dict[str, int] = {}
    for record in records:
        by_message[record["message"]] = by_message.get(record["message"], 0) + 1
    # the walk reached every message and the whole setup tree (over 500 leaves in 3.3 and 3.6)
    assert by_message.keys() == {"setup", "clientContent", "realtimeInput", "toolResponse", "contextUpdate"}
    assert by_message["setup"] > 500
    problems = [problem for record in records for problem in judge(record).problems]
    assert not problems, f"{len(problems)} field(s) not handled as docs/conformance.md says:\n" + "\n".join(
        problems[:60])


@pytest.mark.js
@pytest.mark.skipif(shutil.which("node") is None and not os.environ.get("LOCALIVE_REQUIRE_NODE"),
                    reason="node (Node.js 20+) is not installed; the JS SDK tests need it")
@pytest.mark.parametrize("package", ["@google/genai", "genai-oldest"])
def test_the_same_fields_through_the_js_sdk_are_handled_as_documented(server: LocaliveServer, package: str,
                                                                      tmp_path: Path) -> None:
    """The Python walk's cases (the JS SDK's types are not inspectable at run time), sent through the JS SDK's own
    methods: what it puts on the wire must meet the same rules. Fields the JS SDK drops never reach the wire."""
    cases = tmp_path / "cases.json"
    subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", str(WALK), "--dump-cases", str(cases)],
                   check=True, cwd=ROOT, timeout=120)
    node = shutil.which("node")
    assert node, "node is required (LOCALIVE_REQUIRE_NODE is set)"
    done = subprocess.run([node, str(JS_WALK), str(cases), package], env=server.client_env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    records = [json.loads(line) for line in done.stdout.splitlines()]
    package_json = json.loads((ROOT / "tests" / "js" / "package.json").read_text())["dependencies"][package]
    assert {r["sdk"] for r in records} == {package_json.rpartition("@")[2]}
    assert len(records) > 900
    problems = [problem for record in records for problem in judge(record).problems]
    assert not problems, f"{len(problems)} field(s) not handled as docs/conformance.md says:\n" + "\n".join(
        problems[:60])


def test_a_field_no_rule_names_fails_the_check() -> None:
    """What catches a new SDK field: a wire path the rules do not know is a problem, whatever the outcome."""
    record = {"sdk": "9.9.9", "message": "setup", "case": "brand_new_field", "outcome": "ok",
              "frame": {"setup": {"model": "models/x", "generationConfig": {"brandNewField": True}}}}
    assert any("no rule for the wire field setup.generationConfig.brandNewField" in p
               for p in judge(record).problems)
    assert rule_for("setup.generationConfig.temperature") is not None


def test_a_refusal_where_the_rules_say_works_fails_the_check() -> None:
    record = {"sdk": "9.9.9", "message": "setup", "case": "temperature", "outcome": "closed 1007: Unknown name",
              "frame": {"setup": {"model": "models/x", "generationConfig": {"temperature": 0.7}}}}
    assert judge(record).problems


def _server_paths() -> set[str]:
    paths = {to_camel(name) for name in types.LiveServerMessage.model_fields}
    paths |= {f"serverContent.{to_camel(name)}" for name in types.LiveServerContent.model_fields}
    paths |= {f"setupComplete.{to_camel(name)}" for name in types.LiveServerSetupComplete.model_fields}
    return paths


def test_every_server_field_of_the_sdk_says_when_localive_sends_it() -> None:
    documented = {f.path for f in SERVER_FIELDS}
    # serverContent only holds the documented serverContent.* fields
    containers = {"serverContent"}
    missing = _server_paths() - documented - containers
    assert not missing, f"server fields with no entry in tests/conformance/fields.py SERVER_FIELDS: {sorted(missing)}"


def test_docs_conformance_md_is_current() -> None:
    assert (ROOT / "docs" / "conformance.md").read_text() == render.markdown(), (
        "docs/conformance.md is out of date: run `.venv/bin/python -m tests.conformance.render`")
