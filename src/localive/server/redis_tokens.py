"""Ephemeral tokens in Redis, so that a token minted on one localive process works on every process sharing that
Redis (``localive serve --sessions-redis URL``; docs/access.md).

The same semantics as `MemoryTokenStore`: live tokens counted per minter and in total (count and bytes of locked
setups), a new session takes one use atomically, nothing is accepted at or after ``expireTime`` nor a new session at
or after ``newSessionExpireTime``, and an expired token is remembered (without its setup) for KEPT_AFTER_EXPIRY_S so
that using it says "expired". Times are the callers' (`now`, the server's `Clock`), compared in the scripts, so
virtual time works here too; only the clean-up TTLs run on Redis's own clock.

Layout, under the sessions' prefix (``localive:``), never with a token's name (a bearer secret), only its SHA-256:

- ``token:D`` — a hash: ``expire_at``, ``new_session_until``, ``uses``, ``used`` (numbers the scripts compare and
  count), ``data`` (JSON: principal, minter, fieldMask) and ``setup`` (the locked setup's compact JSON; dropped
  when the token expires). Its TTL ends KEPT_AFTER_EXPIRY_S after ``expire_at``.
- ``tokens:live`` — a sorted set of the live tokens by ``expire_at``; a member is ``"D BYTES M"`` (the digest, its
  setup's bytes, the minter's id: 32 hex characters of a SHA-256 of the minter).
- ``tokens:minters`` — a hash: minter id → live tokens; ``tokens:bytes`` — minter id → their setups' bytes, and
  ``*`` → all minters' bytes.
- ``tokens:expired`` — a sorted set of the expired tokens still remembered, by ``expire_at`` (its size is capped
  at MAX_EXPIRED_REMEMBERED, oldest forgotten first).

The four index keys have a TTL at least as long as any token they name, so an idle Redis ends up empty.

Atomicity: minting (purge the expired, check the quotas, store) and redeeming (check the times, check and count a
use) are each one Lua script, which Redis runs with nothing else in between: 100 simultaneous sessions of a
``uses: 1`` token on any number of processes give exactly one session. A dropped connection is retried
(stores/redis.py): a repeated mint is a no-op, and a repeated redemption may spend one more use but never admits
one more session. Needs a standalone Redis (or one primary): the scripts touch keys they compute, which Redis Cluster
refuses. A Redis that does not answer raises TokenStoreUnavailable (the connection closes 1011, minting answers 503).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from localive.server.auth import (
    KEPT_AFTER_EXPIRY_S,
    KEY_QUOTA,
    MAX_EXPIRED_REMEMBERED,
    MAX_SETUP_BYTES_TOTAL,
    MAX_TOKENS,
    NO_NEW_SESSIONS,
    TOKEN_EXPIRED,
    Quota,
    Token,
    TokenStoreFull,
    TokenStoreUnavailable,
    TokenUsedUp,
    Unauthenticated,
)
from localive.stores.redis import open_client, redacted

log = logging.getLogger("localive.access")

# KEYS: tokens:live, tokens:minters, tokens:bytes, tokens:expired.
# ARGV (from 1): now, token key prefix, kept_after_expiry_s, max_expired_remembered, kept_after_expiry_ms.
_PURGE = """
local function extend(key, ms)
  local left = redis.call('PTTL', key)
  if left == -1 or (left >= 0 and left < tonumber(ms)) then redis.call('PEXPIRE', key, ms) end
end
local function forget(prefix, digests)
  for _, d in ipairs(digests) do redis.call('DEL', prefix .. d) end
end
local function purge(live, minters, bytes, expired, now, prefix, kept_s, max_expired, kept_ms)
  local gone = redis.call('ZRANGEBYSCORE', live, '-inf', now, 'WITHSCORES')
  for i = 1, #gone, 2 do
    local digest, size, minter = string.match(gone[i], '^(%x+) (%d+) (%x+)$')
    size = tonumber(size)
    if redis.call('HINCRBY', minters, minter, -1) <= 0 then redis.call('HDEL', minters, minter) end
    if size > 0 then  -- (Lua would write -0, which HINCRBY refuses)
      if redis.call('HINCRBY', bytes, minter, -size) <= 0 then redis.call('HDEL', bytes, minter) end
      if redis.call('HINCRBY', bytes, '*', -size) <= 0 then redis.call('HDEL', bytes, '*') end
    end
    redis.call('HDEL', prefix .. digest, 'setup')
    redis.call('ZADD', expired, gone[i + 1], digest)
  end
  if #gone > 0 then
    redis.call('ZREMRANGEBYSCORE', live, '-inf', now)
    extend(expired, kept_ms)
  end
  local old = redis.call('ZRANGEBYSCORE', expired, '-inf', tonumber(now) - tonumber(kept_s))
  forget(prefix, old)
  if #old > 0 then redis.call('ZREM', expired, unpack(old)) end
  local over = redis.call('ZCARD', expired) - tonumber(max_expired)
  if over > 0 then
    local popped = redis.call('ZPOPMIN', expired, over)
    for i = 1, #popped, 2 do redis.call('DEL', prefix .. popped[i]) end
  end
end
"""

# KEYS: the token's hash, then _PURGE's four.
# ARGV: _PURGE's five, then expire_at, new_session_until, uses, data, setup, has_setup, size, minter id, member,
# quota tokens, quota bytes, max tokens, max bytes, ttl_ms. Returns 1: kept (or kept already), 0: full.
_ADD = _PURGE + """
purge(KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
local size = tonumber(ARGV[12])
local minter = ARGV[13]
local mine = tonumber(redis.call('HGET', KEYS[3], minter) or '0')
local mine_bytes = tonumber(redis.call('HGET', KEYS[4], minter) or '0')
if mine >= tonumber(ARGV[15]) or mine_bytes + size > tonumber(ARGV[16]) then return 0 end
local all_bytes = tonumber(redis.call('HGET', KEYS[4], '*') or '0')
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[17]) or all_bytes + size > tonumber(ARGV[18]) then return 0 end
redis.call('HSET', KEYS[1], 'expire_at', ARGV[6], 'new_session_until', ARGV[7], 'uses', ARGV[8], 'used', 0,
           'data', ARGV[9])
if ARGV[11] == '1' then redis.call('HSET', KEYS[1], 'setup', ARGV[10]) end
redis.call('PEXPIRE', KEYS[1], ARGV[19])
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[14])
redis.call('HINCRBY', KEYS[3], minter, 1)
if size > 0 then
  redis.call('HINCRBY', KEYS[4], minter, size)
  redis.call('HINCRBY', KEYS[4], '*', size)
end
for i = 2, 4 do extend(KEYS[i], ARGV[19]) end
return 1
"""

# KEYS: the token's hash. ARGV: now, 1 for a new session (0: resuming).
# Returns {status} or {'ok', field, value, …} (the token after the redemption).
_REDEEM = """
local t = redis.call('HMGET', KEYS[1], 'expire_at', 'new_session_until', 'uses', 'used')
if not t[1] then return {'unknown'} end
local now = tonumber(ARGV[1])
if now >= tonumber(t[1]) then return {'expired'} end
if ARGV[2] == '1' then
  if tonumber(t[3]) > 0 and tonumber(t[4]) >= tonumber(t[3]) then return {'used-up'} end
  if now >= tonumber(t[2]) then return {'no-new-sessions'} end
  redis.call('HINCRBY', KEYS[1], 'used', 1)
end
local answer = redis.call('HGETALL', KEYS[1])
table.insert(answer, 1, 'ok')
return answer
"""

def _refusal(status: str) -> Exception:
    if status == "used-up":
        return TokenUsedUp()
    return Unauthenticated({"expired": TOKEN_EXPIRED, "no-new-sessions": NO_NEW_SESSIONS}.get(status))


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()


def _minter_id(minter: str) -> str:
    return hashlib.sha256(b"localive minter\0" + minter.encode("utf-8")).hexdigest()[:32]


def _repr(seconds: float) -> str:
    return repr(float(seconds))  # the shortest exact decimal: Redis and Lua read back the same double


def _token(fields: dict[str, str]) -> Token:
    data = json.loads(fields["data"])
    mask = data.get("fieldMask")
    token = Token(float(fields["expire_at"]), float(fields["new_session_until"]), int(fields["uses"]),
                  str(data["principal"]), field_mask=None if mask is None else tuple(mask),
                  used=int(fields["used"]), minter=str(data["minter"]))
    token.setup_json = fields.get("setup")  # kept as minted (compact JSON), not parsed and dumped again
    return token


class RedisTokenStore:
    """A `TokenStore` in Redis (see the module's doc). Each call is one round trip; cancelling one is safe (a script
    runs whole or not at all, but a cancelled redemption may have spent its use)."""

    def __init__(self, url: str, *, key_prefix: str = "localive:", max_tokens: int = MAX_TOKENS,
                 max_setup_bytes: int = MAX_SETUP_BYTES_TOTAL,
                 max_expired_remembered: int = MAX_EXPIRED_REMEMBERED) -> None:
        self.url = url
        self._prefix = key_prefix
        self._max = max_tokens
        self._max_setup_bytes = max_setup_bytes
        self._max_expired = max_expired_remembered
        self._redis: aioredis.Redis | None = None  # made on first use, in the event loop that uses it

    def _conn(self) -> aioredis.Redis:
        if self._redis is None:
            self._redis = open_client(self.url)
        return self._redis

    def token_key(self, name: str) -> str:
        """The key of a token's hash (its name's SHA-256, never the name)."""
        return f"{self._prefix}token:{_digest(name)}"

    @property
    def _index_keys(self) -> list[str]:
        return [f"{self._prefix}tokens:{part}" for part in ("live", "minters", "bytes", "expired")]

    async def add(self, name: str, token: Token, now: float, quota: Quota = KEY_QUOTA) -> None:
        size = token.setup_bytes
        data = json.dumps({"principal": token.principal, "minter": token.minter,
                           "fieldMask": None if token.field_mask is None else list(token.field_mask)},
                          separators=(",", ":"), ensure_ascii=False)
        minter = _minter_id(token.minter)
        ttl_ms = max(1, round((token.expire_at + KEPT_AFTER_EXPIRY_S - now) * 1000))
        args: list[str | int] = [
            _repr(now), f"{self._prefix}token:", _repr(KEPT_AFTER_EXPIRY_S), self._max_expired,
            round(KEPT_AFTER_EXPIRY_S * 1000),
            _repr(token.expire_at), _repr(token.new_session_until), token.uses, data, token.setup_json or "",
            0 if token.setup_json is None else 1, size, minter, f"{_digest(name)} {size} {minter}",
            quota.tokens, quota.setup_bytes, self._max, self._max_setup_bytes, ttl_ms]
        kept = await self._eval(_ADD, [self.token_key(name), *self._index_keys], args)
        if not kept:
            raise TokenStoreFull

    async def get(self, name: str) -> Token | None:
        try:
            fields = await self._conn().hgetall(self.token_key(name))
        except RedisError as exc:
            raise self._unavailable(exc) from None
        return _token({str(k): str(v) for k, v in fields.items()}) if fields else None

    async def redeem(self, name: str, now: float, *, new_session: bool) -> Token:
        answer = await self._eval(_REDEEM, [self.token_key(name)], [_repr(now), 1 if new_session else 0])
        status, *pairs = answer
        if status != "ok":
            raise _refusal(status)
        return _token(dict(zip(pairs[::2], pairs[1::2], strict=True)))

    async def _eval(self, script: str, keys: list[str], args: list[str | int]) -> Any:
        try:
            return await self._conn().eval(script, len(keys), *keys, *args)
        except RedisError as exc:
            raise self._unavailable(exc) from None

    def _unavailable(self, exc: RedisError) -> TokenStoreUnavailable:
        log.warning("token store: Redis at %s: %s", redacted(self.url), exc)
        return TokenStoreUnavailable()

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
