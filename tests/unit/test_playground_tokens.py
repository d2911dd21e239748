"""Who gets the playground's ephemeral tokens: only the page, only on this machine unless --playground public."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.requests import Request

from localive.server.auth import Access, KeyRing, is_token
from localive.server.playground import PRINCIPAL, is_loopback, mint_token

KEY = "unit-test-key-123"


def request(access: Access, mode: str, client: str = "127.0.0.1", origin: str | None = None,
            host: str = "127.0.0.1:8766") -> Request:
    headers = [(b"host", host.encode()), (b"content-type", b"application/json")]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    app = SimpleNamespace(state=SimpleNamespace(localive=SimpleNamespace(access=access), playground=mode))
    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/playground/token", "headers": headers,
                             "query_string": b"", "client": (client, 50000), "app": app, "scheme": "http",
                             "server": ("127.0.0.1", 8766)}
    return Request(scope)


async def mint(access: Access, mode: str = "local", **kwargs: Any) -> tuple[int, dict[str, Any]]:
    response = await mint_token(request(access, mode, **kwargs))
    return response.status_code, json.loads(bytes(response.body))


@pytest.fixture
def keyed() -> Access:
    return Access(KeyRing([KEY]))


async def test_a_local_page_gets_a_one_use_token_of_its_own(keyed: Access) -> None:
    status, body = await mint(keyed, origin="http://127.0.0.1:8766")
    assert status == 200 and is_token(body["name"]) and body["uses"] == 1
    assert KEY not in json.dumps(body)
    token = await keyed.tokens.get(body["name"])
    assert token is not None and token.principal == PRINCIPAL and token.uses == 1
    credential = await keyed.authenticate(body["name"], constrained=True)
    _, other = await mint(keyed, origin="http://127.0.0.1:8766")
    # each page's sessions are its own (security finding F16): another page cannot resume them
    assert credential.principal != (await keyed.authenticate(other["name"], constrained=True)).principal
    assert PRINCIPAL not in credential.principal


async def test_other_machines_get_no_token_unless_public(keyed: Access) -> None:
    status, body = await mint(keyed, client="203.0.113.7")
    assert status == 403 and "--playground public" in body["error"]["message"]
    status, body = await mint(keyed, "public", client="203.0.113.7")
    assert status == 200 and is_token(body["name"])


async def test_other_sites_pages_get_no_token(keyed: Access) -> None:
    status, body = await mint(keyed, origin="https://evil.example")
    assert status == 403 and body["error"]["status"] == "PERMISSION_DENIED"


async def test_an_open_server_needs_no_token() -> None:
    status, body = await mint(Access())
    assert status == 400 and "needs no key" in body["error"]["message"]


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("::1", True), ("127.8.0.3", True),
                                                 ("localhost", True), ("10.0.0.2", False), ("", False),
                                                 ("testclient", False), (None, False)])
def test_is_loopback(host: str | None, loopback: bool) -> None:
    assert is_loopback(host) is loopback


async def test_one_client_cannot_exhaust_the_tokens_of_others(keyed: Access) -> None:
    """Security finding F9: 100,000 page tokens from one client locked every mint out for 1.5 h."""
    from localive.server.auth import KEY_QUOTA, Token, new_token_name
    from localive.server.playground import PLAYGROUND_QUOTA

    for _ in range(PLAYGROUND_QUOTA.tokens):
        assert (await mint(keyed, origin="http://127.0.0.1:8766"))[0] == 200
    status, body = await mint(keyed, origin="http://127.0.0.1:8766")
    assert status == 429 and body["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert (await mint(keyed, "public", client="192.0.2.7"))[0] == 200  # another client still gets one
    now = keyed.clock.time()
    await keyed.tokens.add(new_token_name(), Token(now + 60, now + 60, 1, "key-principal"), now, KEY_QUOTA)  # and keys
