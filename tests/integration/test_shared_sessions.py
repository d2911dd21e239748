"""Two localive processes sharing resumable sessions in one Redis (AOF on), through the official Python SDK:
a session moves between servers, survives a `kill -9` of the server it was on, and of Redis itself."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from localive.testing.server import LocaliveServer, start_server
from tests.support.redis_server import RedisServer
from tests.support.server import sdk_client
from tests.support.turns import ask, resuming, turn_of

MODEL = "gemini-2.0-flash-live-001"
SCRIPT = str(Path(__file__).parent.parent / "data" / "emulator_script.toml")


async def turns(server: LocaliveServer, monkeypatch: pytest.MonkeyPatch, handle: str | None,
                count: int) -> tuple[list[int], str | None]:
    """`count` turns on `server`, resuming `handle`; the turn numbers and the last handle."""
    client = sdk_client(server, monkeypatch)  # each server has its own CA
    numbers = []
    async with client.aio.live.connect(model=MODEL, config=resuming(handle)) as session:
        for _ in range(count):
            answer, handle = await ask(session)
            numbers.append(turn_of(answer))
    return numbers, handle


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    running = RedisServer.start(tmp_path_factory.mktemp("redis"))
    yield running
    running.stop()


def start(workdir: Path, redis_server: RedisServer) -> LocaliveServer:
    return start_server(workdir, "--llm", "emulator", "--emulator-script", SCRIPT, "--voice", "off",
                        "--sessions-redis", redis_server.url)


@pytest.fixture(scope="module")
def server_b(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[LocaliveServer]:
    server = start(tmp_path_factory.mktemp("b"), redis_server)
    yield server
    server.stop()


async def test_a_session_moves_between_servers(tmp_path: Path, redis_server: RedisServer, server_b: LocaliveServer,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    server_a = start(tmp_path / "a", redis_server)
    try:
        numbers, handle = await turns(server_a, monkeypatch, None, 3)
        assert numbers == [1, 2, 3]
        numbers, handle = await turns(server_b, monkeypatch, handle, 2)
        assert numbers == [4, 5]
        numbers, _ = await turns(server_a, monkeypatch, handle, 1)
        assert numbers == [6]
    finally:
        server_a.stop()
    assert "sessions: Redis at redis://127.0.0.1:" in server_a.log()


async def test_kill_9_of_a_server_mid_session_loses_no_completed_turn(tmp_path: Path, redis_server: RedisServer,
                                                                     server_b: LocaliveServer,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    handle, completed = None, 0
    for trial in range(3):
        server_a = start(tmp_path / f"a{trial}", redis_server)
        try:
            client = sdk_client(server_a, monkeypatch)
            async with client.aio.live.connect(model=MODEL, config=resuming(handle)) as session:
                for _ in range(1 + trial % 2):
                    answer, handle = await ask(session)
                    completed += 1
                    assert turn_of(answer) == completed, f"trial {trial}"
                await session.send_client_content(turns={"role": "user", "parts": [{"text": "which turn?"}]})
                server_a.process.process.send_signal(signal.SIGKILL)  # mid-session, maybe mid-turn
                server_a.process.process.wait()
        finally:
            server_a.stop()
        # on B: the turn sent just before the kill may have been saved too, though never acknowledged
        numbers, handle = await turns(server_b, monkeypatch, handle, 1)
        assert numbers[0] in {completed + 1, completed + 2}, f"trial {trial}: {numbers}"
        completed = numbers[0]
    assert completed >= 7


async def test_kill_9_of_redis_keeps_the_handles_it_acknowledged(tmp_path: Path, redis_server: RedisServer,
                                                                 server_b: LocaliveServer,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    numbers, handle = await turns(server_b, monkeypatch, None, 2)
    assert numbers == [1, 2]
    redis_server.kill()  # no shutdown: only what the AOF holds survives
    redis_server.restart()
    server_a = start(tmp_path / "a", redis_server)
    try:
        numbers, handle = await turns(server_a, monkeypatch, handle, 1)
        assert numbers == [3]
        client = sdk_client(server_b, monkeypatch)  # B's connections to Redis died with it: B reconnects
        async with client.aio.live.connect(model=MODEL, config=resuming(handle)) as session:
            answer, handle = await ask(session)
            assert turn_of(answer) == 4
            redis_server.kill()  # mid-session, between turns
            redis_server.restart()
            answer, handle = await ask(session)
            assert turn_of(answer) == 5
        numbers, _ = await turns(server_a, monkeypatch, handle, 1)
        assert numbers == [6]
    finally:
        server_a.stop()
