"""RedisTokenStore against a real redis-server: the same semantics as MemoryTokenStore (the shared tests run on both),
one use per new session across processes, and a layout that never holds a token's name and cleans itself up.
redis-server missing fails these tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from localive.clock import VirtualClock
from localive.protocol import messages as wire
from localive.server import auth
from localive.server.auth import (
    INVALID_KEY,
    KEPT_AFTER_EXPIRY_S,
    NO_NEW_SESSIONS,
    TOKEN_EXPIRED,
    Access,
    MemoryTokenStore,
    Quota,
    Token,
    TokenStore,
    TokenStoreFull,
    TokenStoreUnavailable,
    TokenUsedUp,
    Unauthenticated,
    new_token_name,
)
from localive.server.redis_tokens import RedisTokenStore
from localive.testing.server import free_port
from tests.support.redis_server import RedisServer

NOW = 1_000_000.0
EPS = 2.0**-10  # exact in binary: moments on either side of a deadline stay exact
SETUP = {"model": "models/locked", "systemInstruction": {"parts": [{"text": "Museum guide. É ✓"}]}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    running = RedisServer.start(tmp_path_factory.mktemp("redis"))
    yield running
    running.stop()


@pytest.fixture()
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}:"  # each test its own keys in the shared server


@pytest.fixture()
async def shared(server: RedisServer, prefix: str) -> AsyncIterator[RedisTokenStore]:
    opened = RedisTokenStore(server.url, key_prefix=prefix, max_tokens=5, max_setup_bytes=1000)
    yield opened
    await opened.aclose()


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> TokenStore:
    """Either store, with the same small caps: 5 live tokens, 1000 bytes of locked setups."""
    if request.param == "memory":
        return MemoryTokenStore(max_tokens=5, max_setup_bytes=1000)
    shared: RedisTokenStore = request.getfixturevalue("shared")
    return shared


def raw(server: RedisServer) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, decode_responses=True)


def token(uses: int = 1, *, expire_in: float = 600, new_sessions_for: float = 60, minter: str = "",
          setup: dict[str, object] | None = None, mask: tuple[str, ...] | None = None) -> Token:
    return Token(NOW + expire_in, NOW + new_sessions_for, uses, "p-key", setup, mask, minter=minter)


# --- the semantics of both stores ----------------------------------------------------------------------------

async def test_a_token_comes_back_as_it_was_minted(store: TokenStore) -> None:
    name = new_token_name()
    minted = token(3, setup=SETUP, mask=("model", "systemInstruction"), minter="p-key@127.0.0.1")
    await store.add(name, minted, NOW)
    got = await store.get(name)
    assert got is not None
    assert (got.expire_at, got.new_session_until, got.uses, got.used) == (NOW + 600, NOW + 60, 3, 0)
    assert (got.principal, got.minter, got.field_mask) == ("p-key", "p-key@127.0.0.1", ("model", "systemInstruction"))
    assert got.locked_setup == SETUP and got.setup_json == minted.setup_json
    assert await store.get(new_token_name()) is None
    plain = new_token_name()
    await store.add(plain, token(), NOW)
    got = await store.get(plain)
    assert got is not None and got.minter == "p-key" and not got.locks_anything


async def test_new_sessions_take_uses_and_resumptions_none(store: TokenStore) -> None:
    two, unlimited = new_token_name(), new_token_name()
    await store.add(two, token(2), NOW)
    await store.add(unlimited, token(0), NOW)
    assert (await store.redeem(two, NOW, new_session=True)).used == 1
    assert (await store.redeem(two, NOW, new_session=False)).used == 1
    assert (await store.redeem(two, NOW, new_session=True)).used == 2
    with pytest.raises(TokenUsedUp):
        await store.redeem(two, NOW, new_session=True)
    assert (await store.redeem(two, NOW + 1, new_session=False)).used == 2  # resuming needs no use
    for _ in range(20):
        await store.redeem(unlimited, NOW, new_session=True)
    got = await store.get(unlimited)
    assert got is not None and got.used == 20


async def test_times_hold_to_the_millisecond(store: TokenStore) -> None:
    name = new_token_name()
    await store.add(name, token(0, expire_in=600, new_sessions_for=60), NOW)
    await store.redeem(name, NOW + 60 - EPS, new_session=True)
    with pytest.raises(Unauthenticated) as late:
        await store.redeem(name, NOW + 60, new_session=True)
    assert late.value.reason == NO_NEW_SESSIONS
    await store.redeem(name, NOW + 600 - EPS, new_session=False)
    for new_session in (True, False):
        with pytest.raises(Unauthenticated) as expired:
            await store.redeem(name, NOW + 600, new_session=new_session)
        assert expired.value.reason == TOKEN_EXPIRED


async def test_used_up_is_said_before_the_new_session_window(store: TokenStore) -> None:
    name = new_token_name()
    await store.add(name, token(1), NOW)
    await store.redeem(name, NOW, new_session=True)
    with pytest.raises(TokenUsedUp):
        await store.redeem(name, NOW + 61, new_session=True)  # as MemoryTokenStore: uses first


async def test_an_unknown_token_is_an_invalid_key(store: TokenStore) -> None:
    with pytest.raises(Unauthenticated) as unknown:
        await store.redeem(new_token_name(), NOW, new_session=False)
    assert unknown.value.reason == INVALID_KEY


async def test_quotas_per_minter_and_in_total(store: TokenStore) -> None:
    quota = Quota(tokens=3, setup_bytes=10_000)
    for _ in range(3):
        await store.add(new_token_name(), token(minter="greedy"), NOW, quota)
    with pytest.raises(TokenStoreFull):
        await store.add(new_token_name(), token(minter="greedy"), NOW, quota)
    await store.add(new_token_name(), token(minter="other"), NOW, quota)
    await store.add(new_token_name(), token(minter="third"), NOW, quota)
    with pytest.raises(TokenStoreFull):  # 5 live tokens in all
        await store.add(new_token_name(), token(minter="fourth"), NOW, quota)


async def test_locked_setups_are_bounded_in_bytes(store: TokenStore) -> None:
    big = {"systemInstruction": {"parts": [{"text": "x" * 280}]}}
    size = token(setup=big).setup_bytes
    assert 3 * size <= 1000 < 4 * size
    mine = Quota(tokens=100, setup_bytes=2 * size)
    await store.add(new_token_name(), token(setup=big, minter="a"), NOW, mine)
    await store.add(new_token_name(), token(setup=big, minter="a"), NOW, mine)
    with pytest.raises(TokenStoreFull):  # the minter's bytes
        await store.add(new_token_name(), token(setup=big, minter="a"), NOW, mine)
    await store.add(new_token_name(), token(minter="a"), NOW, mine)  # no setup: no bytes
    await store.add(new_token_name(), token(setup=big, minter="b"), NOW, mine)  # 3 × ~320 bytes of 1000
    with pytest.raises(TokenStoreFull):  # everyone's bytes
        await store.add(new_token_name(), token(setup=big, minter="c"), NOW, mine)


async def test_expired_tokens_count_for_nothing_but_still_say_expired(store: TokenStore) -> None:
    quota = Quota(tokens=2, setup_bytes=10_000)
    first, second = new_token_name(), new_token_name()
    await store.add(first, token(expire_in=10, new_sessions_for=10, setup=SETUP), NOW, quota)
    await store.add(second, token(expire_in=10, new_sessions_for=10), NOW, quota)
    with pytest.raises(TokenStoreFull):
        await store.add(new_token_name(), token(), NOW, quota)
    await store.add(new_token_name(), token(expire_in=30), NOW + 10, quota)  # both expired at NOW + 10: room
    with pytest.raises(Unauthenticated) as expired:
        await store.redeem(first, NOW + 12, new_session=True)
    assert expired.value.reason == TOKEN_EXPIRED
    remembered = await store.get(first)
    assert remembered is not None and remembered.setup_json is None, "an expired token keeps no setup"
    later = NOW + 10 + KEPT_AFTER_EXPIRY_S
    await store.add(new_token_name(), token(expire_in=KEPT_AFTER_EXPIRY_S + 60), later, quota)
    assert await store.get(first) is None, "forgotten an hour after it expired"
    with pytest.raises(Unauthenticated) as unknown:
        await store.redeem(first, later, new_session=False)
    assert unknown.value.reason == INVALID_KEY


async def test_a_token_of_another_process_in_virtual_time(store: TokenStore) -> None:
    """Two servers' access policies on one store (on Redis: as two processes would share it), on one clock."""
    clock = VirtualClock(NOW)
    minting, serving = Access(tokens=store, clock=clock), Access(tokens=store, clock=clock)
    name = new_token_name()
    await minting.tokens.add(name, token(1, expire_in=120), clock.time())
    credential = await serving.authenticate(name, constrained=True)
    assert credential.principal == auth.token_principal(name) and credential.gate is not None
    setup = wire.Setup.model_validate({"model": "models/m"})
    await credential.gate(setup)
    again = await minting.authenticate(name, constrained=True)
    assert again.gate is not None
    with pytest.raises(TokenUsedUp):
        await again.gate(setup)
    clock.now += 120
    with pytest.raises(Unauthenticated, match="expired"):
        await minting.authenticate(name, constrained=True)


# --- Redis only ------------------------------------------------------------------------------------------------

async def test_concurrent_new_sessions_on_two_processes_take_one_use(server: RedisServer, prefix: str) -> None:
    processes = [RedisTokenStore(server.url, key_prefix=prefix) for _ in range(2)]  # two connection pools
    try:
        name = new_token_name()
        await processes[0].add(name, token(1), NOW)
        attempts = [processes[i % 2].redeem(name, NOW, new_session=True) for i in range(100)]
        results = await asyncio.gather(*attempts, return_exceptions=True)
        assert sum(isinstance(r, Token) for r in results) == 1
        assert sum(isinstance(r, TokenUsedUp) for r in results) == 99
        three = new_token_name()
        await processes[1].add(three, token(3), NOW)
        results = await asyncio.gather(*(processes[i % 2].redeem(three, NOW, new_session=True) for i in range(30)),
                                       return_exceptions=True)
        assert sorted(r.used for r in results if isinstance(r, Token)) == [1, 2, 3]
        got = await processes[0].get(three)
        assert got is not None and got.used == 3
    finally:
        for opened in processes:
            await opened.aclose()


async def test_concurrent_minting_keeps_the_quota(server: RedisServer, prefix: str) -> None:
    processes = [RedisTokenStore(server.url, key_prefix=prefix) for _ in range(2)]
    try:
        quota = Quota(tokens=7, setup_bytes=10_000)
        results = await asyncio.gather(*(processes[i % 2].add(new_token_name(), token(), NOW, quota)
                                         for i in range(40)), return_exceptions=True)
        assert sum(r is None for r in results) == 7
        assert sum(isinstance(r, TokenStoreFull) for r in results) == 33
    finally:
        for opened in processes:
            await opened.aclose()


async def test_redis_holds_digests_not_names_and_every_key_expires(server: RedisServer, prefix: str,
                                                                   shared: RedisTokenStore) -> None:
    name = new_token_name()
    await shared.add(name, token(expire_in=600, setup=SETUP, minter="p-key@192.0.2.1"), NOW)
    secret = name.removeprefix(auth.TOKEN_PREFIX)
    with raw(server) as client:
        keys = sorted(client.keys(f"{prefix}*"))
        assert keys == sorted([shared.token_key(name), *(f"{prefix}tokens:{k}" for k in ("live", "minters", "bytes"))])
        dump = repr([client.hgetall(k) if client.type(k) == "hash" else client.zrange(k, 0, -1) for k in keys])
        dump += repr(keys)
        assert secret not in dump
        kept_ms = (600 + KEPT_AFTER_EXPIRY_S) * 1000
        for key in keys:
            assert kept_ms - 60_000 < client.pttl(key) <= kept_ms, key
        assert client.hget(shared.token_key(name), "setup") == token(setup=SETUP).setup_json


async def test_expired_tokens_remembered_are_capped(server: RedisServer, prefix: str) -> None:
    store = RedisTokenStore(server.url, key_prefix=prefix, max_expired_remembered=2)
    try:
        names = [new_token_name() for _ in range(3)]
        for i, name in enumerate(names):
            await store.add(name, token(expire_in=10 + i), NOW)
        await store.add(new_token_name(), token(expire_in=600), NOW + 20)  # all three expire: the oldest forgotten
        assert [await store.get(name) is not None for name in names] == [False, True, True]
        with raw(server) as client:
            assert client.zcard(f"{prefix}tokens:expired") == 2 and client.zcard(f"{prefix}tokens:live") == 1
            assert client.hgetall(f"{prefix}tokens:minters") == {next(iter(client.hkeys(f"{prefix}tokens:minters"))):
                                                                "1"}
    finally:
        await store.aclose()


async def test_a_repeated_mint_counts_once(shared: RedisTokenStore, server: RedisServer, prefix: str) -> None:
    """A mint retried after a dropped connection must not count the token twice against its minter."""
    name, quota = new_token_name(), Quota(tokens=1, setup_bytes=0)
    await shared.add(name, token(), NOW, quota)
    await shared.add(name, token(), NOW, quota)
    with raw(server) as client:
        assert list(client.hvals(f"{prefix}tokens:minters")) == ["1"]


async def test_an_unreachable_redis_is_unavailable_not_a_refusal() -> None:
    """After the reconnection attempts (~2.5 s each): neither accepted nor refused as a bad key."""
    store = RedisTokenStore(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(TokenStoreUnavailable) as down:
            await store.redeem(new_token_name(), NOW, new_session=True)
        assert down.value.close_code == 1011
        with pytest.raises(TokenStoreUnavailable):  # (add is a script too, as redeem: the same path)
            await store.get(new_token_name())
    finally:
        await store.aclose()
