"""Two `localive serve` processes sharing Redis (AOF) behind nginx running deploy/nginx.conf, through the official
Python SDK: sessions land on both; SIGTERM to one mid-conversation sends its clients `goAway`, they resume with
their handles through nginx on the other process and go on with nothing lost; the same after a `kill -9`."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from google import genai

from localive.testing.server import LocaliveServer, start_server
from tests.support.nginx import Nginx
from tests.support.redis_server import RedisServer
from tests.support.turns import resuming, turn_of

MODEL = "gemini-2.0-flash-live-001"
SCRIPT = str(Path(__file__).parent.parent / "data" / "emulator_script.toml")
DRAIN_S = 4
CALLERS = 4


@dataclass
class Cluster:
    redis: RedisServer
    servers: list[LocaliveServer]
    nginx: Nginx

    def stop(self) -> None:
        self.nginx.stop()
        for server in self.servers:
            server.stop()
        self.redis.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    redis = RedisServer.start(tmp_path / "redis")
    servers: list[LocaliveServer] = []
    try:
        for name in ("a", "b"):
            servers.append(start_server(tmp_path / name, "--llm", "emulator", "--emulator-script", SCRIPT,
                                        "--voice", "off", "--sessions-redis", redis.url,
                                        "--drain-s", str(DRAIN_S)))
        # nginx terminates TLS with a certificate of the first process's local CA, which the clients trust
        nginx = Nginx.start(tmp_path / "nginx", (servers[0].plain_port, servers[1].plain_port),
                            servers[0].data_dir / "tls")
    except BaseException:
        for server in servers:
            server.stop()
        redis.stop()
        raise
    running = Cluster(redis, servers, nginx)
    yield running
    running.stop()


def client_through(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> genai.Client:
    """An app pointed at the load balancer, trusting its certificate (`localive env`'s bundle of the first
    process)."""
    for name, value in cluster.servers[0].client_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", cluster.nginx.base_url)
    monkeypatch.setenv("GEMINI_API_KEY", "an-app-key")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    return genai.Client()


def active_sessions(server: LocaliveServer) -> int:
    with urllib.request.urlopen(f"{server.plain_base_url}/healthz", timeout=5) as response:
        return int(json.loads(response.read())["activeSessions"])


def readiness(server: LocaliveServer) -> int:
    try:
        with urllib.request.urlopen(f"{server.plain_base_url}/readyz", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as refused:
        return refused.code


@dataclass
class Caller:
    """One app user's conversation, following the seed's pattern: keep the newest handle; on `goAway` (or a
    dropped connection) reconnect with it and go on."""

    client: genai.Client
    handle: str | None = None
    turns: list[int] = field(default_factory=list)
    went_away: bool = False  # got a goAway
    reconnects: int = 0
    session: genai.live.AsyncSession | None = None
    _context: object = None

    async def connect(self) -> None:
        self._context = self.client.aio.live.connect(model=MODEL, config=resuming(self.handle))
        self.session = await self._context.__aenter__()  # type: ignore[attr-defined]

    async def disconnect(self) -> None:
        if self._context is not None:
            context, self._context, self.session = self._context, None, None
            try:
                await context.__aexit__(None, None, None)  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001 - the connection may be gone already
                pass

    async def ask(self) -> None:
        """One turn; reconnects first if the server said goAway, or if the connection broke (then the turn is
        asked again on the new connection: an unanswered turn was never completed)."""
        for _ in range(4):
            if self.session is None:
                self.reconnects += 1
                await self.connect()
            assert self.session is not None
            try:
                answer, away = await self._turn(self.session)
            except Exception:  # noqa: BLE001 - closed (1001 at the drain's end, or the process died)
                await self.disconnect()
                continue
            self.turns.append(turn_of(answer))
            if away:
                self.went_away = True
                await self.disconnect()  # resume on another connection now, with the newest handle
            return
        raise AssertionError(f"no answer after 4 connections: {self.turns}")

    async def _turn(self, session: genai.live.AsyncSession) -> tuple[str, bool]:
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "which turn is this?"}]})
        answer, away = "", False
        async for message in session.receive():
            answer += message.text or ""
            away = away or message.go_away is not None
            update = message.session_resumption_update
            if update and update.resumable and update.new_handle:
                self.handle = update.new_handle
        return answer, away


async def conversations(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> list[Caller]:
    """CALLERS sessions opened at once through nginx, two turns each; they land on both processes."""
    client = client_through(cluster, monkeypatch)
    callers = [Caller(client) for _ in range(CALLERS)]
    await asyncio.gather(*(c.connect() for c in callers))
    for _ in range(2):
        await asyncio.gather(*(c.ask() for c in callers))
    assert all(c.turns == [1, 2] for c in callers)
    on = [active_sessions(server) for server in cluster.servers]
    assert sum(on) == CALLERS and all(on), f"sessions per process: {on}"
    return callers


async def test_sigterm_drains_one_process_and_its_sessions_go_on_on_the_other(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    callers = await conversations(cluster, monkeypatch)
    draining, other = cluster.servers
    on_draining = active_sessions(draining)
    draining.process.process.send_signal(signal.SIGTERM)  # what an orchestrator does first
    for _ in range(100):
        if readiness(draining) == 503:
            break
        await asyncio.sleep(0.05)
    assert readiness(draining) == 503 and readiness(other) == 200
    for _ in range(2):  # each caller goes on; those on the draining process hear goAway and move
        await asyncio.gather(*(c.ask() for c in callers))
    assert all(c.turns == [1, 2, 3, 4] for c in callers), [c.turns for c in callers]  # nothing lost, no repeat
    assert sum(c.went_away for c in callers) == on_draining
    assert active_sessions(other) == CALLERS  # all of them on the process that stays
    status = await asyncio.to_thread(draining.process.process.wait, DRAIN_S + 15)
    assert status == 0
    log = draining.log()
    assert "draining the open sessions" in log
    assert "Traceback" not in log
    for caller in callers:
        await caller.disconnect()


async def test_kill_9_of_one_process_and_its_sessions_go_on_on_the_other(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    callers = await conversations(cluster, monkeypatch)
    killed, other = cluster.servers
    on_killed = active_sessions(killed)
    killed.process.process.send_signal(signal.SIGKILL)
    killed.process.process.wait()
    for _ in range(2):
        await asyncio.gather(*(c.ask() for c in callers))
    assert all(c.turns == [1, 2, 3, 4] for c in callers), [c.turns for c in callers]
    assert sum(c.reconnects > 0 for c in callers) == on_killed
    assert active_sessions(other) == CALLERS
    for caller in callers:
        await caller.disconnect()
    access = cluster.nginx.access_log()
    assert "/ws/" in access and "?" not in access  # no query string (the JS SDK's ?key=) reaches the log
