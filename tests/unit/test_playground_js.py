"""The playground's pure ES modules, tested on Node (tests/js/playground.test.mjs, node:test)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

NODE = shutil.which("node")
TESTS = Path(__file__).resolve().parents[1] / "js" / "playground.test.mjs"

pytestmark = [
    pytest.mark.js,
    # scripts/test.sh sets LOCALIVE_REQUIRE_NODE=1: there a missing Node.js fails this test instead.
    pytest.mark.skipif(NODE is None and not os.environ.get("LOCALIVE_REQUIRE_NODE"),
                       reason="node (Node.js 20+) is not installed"),
]


def test_playground_modules() -> None:
    assert NODE is not None, "node is not installed"
    proc = subprocess.run([NODE, "--test", str(TESTS)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "# fail 0" in proc.stdout and "# pass 6" in proc.stdout, proc.stdout[-2000:]
