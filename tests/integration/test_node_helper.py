"""localive's Node helper (localive/testing/node/localive.mjs: `startLocalive`) in a node:test suite,
tests/js/localive_helper.test.mjs, with the @google/genai SDK: in-process on the plain listener and in a child
process configured by the environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import localive.testing

JS_DIR = Path(__file__).resolve().parents[1] / "js"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.js,
    # scripts/test.sh sets LOCALIVE_REQUIRE_NODE=1: there a missing Node.js fails these tests instead.
    pytest.mark.skipif(NODE is None and not os.environ.get("LOCALIVE_REQUIRE_NODE"),
                       reason="node (Node.js 20+) is not installed; the JS SDK tests need it"),
]


def test_the_helper_is_where_the_docs_say() -> None:
    shipped = Path(localive.testing.__file__).parent / "node" / "localive.mjs"
    assert shipped.is_file()
    assert "export async function startLocalive" in shipped.read_text()


def test_start_localive_under_node_test() -> None:
    assert NODE is not None, "node is not installed"
    if not (JS_DIR / "node_modules" / "@google" / "genai" / "package.json").is_file():
        pytest.fail("the @google/genai JS SDK is not installed in tests/js/node_modules: "
                    "run `npm ci --prefix tests/js`", pytrace=False)
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    env["LOCALIVE_PYTHON"] = sys.executable
    proc = subprocess.run([NODE, "--test", "localive_helper.test.mjs"], cwd=JS_DIR, env=env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-6000:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert "# pass 5" in proc.stdout and "# fail 0" in proc.stdout, proc.stdout


def test_the_docs_example_runs_verbatim(tmp_path: Path) -> None:
    """docs/testing.md's "In your Node tests" example, as written, in a project laid out as it says: the helper
    copied next to it, `node --test` run at the project's root."""
    assert NODE is not None, "node is not installed"
    docs = (Path(__file__).resolve().parents[2] / "docs" / "testing.md").read_text()
    section = docs[docs.index("## In your Node tests"):]
    example = section.split("```js\n", 1)[1].split("```", 1)[0]
    assert example.startswith("// tests/live.test.mjs, next to a copy of localive.mjs — run: "
                              "LOCALIVE_PYTHON=.venv/bin/python node --test\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "live.test.mjs").write_text(example)
    shutil.copy(Path(localive.testing.__file__).parent / "node" / "localive.mjs", tmp_path / "tests")
    (tmp_path / "tests" / "replies.toml").write_text('default = "It is always sunny in the emulator."\n')
    shutil.copy(JS_DIR / "text_turn.mjs", tmp_path / "app.mjs")  # an app configured by the environment
    shutil.copy(JS_DIR / "harness.mjs", tmp_path)
    (tmp_path / "node_modules").symlink_to(JS_DIR / "node_modules")
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    env["LOCALIVE_PYTHON"] = sys.executable
    proc = subprocess.run([NODE, "--test"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-6000:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert "# pass 2" in proc.stdout and "# fail 0" in proc.stdout, proc.stdout
