"""Resumable session state in Redis, so that several localive processes (or hosts) share sessions.

Same semantics as `SqliteStore`: a snapshot is found by its handle, belongs to the principal that created it, and
expires `ttl_s` after it was saved or after its session ended; a session keeps at most `KEEP_PER_SESSION` snapshots.
Layout: `PREFIX handle:H` is a hash (principal, state, session) with a key TTL; `PREFIX session:K` is a sorted set of
the session's handles by save order. Each save or expiry reset is one Lua script, atomic in Redis, and returns only
once Redis has applied it (and, with `appendonly yes`, written it to the AOF), before the handle goes to the client.
Needs a standalone Redis (or one primary): the scripts touch keys they compute, which Redis Cluster refuses.

Expiry is Redis's own: each key's TTL runs on the Redis server's clock, not on localive's `Clock`, so a virtual
clock does not expire handles here (tests of expiry in virtual time use `SqliteStore`). The store's `Clock` only
gives each save its rank in the session's order (and a later save always ranks after earlier ones, whatever the
clocks of the hosts say).
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from localive.clock import SYSTEM_CLOCK, Clock
from localive.stores.base import DEFAULT_TTL_S

_TIMEOUT_S = 5.0  # a Redis that does not answer fails the save (the session closes 1011) instead of hanging it
_RETRIES = 5  # a dropped connection (Redis restarted) is reopened, for ~2.5 s; every command here is safe to repeat

# KEYS: the snapshot hash, the session's sorted set.
# ARGV: handle, principal, state, session_key, clock, ttl_ms, keep, handle key prefix.
_SAVE = """
redis.call('HSET', KEYS[1], 'principal', ARGV[2], 'state', ARGV[3], 'session', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
local score = tonumber(ARGV[5])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if last[2] and tonumber(last[2]) >= score then score = tonumber(last[2]) + 0.001 end
redis.call('ZADD', KEYS[2], score, ARGV[1])
local old = redis.call('ZRANGE', KEYS[2], 0, -tonumber(ARGV[7]) - 1)
for _, h in ipairs(old) do redis.call('DEL', ARGV[8] .. h) end
if #old > 0 then redis.call('ZREM', KEYS[2], unpack(old)) end
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return #old
"""
# The save order above does not trust the hosts' clocks: a later save always ranks after the session's earlier ones.

# KEYS: the session's sorted set. ARGV: ttl_ms, handle key prefix. Expired snapshots stay expired.
_ENDED = """
local handles = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, h in ipairs(handles) do redis.call('PEXPIRE', ARGV[2] .. h, ARGV[1]) end
if #handles > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return #handles
"""


class RedisStoreError(Exception):
    """Redis cannot hold resumable sessions safely (unreachable, or it would lose writes on a crash)."""


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _client(url: str, retries: int = _RETRIES) -> aioredis.Redis:
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries, (RedisConnectionError,))
    return aioredis.Redis.from_url(url, decode_responses=True, socket_timeout=_TIMEOUT_S,
                                   socket_connect_timeout=_TIMEOUT_S, retry=retry)


def open_client(url: str) -> aioredis.Redis:
    """A client with this store's timeouts and reconnection (answers decoded as str), for other shared state kept
    in the same Redis (ephemeral tokens: server/redis_tokens.py). Make it in the event loop that uses it."""
    return _client(url)


async def verify_redis(url: str, *, allow_unsafe: bool = False) -> list[str]:
    """Check that Redis answers and persists every write (AOF); raise RedisStoreError with a one-line reason if
    not. Returns warnings (e.g. an eviction policy that may drop snapshots)."""
    client = _client(url, retries=1)
    try:
        persistence = await client.info("persistence")
        memory = await client.info("memory")
    except RedisError as exc:
        raise RedisStoreError(f"cannot use Redis at {redacted(url)}: {exc}") from None
    finally:
        await client.aclose()
    warnings = []
    if str(persistence.get("aof_enabled")) != "1":
        problem = (f"Redis at {redacted(url)} has appendonly no: a Redis crash would lose the handles of the last "
                   "seconds or minutes")
        if not allow_unsafe:
            raise RedisStoreError(f"{problem}; set `appendonly yes` (CONFIG SET appendonly yes, and in redis.conf) "
                                  "or pass --sessions-redis-unsafe")
        warnings.append(problem)
    policy = str(memory.get("maxmemory_policy", "noeviction"))
    if str(memory.get("maxmemory", "0")) != "0" and policy != "noeviction":
        warnings.append(f"Redis evicts keys when full (maxmemory-policy {policy}): sessions may be lost; "
                        "use noeviction")
    return warnings


class RedisStore:
    KEEP_PER_SESSION = 4  # older snapshots of one session are deleted

    def __init__(self, url: str, *, ttl_s: float = DEFAULT_TTL_S, clock: Clock = SYSTEM_CLOCK,
                 key_prefix: str = "localive:") -> None:
        self.url = url
        self.ttl_s = ttl_s
        self._clock = clock
        self._prefix = key_prefix
        self._redis: aioredis.Redis | None = None  # made on first use, in the event loop that uses it

    def _conn(self) -> aioredis.Redis:
        if self._redis is None:
            self._redis = _client(self.url)
        return self._redis

    @property
    def _ttl_ms(self) -> int:
        return max(1, round(self.ttl_s * 1000))

    def _handle_key(self, handle: str) -> str:
        return f"{self._prefix}handle:{handle}"

    def _session_key(self, session_key: str) -> str:
        return f"{self._prefix}session:{session_key}"

    async def save(self, handle: str, *, session_key: str, principal: str, state: str) -> None:
        keys = [self._handle_key(handle), self._session_key(session_key)]
        args: list[str | int] = [handle, principal, state, session_key, repr(self._clock.time()), self._ttl_ms,
                                 self.KEEP_PER_SESSION, self._handle_key("")]
        await self._eval(_SAVE, keys, args)

    async def load(self, handle: str, principal: str) -> str | None:
        saved = await self._conn().hmget(self._handle_key(handle), ["principal", "state"])
        owner, state = (str(v) if v is not None else None for v in saved)
        if owner is None or state is None:
            return None  # unknown or expired
        if not hmac.compare_digest(owner.encode(), principal.encode()):
            return None
        return state

    async def session_ended(self, session_key: str) -> None:
        await self._eval(_ENDED, [self._session_key(session_key)], [self._ttl_ms, self._handle_key("")])

    async def ping(self) -> None:
        await self._conn().ping()

    async def _eval(self, script: str, keys: list[str], args: list[str | int]) -> None:
        await self._conn().eval(script, len(keys), *keys, *args)

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
