"""The transport attacks of the December 2026 adversarial test, replayed against real `localive serve` processes.

Each test sends what the finding's script sent and checks what a user would notice: a refusal, a slot that
frees itself, a /healthz that keeps answering, a log without secrets, private files. Findings (see
docs/security.md): F5 Host and Origin (DNS rebinding, cross-site WebSockets), F8 secrets in debug
logs, F13 slots held by silent or slow clients, F14 slowloris, F16 X-Forwarded-For, F19 file modes.

Some clients here are raw sockets: a browser's Host and Origin, a tiny receive buffer that is never read, and
headers that never end are things no WebSocket library sends on purpose.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import json
import os
import resource
import selectors
import socket
import stat
import struct
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from localive.testing.server import LocaliveServer, start_server

PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
CONSTRAINED = "/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained"
MODEL = "gemini-2.0-flash-live-001"
SETUP = json.dumps({"setup": {"model": MODEL, "generationConfig": {"responseModalities": ["TEXT"]}}})
KEY = "key-transport-5e1d0c7b"
COOKIE = "session-cookie-9a8b7c"
LONG_WORD = 100_000  # characters in each word of the long answer
LONG_WORDS = 80  # 8 MB: more than the kernel's largest send buffer (4 MiB by default) and uvicorn's together
WRITE_TIMEOUT_S = 8.0
SETUP_TIMEOUT_S = 10.0
HEADER_TIMEOUT_S = 5.0
MAX_SESSIONS = 20
MAX_AWAITING_SETUP = 30
PER_IP = 4
FD_LIMIT = 256  # the slowloris server's open-file limit, as in the finding (prlimit --nofile=256)
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def long_answer_script(directory: Path) -> Path:
    """The emulator answers 'long…' with the user's message LONG_WORDS times over, one message per word."""
    path = directory / "long_answer.toml"
    words = " ".join(["{input}"] * LONG_WORDS)
    path.write_text(f'default = "You said: {{input}}"\n\n[[reply]]\nmatch = "^long"\ntext = "{words}"\n'
                    f"delay_ms = 1\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    """No keys (the default), 20 sessions, a short write deadline, a page origin allowed by name."""
    workdir = tmp_path_factory.mktemp("transport-open")
    server = start_server(workdir, "--llm", "emulator", "--voice", "off",
                          "--emulator-script", str(long_answer_script(workdir)),
                          "--max-sessions", str(MAX_SESSIONS), "--write-timeout", str(WRITE_TIMEOUT_S),
                          "--max-awaiting-setup", str(MAX_AWAITING_SETUP), "--max-connections-per-ip", str(PER_IP),
                          "--allow-origin", "http://app.example")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    """An API key, debug logging, a proxy on loopback that is trusted, and a data directory that starts out open
    to other users, with a world-readable session database in it."""
    workdir = tmp_path_factory.mktemp("transport-keyed")
    data = workdir / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    (data / "sessions.sqlite3").touch()
    os.chmod(data / "sessions.sqlite3", 0o644)
    server = start_server(workdir, "--llm", "emulator", "--voice", "off", "--api-key", KEY, "--log-level", "debug",
                          "--forwarded-allow-ips", "127.0.0.1", "--max-connections-per-ip", str(PER_IP),
                          "--allow-host", "allowed.test")
    yield server
    server.stop()


def url(server: LocaliveServer, path: str = PATH) -> str:
    return f"ws://127.0.0.1:{server.plain_port}{path}"


def health(server: LocaliveServer, timeout_s: float = 10.0) -> dict[str, Any]:
    with NO_PROXY.open(f"{server.plain_base_url}/healthz", timeout=timeout_s) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def http_request(server: LocaliveServer, method: str, path: str, headers: dict[str, str],
                 body: bytes | None = None) -> tuple[int, str]:
    """A request with exactly these headers (a browser's Host and Origin included)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.plain_port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


async def session_answers(ws: ClientConnection, text: str = "ping") -> str:
    """Send the setup and one turn; the text of the answer."""
    await ws.send(SETUP)
    assert "setupComplete" in json.loads(await asyncio.wait_for(ws.recv(), 10))
    await ws.send(json.dumps({"clientContent": {"turns": [{"role": "user", "parts": [{"text": text}]}],
                                                "turnComplete": True}}))
    parts = []
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        content = message.get("serverContent", {})
        parts += [p.get("text", "") for p in content.get("modelTurn", {}).get("parts", [])]
        if content.get("turnComplete"):
            return "".join(parts)


async def close_code_of(ws: ClientConnection, timeout_s: float) -> int | None:
    """Wait for the server to close; its close code."""
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(timeout_s):
            while True:
                await ws.recv()
    return closed.value.rcvd.code if closed.value.rcvd else None


# --- raw WebSocket clients --------------------------------------------------------------------------------------

def client_frame(text: str) -> bytes:
    """One masked text frame, as a client must send it."""
    data = text.encode()
    mask = os.urandom(4)
    if len(data) < 126:
        head = bytes([0x81, 0x80 | len(data)])
    elif len(data) < 65536:
        head = bytes([0x81, 0x80 | 126]) + struct.pack("!H", len(data))
    else:
        head = bytes([0x81, 0x80 | 127]) + struct.pack("!Q", len(data))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def raw_upgrade(port: int, *, host: str | None = None, headers: dict[str, str] | None = None,
                receive_buffer: int | None = None) -> tuple[socket.socket, int]:
    """A WebSocket handshake with the given Host (default: 127.0.0.1:port); the socket and the HTTP status."""
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    lines = [f"GET {PATH} HTTP/1.1", f"Host: {host or f'127.0.0.1:{port}'}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
             "Sec-WebSocket-Version: 13", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(1)
        if not chunk:
            break
        response += chunk
    return sock, int(response.split(b" ", 2)[1]) if response else 0


def dropped_within(sock: socket.socket, timeout_s: float) -> bool:
    """Whether the server drops the connection within `timeout_s`, reading (and discarding) what it sent."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
    return False


# --- F5: Host and Origin ----------------------------------------------------------------------------------------

def test_dns_rebinding_gets_no_token_no_page_and_no_websocket(keyed_server: LocaliveServer) -> None:
    """Finding row 23: a page on rebind.attacker.example (resolving to 127.0.0.1) asked for a playground token with
    a matching Host and Origin and got one. Now every request under a foreign name is refused."""
    rebound = f"rebind.attacker.example:{keyed_server.plain_port}"
    status, body = http_request(keyed_server, "POST", "/playground/token",
                                {"Host": rebound, "Origin": f"http://{rebound}"})
    assert status == 403 and "--allow-host" in body and "auth_tokens/" not in body
    status, _ = http_request(keyed_server, "GET", "/", {"Host": rebound})
    assert status == 403
    sock, status = raw_upgrade(keyed_server.plain_port, host=rebound, headers={"x-goog-api-key": KEY})
    sock.close()
    assert status == 403
    # the page itself, under the server's own name, still gets its token; so does a name given with --allow-host
    own = f"127.0.0.1:{keyed_server.plain_port}"
    status, body = http_request(keyed_server, "POST", "/playground/token", {"Host": own, "Origin": f"http://{own}"})
    assert status == 200 and json.loads(body)["name"].startswith("auth_tokens/")
    allowed = f"allowed.test:{keyed_server.plain_port}"
    status, _ = http_request(keyed_server, "POST", "/playground/token", {"Host": allowed, "Origin": f"http://{allowed}"})
    assert status == 200
    assert "refused 403: Host 'rebind.attacker.example'" in keyed_server.log()


def test_the_playground_page_cannot_be_framed_by_other_sites(open_server: LocaliveServer) -> None:
    """Informational finding: the playground sent no CSP or X-Frame-Options."""
    conn = http.client.HTTPConnection("127.0.0.1", open_server.plain_port, timeout=10)
    try:
        conn.request("GET", "/", headers={"Host": f"127.0.0.1:{open_server.plain_port}"})
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status == 200
    assert response.getheader("X-Frame-Options") == "DENY"
    assert "frame-ancestors 'none'" in (response.getheader("Content-Security-Policy") or "")


async def test_a_foreign_page_cannot_open_a_live_websocket(open_server: LocaliveServer) -> None:
    """Finding row 24: on an open server, a WebSocket from Origin http://evil.example was accepted and ran code.
    Now the handshake is refused with 403; programs (no Origin), the server's own pages and --allow-origin work."""
    for origin in ("http://evil.example", "null", f"http://localhost:{open_server.plain_port}"):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url(open_server), origin=origin):
                pass
        assert refused.value.response.status_code == 403
        assert b"--allow-origin" in refused.value.response.body
    assert health(open_server)["activeSessions"] == 0
    for origin in (None, f"http://127.0.0.1:{open_server.plain_port}", "http://app.example"):
        async with connect(url(open_server), origin=origin) as ws:
            assert await session_answers(ws) == "You said: ping"
    status, _ = http_request(open_server, "POST", "/v1beta/auth_tokens", {"Origin": "http://evil.example"}, b"{}")
    assert status == 403
    assert "refused 403: Pages from 'http://evil.example'" in open_server.log()


# --- F8: secrets in the debug log -------------------------------------------------------------------------------

def access_lines(server: LocaliveServer) -> int:
    """The server's access-log lines for finished Live sessions so far."""
    return sum(1 for line in server.log().splitlines() if '"WS ' in line)


async def test_debug_log_shows_no_key_or_token(keyed_server: LocaliveServer) -> None:
    """Finding row 7: with --log-level debug the handshake logger printed every x-goog-api-key and Authorization
    header. The key and a token go in each place the SDKs put them; none reaches the log."""
    status, body = http_request(keyed_server, "POST", "/v1alpha/auth_tokens",
                                {"x-goog-api-key": KEY, "Content-Type": "application/json"}, b'{"uses": 3}')
    assert status == 200, body
    token = json.loads(body)["name"]
    places: list[tuple[str, dict[str, str]]] = [
        (f"{url(keyed_server)}?key={KEY}", {}),
        (url(keyed_server), {"x-goog-api-key": KEY, "Cookie": f"sid={COOKIE}"}),
        (url(keyed_server), {"Authorization": f"Bearer {KEY}"}),
        (f"{url(keyed_server)}?access_token={KEY}", {}),
        (f"{url(keyed_server, CONSTRAINED)}?access_token={token}", {}),
        (url(keyed_server, CONSTRAINED), {"x-goog-api-key": token}),
        (url(keyed_server, CONSTRAINED), {"Authorization": f"Token {token}"}),
    ]
    before = access_lines(keyed_server)
    for address, headers in places:
        async with connect(address, additional_headers=headers) as ws:
            assert await session_answers(ws) == "You said: ping"
    async with asyncio.timeout(10):  # each session's access line is written as the server finishes it
        while access_lines(keyed_server) < before + len(places):  # noqa: ASYNC110  # no event to await
            await asyncio.sleep(0.05)
    log = keyed_server.log()
    assert "< x-goog-api-key: <redacted>" in log, "the debug handshake log is not on: the test proves nothing"
    assert "< authorization: <redacted>" in log
    for secret in (KEY, token.removeprefix("auth_tokens/"), COOKIE):
        assert secret not in log


# --- F13: session slots -----------------------------------------------------------------------------------------

def slow_reader(port: int) -> socket.socket:
    """Finding row 68's client: asks for a long answer through a 4 KiB receive buffer and never reads."""
    sock, status = raw_upgrade(port, receive_buffer=4096)
    assert status == 101
    sock.sendall(client_frame(SETUP))
    turn = {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "long" + "a" * LONG_WORD}]}],
                              "turnComplete": True}}
    sock.sendall(client_frame(json.dumps(turn)))
    return sock


async def test_clients_that_never_read_lose_their_slots(open_server: LocaliveServer) -> None:
    """20 of 20 slots were held for over 150 s by clients that never read. Now each is aborted when one message
    has waited --write-timeout for it, and a newcomer gets a session soon after."""
    readers = [slow_reader(open_server.plain_port) for _ in range(MAX_SESSIONS)]
    try:
        full_at = time.monotonic()
        while health(open_server)["activeSessions"] < MAX_SESSIONS:
            assert time.monotonic() - full_at < 10, "the slow readers did not all get a session"
            await asyncio.sleep(0.1)
        full_at = time.monotonic()
        async with connect(url(open_server)) as ws:  # the attack works: the server is full
            await ws.send(SETUP)
            assert await close_code_of(ws, 5) == 1013
        answer, waited_s = "", 0.0
        while not answer:
            waited_s = time.monotonic() - full_at
            assert waited_s < WRITE_TIMEOUT_S + 30, "no slot came free"
            try:
                async with connect(url(open_server)) as ws:
                    answer = await session_answers(ws)
            except ConnectionClosed:  # 1013: still full
                await asyncio.sleep(0.5)
        assert answer == "You said: ping"
        print(f"a newcomer got a session {waited_s:.1f} s after 20 silent readers filled the server")
        while health(open_server)["activeSessions"]:  # every slow reader's slot, without reading a byte of theirs
            assert time.monotonic() - full_at < WRITE_TIMEOUT_S + 30, "a slow reader still holds its slot"
            await asyncio.sleep(0.2)
        assert all(dropped_within(sock, 10) for sock in readers), "a slow reader's connection is still open"
        assert "The client did not read for" in open_server.log()
    finally:
        for sock in readers:
            sock.close()


async def test_connections_without_setup_hold_no_session_slot(open_server: LocaliveServer) -> None:
    """Finding row 67: max-sessions connections that never send setup kept everyone out for 30 s. Now they wait in
    a queue of their own, hold no slot, and are closed with 1008 after --setup-timeout."""
    idle = [await connect(url(open_server)) for _ in range(MAX_SESSIONS + 5)]
    try:
        started = time.monotonic()
        async with connect(url(open_server)) as ws:
            assert await session_answers(ws) == "You said: ping"
            assert health(open_server)["activeSessions"] == 1
        assert time.monotonic() - started < 5
        codes = await asyncio.gather(*(close_code_of(ws, SETUP_TIMEOUT_S + 10) for ws in idle))
        assert set(codes) == {1008}
        assert time.monotonic() - started < SETUP_TIMEOUT_S + 10
    finally:
        await asyncio.gather(*(ws.close() for ws in idle))


async def test_the_setup_queue_is_bounded_and_frees_at_once(open_server: LocaliveServer) -> None:
    idle = [await connect(url(open_server)) for _ in range(MAX_AWAITING_SETUP)]
    try:
        async with connect(url(open_server)) as extra:
            started = time.monotonic()
            assert await close_code_of(extra, 5) == 1013
            assert time.monotonic() - started < 3
    finally:
        await asyncio.gather(*(ws.close() for ws in idle))
    await asyncio.sleep(0.5)
    async with connect(url(open_server)) as ws:  # the queue emptied when they left
        assert await session_answers(ws) == "You said: ping"


async def test_one_address_gets_a_bounded_share(keyed_server: LocaliveServer) -> None:
    """Per-address cap, with clients behind a trusted proxy on loopback (--forwarded-allow-ips 127.0.0.1)."""

    def via(address: str) -> dict[str, str]:
        return {"x-goog-api-key": KEY, "X-Forwarded-For": address}

    held = [await connect(url(keyed_server), additional_headers=via("203.0.113.7")) for _ in range(PER_IP)]
    try:
        for ws in held:
            await ws.send(SETUP)
            assert "setupComplete" in json.loads(await ws.recv())
        async with connect(url(keyed_server), additional_headers=via("203.0.113.7")) as extra:
            started = time.monotonic()
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(extra.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
            assert "from this address" in closed.value.rcvd.reason
            assert time.monotonic() - started < 3
        async with connect(url(keyed_server), additional_headers=via("203.0.113.8")) as other:
            assert await session_answers(other) == "You said: ping"
    finally:
        await asyncio.gather(*(ws.close() for ws in held))
    await asyncio.sleep(0.5)
    async with connect(url(keyed_server), additional_headers=via("203.0.113.7")) as again:
        assert await session_answers(again) == "You said: ping"


def lan_address() -> str:
    """This machine's first non-loopback IPv4 address (a client connecting to it from here is not loopback)."""
    import psutil

    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return str(address.address)
    pytest.skip("this machine has no non-loopback IPv4 address")


@pytest.fixture(scope="module")
def any_address_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    """--host 0.0.0.0, as on a LAN (no code execution or URL fetching while the test exposes it)."""
    server = start_server(tmp_path_factory.mktemp("transport-lan"), "--llm", "emulator", "--voice", "off",
                          "--host", "0.0.0.0", "--code-execution", "off", "--url-context", "off",
                          "--max-connections-per-ip", str(PER_IP))
    yield server
    server.stop()


async def test_a_lan_client_gets_a_bounded_share(any_address_server: LocaliveServer) -> None:
    """A real non-loopback peer: the server bound to 0.0.0.0 answers under the machine's addresses (and not under
    another name), and one address gets --max-connections-per-ip Live connections, the next one 1013."""
    address = lan_address()
    for host, expected in ((f"{address}:{any_address_server.plain_port}", 200), ("lan-name.example", 403)):
        status, _ = http_request(any_address_server, "GET", "/healthz", {"Host": host})
        assert status == expected, host
    with NO_PROXY.open(f"http://{address}:{any_address_server.plain_port}/healthz", timeout=10) as response:
        assert response.status == 200
    lan_url = f"ws://{address}:{any_address_server.plain_port}{PATH}"
    held = [await connect(lan_url) for _ in range(PER_IP)]
    try:
        async with connect(lan_url) as extra:
            assert await close_code_of(extra, 5) == 1013
        async with connect(url(any_address_server)) as local:  # loopback clients are not counted
            assert await session_answers(local) == "You said: ping"
        for ws in held:
            assert await session_answers(ws) == "You said: ping"
    finally:
        await asyncio.gather(*(ws.close() for ws in held))


# --- F16: X-Forwarded-For ---------------------------------------------------------------------------------------

async def test_forwarded_for_is_ignored_unless_a_proxy_is_named(open_server: LocaliveServer,
                                                               keyed_server: LocaliveServer) -> None:
    """uvicorn trusted X-Forwarded-For from any loopback peer: a local program could pose as any address. Without
    --forwarded-allow-ips the header changes nothing (these 6 connections would pass a cap of 4 as one address
    only if it were believed); with it, the proxy's word is taken, and a forwarded request gets no playground
    token in local mode."""
    spoofed = {"X-Forwarded-For": "203.0.113.9"}
    held = [await connect(url(open_server), additional_headers=spoofed) for _ in range(PER_IP + 2)]
    try:
        for ws in held:
            await ws.send(SETUP)
            assert "setupComplete" in json.loads(await ws.recv())
    finally:
        await asyncio.gather(*(ws.close() for ws in held))
    await asyncio.sleep(0.5)
    assert "203.0.113.9" not in open_server.log()
    own = f"127.0.0.1:{keyed_server.plain_port}"
    status, body = http_request(keyed_server, "POST", "/playground/token",
                                {"Host": own, "Origin": f"http://{own}", "X-Forwarded-For": "8.8.8.8"})
    assert status == 403 and "--playground public" in body


# --- F14: slowloris ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def loris_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    """A server under an open-file limit of 256, as in the finding (the child inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(FD_LIMIT, hard), hard))
    try:
        server = start_server(tmp_path_factory.mktemp("transport-loris"), "--llm", "emulator", "--voice", "off",
                              "--header-timeout", str(HEADER_TIMEOUT_S))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    yield server
    server.stop()


def test_slowloris_does_not_starve_healthz(loris_server: LocaliveServer) -> None:
    """300 connections that send their headers a line a second, never ending them. /healthz keeps answering,
    and every slow connection is closed within --header-timeout (the oldest sooner, to make room)."""
    selector = selectors.DefaultSelector()
    opened_at = time.monotonic()
    slow: dict[socket.socket, float | None] = {}
    for _ in range(300):
        sock = socket.create_connection(("127.0.0.1", loris_server.plain_port), timeout=10)
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{loris_server.plain_port}\r\n".encode())
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        slow[sock] = None
    latencies: list[float] = []
    try:
        next_line = time.monotonic()
        while any(closed is None for closed in slow.values()):
            assert time.monotonic() - opened_at < HEADER_TIMEOUT_S + 20, "slow connections are still open"
            for key, _ in selector.select(timeout=0.2):
                sock = key.fileobj  # type: ignore[assignment]
                with contextlib.suppress(BlockingIOError):
                    try:
                        data = sock.recv(4096)
                    except ConnectionError:
                        data = b""
                    if not data:
                        slow[sock] = time.monotonic() - opened_at
                        selector.unregister(sock)
            if time.monotonic() >= next_line:  # one more header line from each connection still open
                next_line += 1.0
                for sock, closed in slow.items():
                    if closed is None:
                        with contextlib.suppress(OSError):
                            sock.send(b"X-Slow: 1\r\n")
                started = time.monotonic()
                assert health(loris_server, timeout_s=10)["status"] == "ok"
                latencies.append(time.monotonic() - started)
    finally:
        selector.close()
        for sock in slow:
            sock.close()
    closed_after = sorted(t for t in slow.values() if t is not None)
    print(f"/healthz under 300 slow connections: {[round(t * 1000) for t in latencies]} ms; "
          f"slow connections closed after {closed_after[0]:.1f}–{closed_after[-1]:.1f} s")
    assert max(latencies) < 3.0
    assert closed_after[-1] < HEADER_TIMEOUT_S + 5
    assert health(loris_server)["status"] == "ok"


# --- F19: file modes --------------------------------------------------------------------------------------------

def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_session_state_is_private_to_its_owner(open_server: LocaliveServer, keyed_server: LocaliveServer) -> None:
    """Finding row 72: sessions.sqlite3 and its -wal were 0644 in a 0755 directory. A new data directory is 0700,
    an open one is tightened (and the log says so), and the database files are 0600."""
    for server in (open_server, keyed_server):
        assert mode_of(server.data_dir) == 0o700
        for name in ("sessions.sqlite3", "sessions.sqlite3-wal", "sessions.sqlite3-shm"):
            assert mode_of(server.data_dir / name) == 0o600, name
    assert "was readable by other users (mode 0755): changed to 0700" in keyed_server.log()
