"""Ephemeral tokens shared by two localive processes through Redis (`--sessions-redis`), with the official Python
SDK: a token minted on one process works on the other, its uses are counted once across both, and a token's
session resumes on the other process."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from google import genai
from google.genai import errors, types

from localive.testing.server import LocaliveServer, start_server
from tests.support.redis_server import RedisServer
from tests.support.turns import ask, resuming, turn_of

KEY = "key-shared-5d81c0"
MODEL = "gemini-2.0-flash-live-001"
SCRIPT = str(Path(__file__).parent.parent / "data" / "emulator_script.toml")

pytestmark = pytest.mark.filterwarnings("ignore::google.genai.errors.ExperimentalWarning")


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    running = RedisServer.start(tmp_path_factory.mktemp("redis"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[list[LocaliveServer]]:
    started: list[LocaliveServer] = []
    try:
        for name in ("a", "b"):
            started.append(start_server(tmp_path_factory.mktemp(name), "--llm", "emulator", "--emulator-script",
                                        SCRIPT, "--voice", "off", "--api-key", KEY, "--sessions-redis",
                                        redis_server.url))
        yield started
    finally:
        for server in started:
            server.stop()


@pytest.fixture(autouse=True)
def trust_both(servers: list[LocaliveServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's environment (`localive env`), trusting both servers' own CAs; each client names its server."""
    bundle = tmp_path / "both-cas.pem"
    bundle.write_text("".join((server.data_dir / "tls" / "ca.pem").read_text() for server in servers))
    for name, value in servers[0].client_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_GEMINI_BASE_URL", raising=False)


def client(server: LocaliveServer, key: str, **options: str) -> genai.Client:
    base_url = server.env["GOOGLE_GEMINI_BASE_URL"]
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=base_url, **options))


def mint(server: LocaliveServer, uses: int) -> str:
    sdk = client(server, KEY)  # held until the call returns: a collected Client closes its HTTP client
    token = sdk.auth_tokens.create(config={"uses": uses})
    assert token.name is not None and token.name.startswith("auth_tokens/")
    return token.name


def with_token(server: LocaliveServer, name: str) -> genai.Client:
    return client(server, name, api_version="v1alpha")


async def test_a_token_minted_on_one_process_works_on_the_other(servers: list[LocaliveServer]) -> None:
    server_a, server_b = servers
    name = mint(server_a, uses=1)
    async with with_token(server_b, name).aio.live.connect(model=MODEL, config=resuming(None)) as session:
        answer, handle = await ask(session)
        assert turn_of(answer) == 1 and handle
    # its one use is spent on B: a second new session on A is refused, as on one process
    with pytest.raises(errors.APIError) as refused:
        async with with_token(server_a, name).aio.live.connect(model=MODEL, config=resuming(None)) as session:
            await ask(session)
    assert refused.value.code == 1011 and "used too many times" in str(refused.value)
    # resuming takes no use: the token's session, begun on B, continues on A
    async with with_token(server_a, name).aio.live.connect(model=MODEL, config=resuming(handle)) as session:
        answer, _ = await ask(session)
        assert turn_of(answer) == 2
    for server in servers:
        assert "ephemeral tokens: in the same Redis" in server.log()
        assert name.removeprefix("auth_tokens/") not in server.log()


async def test_simultaneous_new_sessions_on_both_processes_take_one_use(servers: list[LocaliveServer]) -> None:
    name = mint(servers[1], uses=1)
    clients = [with_token(server, name) for server in servers * 3]

    async def attempt(sdk: genai.Client) -> str:
        async with sdk.aio.live.connect(model=MODEL, config=resuming(None)) as session:
            return (await ask(session))[0]

    results = await asyncio.gather(*(attempt(sdk) for sdk in clients), return_exceptions=True)
    assert sum(isinstance(r, str) and turn_of(r) == 1 for r in results) == 1, results
    assert all(isinstance(r, errors.APIError) and r.code == 1011 for r in results if not isinstance(r, str))
