"""Hostile pages for URL context, replayed against a real server (security findings F1 and F4 in
docs/security.md).

A hostile HTTP server in the test process serves a bz2 "charset" bomb and a page of 190,000 nested `<div>`s; the
localive server (emulator model, `--url-allow 127.0.0.1` standing in for a public host) is asked to read them.
The tests assert what a user would notice: the server's memory stays put, other sessions (one with
`sessionResumption`, whose setup writes to the session store) are answered promptly meanwhile, and the server
stops promptly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import bz2
import json
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest
from websockets.asyncio.client import ClientConnection

from localive.testing.server import LocaliveServer, start_server
from tests.support import raw_live

TIMEOUT_S = 60.0
SCRIPT = 'default = "{input}"\ndelay_ms = 0\n'
DEEP_LEVELS = 190_000  # 2.09 MB: 158 s of CPU per page with the old parser
BOMB_MIB = 256  # what the bz2 page expands to (its body: about 200 bytes)
SUCCESS = "URL_RETRIEVAL_STATUS_SUCCESS"


def bz2_bomb() -> bytes:
    compressor = bz2.BZ2Compressor(9)
    zeros = bytes(2**20)
    return b"".join([*(compressor.compress(zeros) for _ in range(BOMB_MIB)), compressor.flush()])


class Hostile(BaseHTTPRequestHandler):
    bomb = b""
    deep = ("<html><body>" + "<div>" * DEEP_LEVELS + "<p>bottom text</p>" + "</div>" * DEEP_LEVELS).encode()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/bz2bomb":
            body, content_type = self.bomb, "text/plain; charset=bz2_codec"
        elif path == "/bz2bomb-meta":
            body, content_type = self.bomb + b'<meta charset="bz2_codec">', "text/html"
        elif path == "/deep":
            body, content_type = self.deep, "text/html; charset=utf-8"
        else:
            body, content_type = b"fine", "text/plain"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    Hostile.bomb = bz2_bomb()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def serve(workdir: Path, *extra: str) -> LocaliveServer:
    script = workdir / "script.toml"
    script.write_text(SCRIPT, encoding="utf-8")
    return start_server(workdir, "--llm", "emulator", "--voice", "off", "--emulator-script", str(script),
                        "--code-execution", "off", "--url-allow", "127.0.0.1", *extra)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    running = serve(tmp_path_factory.mktemp("url-attacks-server"))
    yield running
    running.stop()


def live_url(server: LocaliveServer) -> str:
    base = server.plain_base_url.replace("http://", "ws://", 1)
    return f"{base}/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"


async def recv(ws: ClientConnection) -> dict[str, Any]:
    return await raw_live.recv(ws, TIMEOUT_S)


def session(server: LocaliveServer, **setup: Any) -> AbstractAsyncContextManager[ClientConnection]:
    return raw_live.session(live_url(server), TIMEOUT_S, **setup)


async def send_turn(ws: ClientConnection, text: str) -> None:
    await ws.send(json.dumps({"clientContent": {"turns": [{"role": "user", "parts": [{"text": text}]}],
                                                "turnComplete": True}}))


async def finish_turn(ws: ClientConnection) -> list[dict[str, Any]]:
    messages = [await recv(ws)]
    while not messages[-1].get("serverContent", {}).get("turnComplete"):
        messages.append(await recv(ws))
    return messages


def statuses(messages: list[dict[str, Any]]) -> list[str]:
    return [u["urlRetrievalStatus"] for m in messages
            for u in m.get("serverContent", {}).get("urlContextMetadata", {}).get("urlMetadata", [])]


def text_of(messages: list[dict[str, Any]]) -> str:
    return "".join(p.get("text", "") for m in messages
                   for p in m.get("serverContent", {}).get("modelTurn", {}).get("parts", []))


URL_TOOLS: dict[str, Any] = {"tools": [{"urlContext": {}}]}


async def test_a_bz2_charset_bomb_leaves_the_servers_memory_alone(server: LocaliveServer, hostile: str) -> None:
    """F1: a 785-byte page declaring `charset=bz2_codec` took 2.1 GB of server RSS per URL (and a page with
    `<meta charset="bz2_codec">` 4.2 GB). Four such URLs now cost the server no memory to speak of."""
    process = psutil.Process(server.process.process.pid)
    base = peak = process.memory_info().rss
    urls = " ".join(f"{hostile}/{path}?{i}" for i in range(2) for path in ("bz2bomb", "bz2bomb-meta"))
    async with session(server, **URL_TOOLS) as ws:
        started = time.monotonic()
        await send_turn(ws, f"Summarize {urls}")
        turn = asyncio.create_task(finish_turn(ws))
        while not turn.done():
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.005)
        messages = await turn
    assert time.monotonic() - started < 15
    assert statuses(messages) == [SUCCESS] * 4
    assert peak - base < 150 * 2**20, f"the server's RSS grew by {(peak - base) / 2**20:.0f} MiB"


async def test_deep_pages_do_not_hold_up_other_sessions(server: LocaliveServer, hostile: str) -> None:
    """F4: six pages of 190,000 nested <div>s kept the default executor busy for minutes; a session with
    `sessionResumption` could not finish its setup in 40 s. Now twelve such pages are read in seconds, and a
    session that starts meanwhile is set up and answered at once."""
    urls = " ".join(f"{hostile}/deep?{i}" for i in range(12))
    async with session(server, **URL_TOOLS) as reader:
        await send_turn(reader, f"Read {urls}")
        reading = asyncio.create_task(finish_turn(reader))
        await asyncio.sleep(0.5)
        started = time.monotonic()
        async with session(server, sessionResumption={}) as other:
            await send_turn(other, "still there?")
            answered = await finish_turn(other)
        other_s = time.monotonic() - started
        was_reading = not reading.done()
        messages = await reading
    assert was_reading, "the pages were read before the other session started: nothing was measured"
    assert other_s < 5, f"the other session took {other_s:.1f} s"
    assert text_of(answered) == "still there?"
    assert statuses(messages) == [SUCCESS] * 12


async def test_the_server_stops_promptly_while_reading_deep_pages(tmp_path: Path, hostile: str) -> None:
    """F4: SIGTERM did not stop the server for 28 s or more while it parsed. Parsing is now bounded: the server
    drains (the open session's `goAway`, then its close at --drain-s) and exits within seconds."""
    running = serve(tmp_path, "--drain-s", "2")
    try:
        async with session(running, **URL_TOOLS) as reader:
            await send_turn(reader, "Read " + " ".join(f"{hostile}/deep?{i}" for i in range(20)))
            await asyncio.sleep(1.0)  # the pages are being read
            started = time.monotonic()
            running.process.process.terminate()
            code = await asyncio.to_thread(running.process.process.wait, 30)
        assert time.monotonic() - started < 10
        assert code == 0
    finally:
        running.stop()
