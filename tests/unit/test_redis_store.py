"""RedisStore against a real redis-server (AOF, fsync always): same semantics as SqliteStore, plus the startup
check that refuses a Redis which would lose writes on a crash. redis-server missing fails these tests."""

from __future__ import annotations

import asyncio
import hmac
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from localive.clock import VirtualClock
from localive.stores.base import new_handle
from localive.stores.redis import RedisStore, RedisStoreError, redacted, verify_redis
from tests.support.redis_server import RedisServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    running = RedisServer.start(tmp_path_factory.mktemp("redis"))
    yield running
    running.stop()


@pytest.fixture()
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}:"  # each test its own keys in the shared server


@pytest.fixture()
async def store(server: RedisServer, prefix: str) -> AsyncIterator[RedisStore]:
    opened = RedisStore(server.url, ttl_s=100, key_prefix=prefix)
    yield opened
    await opened.aclose()


def raw(server: RedisServer) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, decode_responses=True)


async def test_save_then_load_only_by_its_principal(store: RedisStore) -> None:
    handle = new_handle()
    await store.save(handle, session_key="s1", principal="key-a", state='{"x": 1}')
    assert await store.load(handle, "key-a") == '{"x": 1}'
    assert await store.load(handle, "key-b") is None
    assert await store.load(handle, "key-") is None
    assert await store.load(new_handle(), "key-a") is None


async def test_the_principal_is_compared_in_constant_time(store: RedisStore,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []

    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr("localive.stores.redis.hmac.compare_digest", spy)
    handle = new_handle()
    await store.save(handle, session_key="s1", principal="key-a", state="{}")
    assert await store.load(handle, "key-b") is None
    assert compared == [(b"key-a", b"key-b")]


async def test_snapshots_expire_by_redis_ttl(server: RedisServer, prefix: str) -> None:
    store = RedisStore(server.url, ttl_s=0.3, key_prefix=prefix)
    try:
        handle = new_handle()
        await store.save(handle, session_key="s1", principal="p", state="{}")
        with raw(server) as client:
            assert 0 < client.pttl(f"{prefix}handle:{handle}") <= 300
            assert 0 < client.pttl(f"{prefix}session:s1") <= 300
        assert await store.load(handle, "p") == "{}"
        # Redis's own TTL, on its own clock (a virtual clock cannot move it): poll until it has run out
        deadline = asyncio.get_running_loop().time() + 10
        while await store.load(handle, "p") is not None:
            assert asyncio.get_running_loop().time() < deadline, "the snapshot never expired"
            await asyncio.sleep(0.05)
    finally:
        await store.aclose()


async def test_a_session_keeps_its_four_newest_snapshots(server: RedisServer, store: RedisStore,
                                                        prefix: str) -> None:
    handles = [new_handle() for _ in range(7)]
    other = new_handle()
    await store.save(other, session_key="s2", principal="p", state="other")
    for i, handle in enumerate(handles):
        await store.save(handle, session_key="s1", principal="p", state=str(i))
    assert [await store.load(h, "p") for h in handles] == [None, None, None, "3", "4", "5", "6"]
    assert await store.load(other, "p") == "other"
    with raw(server) as client:
        assert client.zrange(f"{prefix}session:s1", 0, -1) == handles[3:]
        assert not any(client.exists(f"{prefix}handle:{h}") for h in handles[:3])


async def test_save_order_does_not_trust_the_clock(server: RedisServer, prefix: str) -> None:
    """Two hosts with skewed clocks: the later save still counts as the newest."""
    times = iter([1000.0, 1000.0, 990.0, 500.0, 400.0, 400.0])

    class Skewed(VirtualClock):
        def time(self) -> float:
            return next(times)

    store = RedisStore(server.url, ttl_s=100, key_prefix=prefix, clock=Skewed())
    try:
        handles = [new_handle() for _ in range(6)]
        for i, handle in enumerate(handles):
            await store.save(handle, session_key="s1", principal="p", state=str(i))
        assert [await store.load(h, "p") for h in handles] == [None, None, "2", "3", "4", "5"]
    finally:
        await store.aclose()


async def test_session_ended_restarts_the_expiry_of_live_snapshots_only(server: RedisServer, store: RedisStore,
                                                                       prefix: str) -> None:
    kept, gone = new_handle(), new_handle()
    await store.save(gone, session_key="s1", principal="p", state="old")
    await store.save(kept, session_key="s1", principal="p", state="new")
    await store.save(new_handle(), session_key="s2", principal="p", state="other session")
    with raw(server) as client:
        client.pexpire(f"{prefix}handle:{kept}", 1000)  # as if most of its ttl had passed
        client.delete(f"{prefix}handle:{gone}")  # as if it had expired
        await store.session_ended("s1")
        assert client.pttl(f"{prefix}handle:{kept}") > 99_000
        assert client.pttl(f"{prefix}session:s1") > 99_000
        assert not client.exists(f"{prefix}handle:{gone}")  # an expired handle stays expired
    assert await store.load(kept, "p") == "new"
    await store.session_ended("never-saved")  # harmless


async def test_an_acknowledged_save_survives_kill_9_of_redis(tmp_path: Path) -> None:
    own = RedisServer.start(tmp_path / "redis")
    store = RedisStore(own.url, ttl_s=100)
    try:
        handle = new_handle()
        await store.save(handle, session_key="s1", principal="p", state="durable")
        own.kill()
        own.restart()
        assert await store.load(handle, "p") == "durable"  # the client reconnects by itself
    finally:
        await store.aclose()
        own.stop()


async def test_startup_check_accepts_aof_and_refuses_appendonly_no(server: RedisServer, tmp_path: Path) -> None:
    assert await verify_redis(server.url) == []
    unsafe = RedisServer.start(tmp_path / "no-aof", appendonly=False)
    try:
        with pytest.raises(RedisStoreError, match="appendonly no") as refused:
            await verify_redis(unsafe.url)
        assert "\n" not in str(refused.value)
        warnings = await verify_redis(unsafe.url, allow_unsafe=True)
        assert len(warnings) == 1 and "appendonly no" in warnings[0]
        with redis.Redis(host="127.0.0.1", port=server.port) as client:
            client.config_set("maxmemory", "100mb")
            client.config_set("maxmemory-policy", "allkeys-lru")
            try:
                assert "maxmemory-policy allkeys-lru" in (await verify_redis(server.url))[0]
            finally:
                client.config_set("maxmemory", "0")
                client.config_set("maxmemory-policy", "noeviction")
    finally:
        unsafe.stop()
    with pytest.raises(RedisStoreError, match=re.escape("cannot use Redis at redis://127.0.0.1:1/0")):
        await verify_redis("redis://127.0.0.1:1/0")


def test_serve_refuses_a_redis_without_aof_before_loading_models(tmp_path: Path) -> None:
    unsafe = RedisServer.start(tmp_path / "no-aof", appendonly=False)
    try:
        run = subprocess.run([sys.executable, "-m", "localive", "serve", "--llm", "emulator", "--voice", "off",
                              "--data-dir", str(tmp_path / "data"), "--sessions-redis", unsafe.url],
                             capture_output=True, text=True, timeout=60)
    finally:
        unsafe.stop()
    assert run.returncode == 2
    assert "appendonly no" in run.stderr and "--sessions-redis-unsafe" in run.stderr
    assert "loading models" not in run.stderr


def test_urls_in_messages_hide_the_password() -> None:
    assert redacted("redis://user:s3cret@db.example:6380/1") == "redis://user:***@db.example:6380/1"
    assert redacted("redis://:s3cret@db.example/0") == "redis://:***@db.example/0"
    assert redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
