"""The unmodified @google/genai JS SDK (Node) against a real `localive serve`, configured only by environment.

`tests/js/text_turn.mjs` builds `new GoogleGenAI({})`, so the base URL comes from GOOGLE_GEMINI_BASE_URL
(read by the SDK's constructor when no httpOptions.baseUrl is given), the CA from NODE_EXTRA_CA_CERTS and
the key from GEMINI_API_KEY — exactly what `eval "$(localive env)"` exports.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from localive.testing.server import LocaliveServer

JS_DIR = Path(__file__).resolve().parents[1] / "js"
SCRIPT = JS_DIR / "text_turn.mjs"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.js,
    # scripts/test.sh sets LOCALIVE_REQUIRE_NODE=1: there a missing Node.js fails these tests instead.
    pytest.mark.skipif(NODE is None and not os.environ.get("LOCALIVE_REQUIRE_NODE"),
                       reason="node (Node.js 20+) is not installed; the JS SDK tests need it"),
]


@pytest.fixture(scope="module", autouse=True)
def js_sdk_installed() -> None:
    if not (JS_DIR / "node_modules" / "@google" / "genai" / "package.json").is_file():
        pytest.fail("the @google/genai JS SDK is not installed in tests/js/node_modules: "
                    "run `npm ci --prefix tests/js` first", pytrace=False)


def run_text_turn(env: dict[str, str], *args: str,
                  timeout_ms: int = 15000) -> tuple[int, dict[str, Any], str]:
    """Run the script; return its exit code, its JSON summary line and its stderr."""
    assert NODE is not None
    proc = subprocess.run([NODE, str(SCRIPT), "--timeout-ms", str(timeout_ms), *args], cwd=JS_DIR, env=env,
                          capture_output=True, text=True, timeout=timeout_ms / 1000 + 15)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, (f"no JSON summary from node (rc={proc.returncode})\n"
                   f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc.returncode, json.loads(lines[-1]), proc.stderr


def assert_scripted_paris_turn(rc: int, summary: dict[str, Any], stderr: str) -> None:
    assert rc == 0, f"node failed: {summary}\nstderr:\n{stderr}"
    assert summary["ok"] is True
    assert summary["text"] == "The capital of France is Paris."
    assert summary["sawSetupComplete"] is True
    assert summary["sawGenerationComplete"] is True
    assert summary["sawTurnComplete"] is True
    kinds = summary["messageKinds"]
    assert kinds[0] == "setupComplete", kinds
    assert kinds[-1] == "serverContent+usageMetadata", kinds  # turnComplete carries the usage
    # JS session.close() sends a close frame without a code; the SDK reports 1005 (no status received).
    assert summary["closeCode"] == 1005, summary


def test_text_turn_over_wss_with_env_only(emulator_server: LocaliveServer) -> None:
    env = emulator_server.client_env()
    assert env["GOOGLE_GEMINI_BASE_URL"].startswith("https://")
    assert "NODE_EXTRA_CA_CERTS" in env and "GEMINI_API_KEY" in env

    rc, summary, stderr = run_text_turn(env, "--prompt", "What is the capital of France?")

    assert_scripted_paris_turn(rc, summary, stderr)


def test_text_turn_over_plain_ws(emulator_server: LocaliveServer) -> None:
    env = emulator_server.client_env()
    env["GOOGLE_GEMINI_BASE_URL"] = emulator_server.plain_base_url  # http:// -> the SDK uses ws://
    env.pop("NODE_EXTRA_CA_CERTS", None)

    rc, summary, stderr = run_text_turn(env, "--prompt", "What is the capital of France?")

    assert_scripted_paris_turn(rc, summary, stderr)


def test_unknown_model_rejects_connect_with_1008(emulator_server: LocaliveServer) -> None:
    rc, summary, stderr = run_text_turn(emulator_server.client_env(), "--model", "no-such-model-xyz")

    assert rc == 1, f"connect() should have rejected: {summary}\nstderr:\n{stderr}"
    assert summary["ok"] is False
    assert summary["stage"] == "connect", summary
    error = summary["error"]
    assert "Live connection closed before setup completed (code 1008)" in error, error
    assert "models/no-such-model-xyz is not found" in error, error


def test_spoken_turn_with_audio_answer(emulator_server: LocaliveServer, tmp_path: Path) -> None:
    from localive.testing.speech import speech_pcm

    pcm = tmp_path / "question.pcm"
    pcm.write_bytes(speech_pcm("What is the capital of Germany?"))
    assert NODE is not None
    proc = subprocess.run([NODE, str(JS_DIR / "audio_turn.mjs"), "--pcm", str(pcm)], cwd=JS_DIR,
                          env=emulator_server.client_env(), capture_output=True, text=True, timeout=90)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    summary = json.loads(lines[-1])
    assert summary["mimeTypes"] == ["audio/pcm;rate=24000"]
    assert summary["audioBytes"] > 24000  # over half a second of speech
    assert "germany" in summary["inputTranscript"].lower()
    assert summary["outputTranscript"].strip() == "The capital of Germany is Berlin."
    assert summary["sawGenerationComplete"] and summary["sawTurnComplete"]


def test_function_call_and_tool_response(emulator_server: LocaliveServer) -> None:
    assert NODE is not None
    proc = subprocess.run([NODE, str(JS_DIR / "tool_turn.mjs")], cwd=JS_DIR, env=emulator_server.client_env(),
                          capture_output=True, text=True, timeout=30)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    summary = json.loads(lines[-1])
    assert [(c["name"], c["args"]) for c in summary["calls"]] == [("turn_on_the_lights", {})]
    assert summary["calls"][0]["id"].startswith("function-call-")
    assert summary["text"] == 'The lights are on ({"result": "ok"}).'
