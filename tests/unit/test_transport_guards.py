"""The pieces behind tests/integration/test_transport_attacks.py: Host/Origin policy, log redaction, admission
counters, file modes. The integration tests replay the attacks; these pin down the edge cases."""

from __future__ import annotations

import logging
import os
import socket
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.requests import Request

from localive.protocol.errors import Overloaded
from localive.server import origins
from localive.server.origins import OriginPolicy, is_same_origin, parse_origin, split_host
from localive.server.playground import from_this_machine
from localive.server.runner import RedactSecrets, redact
from localive.server.state import Connections, address_key
from localive.server.tls import ensure_private_dir
from localive.stores.sqlite import SqliteStore


def scope(kind: str = "http", method: str = "GET", server: str = "127.0.0.1",
          **headers: str | list[str]) -> dict[str, Any]:
    raw: list[tuple[bytes, bytes]] = []
    for name, value in headers.items():
        for item in value if isinstance(value, list) else [value]:
            raw.append((name.replace("_", "-").encode(), item.encode()))
    return {"type": kind, "method": method, "path": "/", "headers": raw, "server": (server, 8766),
            "client": ("127.0.0.1", 50000)}


POLICY = OriginPolicy.build("127.0.0.1", ["allowed.test", "*.example.org"], ["https://app.example"])


# --- Host -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["localhost:8766", "127.0.0.1:8766", "[::1]:8766", "LOCALHOST.", "127.0.0.1",
                                  "[::ffff:127.0.0.1]:8766", "allowed.test:1", "a.example.org", "b.a.example.org"])
def test_the_servers_own_names_are_answered(host: str) -> None:
    assert POLICY.refusal(scope(host=host)) is None


@pytest.mark.parametrize("host", ["rebind.attacker.example:8766", "example.org", "allowed.test.evil", "10.0.0.5",
                                  "localhost.attacker.example", "127.0.0.1.nip.io"])
def test_other_names_are_refused(host: str) -> None:
    reason = POLICY.refusal(scope(host=host))
    assert reason is not None and "--allow-host" in reason


@pytest.mark.parametrize("host", ["a b", "x:99999", "[::1", "x:y", "user@host"])
def test_malformed_hosts_are_refused(host: str) -> None:
    assert POLICY.refusal(scope(host=host)) is not None


def test_a_second_host_header_is_refused() -> None:
    assert POLICY.refusal(scope(host=["127.0.0.1", "evil.example"])) is not None


def test_the_address_the_connection_arrived_on_is_answered() -> None:
    policy = OriginPolicy.build("127.0.0.1")
    assert policy.refusal(scope(host="198.51.100.2:8766", server="198.51.100.2")) is None
    assert policy.refusal(scope(host="[2001:db8::2]:8766", server="2001:db8::2")) is None
    assert policy.refusal(scope(host="198.51.100.3:8766", server="198.51.100.2")) is not None


def test_any_address_answers_on_every_interface_address(monkeypatch: pytest.MonkeyPatch) -> None:
    addresses = {"lo": [SimpleNamespace(family=socket.AF_INET, address="127.0.0.1")],
                 "eth0": [SimpleNamespace(family=socket.AF_INET, address="198.51.100.2"),
                          SimpleNamespace(family=socket.AF_INET6, address="fe80::1%eth0"),
                          SimpleNamespace(family=socket.AF_PACKET, address="02:00:00:00:00:01")]}
    monkeypatch.setattr(origins.psutil, "net_if_addrs", lambda: addresses)
    policy = OriginPolicy.build("0.0.0.0")
    assert policy.refusal(scope(host="198.51.100.2:8766")) is None
    assert policy.refusal(scope(host="[fe80::1]:8766")) is None
    assert policy.refusal(scope(host="198.51.100.3:8766")) is not None
    assert "0.0.0.0" not in policy.names and "02:00:00:00:00:01" not in policy.names


def test_the_bind_address_and_star() -> None:
    assert OriginPolicy.build("myhost.lan").refusal(scope(host="MyHost.lan:8765")) is None
    assert OriginPolicy.build("127.0.0.1", ["*"]).refusal(scope(host="anything.example")) is None


def test_bad_flag_values_are_rejected() -> None:
    with pytest.raises(ValueError, match="--allow-host"):
        OriginPolicy.build("127.0.0.1", ["host.example:80"])
    for origin in ("app.example", "https://app.example/path", "https://user@app.example", "null"):
        with pytest.raises(ValueError, match="--allow-origin"):
            OriginPolicy.build("127.0.0.1", allow_origins=[origin])


# --- Origin -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, method", [("websocket", "GET"), ("http", "POST"), ("http", "DELETE")])
def test_foreign_pages_are_refused_where_they_could_act(kind: str, method: str) -> None:
    reason = POLICY.refusal(scope(kind, method, host="127.0.0.1:8766", origin="http://evil.example"))
    assert reason is not None and "--allow-origin" in reason


def test_reading_requests_are_left_to_the_browsers_cors_rules() -> None:
    assert POLICY.refusal(scope("http", "GET", host="127.0.0.1:8766", origin="http://evil.example")) is None


@pytest.mark.parametrize("origin, allowed", [
    (None, True),  # a program
    ("http://127.0.0.1:8766", True),  # the playground page
    ("https://app.example", True), ("https://app.example:443", True), ("HTTPS://APP.EXAMPLE", True),
    ("http://app.example", False), ("https://app.example:8443", False),
    ("http://127.0.0.1:8765", False), ("http://localhost:8766", False), ("null", False), ("", False),
])
def test_websocket_origins(origin: str | None, allowed: bool) -> None:
    headers = {"host": "127.0.0.1:8766"} | ({"origin": origin} if origin is not None else {})
    assert (POLICY.refusal(scope("websocket", **headers)) is None) is allowed


@pytest.mark.parametrize("denial_response", [True, False])
async def test_a_refused_websocket_gets_a_403_and_never_reaches_the_app(denial_response: bool) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("a refused request reached the app")

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    request = scope("websocket", host="127.0.0.1:8766", origin="http://evil.example")
    if denial_response:
        request["extensions"] = {"websocket.http.response": {}}
    await origins.HostOriginGuard(app, POLICY)(request, receive, send)
    reason = "Pages from 'http://evil.example' may not use this server"
    if denial_response:  # the reason as the 403's body
        assert sent[0]["status"] == 403 and reason in sent[1]["body"].decode()
    else:  # a close before accept, which the server answers with a bare 403: through close_for, as every close
        assert [(m["type"], m["code"]) for m in sent] == [("websocket.close", 1008)] and reason in sent[0]["reason"]


def test_same_origin_with_default_ports() -> None:
    assert is_same_origin("https://example.org", "example.org")
    assert is_same_origin("http://example.org:80", "example.org")
    assert is_same_origin("http://[::1]:8766", "[::1]:8766")
    assert not is_same_origin("https://example.org", "example.org:80")
    assert not is_same_origin("http://example.org", None)
    assert split_host("[::1]:8766") == ("::1", 8766)
    assert parse_origin("https://App.Example.") == ("https", "app.example", 443)


def test_any_origin() -> None:
    policy = OriginPolicy.build("127.0.0.1", allow_origins=["*"])
    assert policy.refusal(scope("websocket", host="127.0.0.1", origin="null")) is None


# --- the playground's local mode ---------------------------------------------------------------------------------

def test_a_forwarded_request_is_not_from_this_machine() -> None:
    def request(**headers: str) -> Request:
        return Request(scope(host="127.0.0.1:8766", **headers) | {"query_string": b"", "app": SimpleNamespace()})

    assert from_this_machine(request())
    assert not from_this_machine(request(x_forwarded_for="8.8.8.8"))
    assert not from_this_machine(request(forwarded="for=8.8.8.8"))


# --- log redaction ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("line, secret", [
    ("< x-goog-api-key: K3Y-secret", "K3Y-secret"),
    ("< Authorization: Bearer K3Y-secret", "K3Y-secret"),
    ("< authorization: Token auth_tokens/abc", "abc"),
    ("< cookie: sid=abc123; other=1", "abc123"),
    ("(b'x-goog-api-key', b'K3Y-secret')", "K3Y-secret"),
    ("{'authorization': 'Bearer K3Y-secret'}", "K3Y-secret"),
    ('< GET /ws/x.BidiGenerateContent?key=K3Y-secret HTTP/1.1', "K3Y-secret"),
    ("token auth_tokens/Zx_9-a was used", "Zx_9-a"),
])
def test_secrets_are_redacted(line: str, secret: str) -> None:
    cleaned = redact(line)
    assert secret not in cleaned and "<redacted>" in cleaned


def test_plain_text_is_left_alone() -> None:
    for line in ("Is this ok?", "what? no", "session abc closed: 1000", "x-goog-api-key missing"):
        assert redact(line) == line


def test_the_filter_redacts_formatted_arguments() -> None:
    record = logging.LogRecord("uvicorn.error", logging.DEBUG, __file__, 1, "< %s: %s", ("x-goog-api-key", "K3Y"),
                               None)
    assert RedactSecrets().filter(record)
    assert record.getMessage() == "< x-goog-api-key: <redacted>"


# --- admission counters -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("host, key", [("127.0.0.1", None), ("::1", None), ("::ffff:127.0.0.1", None),
                                       ("203.0.113.7", "203.0.113.7"), ("::ffff:203.0.113.7", "203.0.113.7"),
                                       ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"), ("testclient", None),
                                       (None, None)])
def test_what_one_address_is(host: str | None, key: str | None) -> None:
    assert address_key(host) == key


def test_one_address_and_the_setup_queue_are_bounded() -> None:
    connections = Connections(max_per_address=2, max_awaiting_setup=3)
    first = connections.open("2001:db8::1")
    connections.open("2001:db8::2")  # the same /64
    with pytest.raises(Overloaded, match="this address"):
        connections.open("2001:db8::3")
    connections.open("127.0.0.1")  # loopback: not counted per address
    with pytest.raises(Overloaded):
        connections.open("198.51.100.1")  # three waiting for their setup
    connections.setup_arrived(first)
    connections.open("198.51.100.1")
    connections.close(first)
    connections.close(first)  # twice is harmless
    assert connections.per_address["2001:db8::/64"] == 1 and connections.awaiting_setup == 3


def test_no_cap_per_address() -> None:
    connections = Connections(max_per_address=0, max_awaiting_setup=100)
    for _ in range(50):
        connections.open("203.0.113.7")


# --- file modes -------------------------------------------------------------------------------------------------

def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_session_database_is_private(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "new" / "sessions.sqlite3")
    try:
        assert mode_of(tmp_path / "new") == 0o700
        for name in ("sessions.sqlite3", "sessions.sqlite3-wal", "sessions.sqlite3-shm"):
            assert mode_of(tmp_path / "new" / name) == 0o600
    finally:
        store.close()


def test_an_open_database_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "sessions.sqlite3"
    SqliteStore(path).close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").touch()
        os.chmod(f"{path}{suffix}", 0o644)
    store = SqliteStore(path)
    try:
        assert all(mode_of(Path(f"{path}{suffix}")) == 0o600 for suffix in ("", "-wal", "-shm"))
    finally:
        store.close()


def test_the_data_directory_is_private(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ensure_private_dir(tmp_path / "a" / "b")
    assert mode_of(tmp_path / "a" / "b") == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)
    with caplog.at_level(logging.WARNING):
        ensure_private_dir(shared)
    assert mode_of(shared) == 0o700 and "changed to 0700" in caplog.text
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    ensure_private_dir(sticky)  # a shared directory such as /tmp is not ours to close
    assert mode_of(sticky) == 0o1777
