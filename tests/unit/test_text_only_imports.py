"""A text-only server never loads numpy or soxr: `pip install localive` without extras declares neither, and
`localive serve --llm emulator --voice off` must serve text sessions with it (README, "Install").

A fresh interpreter runs `localive serve` itself, with the listener replaced by one text session driven through the
server's ASGI app in-process (raw ASGI WebSocket events: nothing binds a port), then reports what it imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

AUDIO_ONLY = ("numpy", "soxr")

DRIVER = r"""
import asyncio, json, sys
import localive.server.runner as runner
from localive.cli import main
from localive.server.app import LIVE_PATH

PORT = 18766
said = []


async def one_text_session(app, **_):
    incoming = asyncio.Queue()
    for frame in ({"setup": {"model": "models/gemini-2.0-flash-live-001",
                             "generationConfig": {"responseModalities": ["TEXT"]}}},
                  {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "hello there"}]}],
                                     "turnComplete": True}}):
        incoming.put_nowait({"type": "websocket.receive", "text": json.dumps(frame)})
    done = asyncio.Event()

    async def receive():
        if incoming.empty() and done.is_set():
            return {"type": "websocket.disconnect", "code": 1000}
        if not said:
            return {"type": "websocket.connect"}
        if incoming.empty():
            await done.wait()
            return {"type": "websocket.disconnect", "code": 1000}
        return await incoming.get()

    async def send(event):
        if event["type"] == "websocket.accept":
            said.append({"accepted": True})
        elif event["type"] == "websocket.send":
            message = json.loads(event.get("text") or event["bytes"])
            said.append(message)
            if message.get("serverContent", {}).get("turnComplete"):
                done.set()
        elif event["type"] == "websocket.close":
            said.append({"closed": event.get("code")})
            done.set()

    path = LIVE_PATH.format(version="v1beta")
    scope = {"type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws", "path": path,
             "raw_path": path.encode(), "query_string": b"", "headers": [(b"host", f"127.0.0.1:{PORT}".encode())],
             "server": ("127.0.0.1", PORT), "client": ("127.0.0.1", 50000), "subprotocols": []}
    await asyncio.wait_for(app(scope, receive, send), 30)


runner.serve_all = one_text_session
code = main(["serve", "--llm", "emulator", "--voice", "off", "--port", str(PORT), "--data-dir", sys.argv[1]])
print(json.dumps({"code": code, "said": said, "loaded": [m for m in sys.argv[2:] if m in sys.modules]}))
"""


def test_a_text_session_on_a_text_only_server_loads_no_audio_libraries(tmp_path: Path) -> None:
    src = Path(__file__).resolve().parents[2] / "src"
    run = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path), *AUDIO_ONLY], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": str(src)}, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["code"] == 0
    said = report["said"]
    assert any("setupComplete" in m for m in said), said
    answer = "".join(p.get("text", "") for m in said for p in m.get("serverContent", {}).get("modelTurn", {})
                     .get("parts", []))
    assert answer and said[-1].get("serverContent", {}).get("turnComplete"), said
    assert report["loaded"] == [], f"a text-only session imported {report['loaded']}"
