"""Who may connect: API keys, ephemeral tokens, and the setup fields a token locks (docs/access.md).

Where each SDK puts the credential, and what a token request holds: docs/protocol-notes.md.

API keys are kept only as SHA-256 digests and compared in constant time against every configured key. With no
keys configured the server is open: any key, or none, is accepted. An ephemeral token (``auth_tokens/…``) is
minted with a real key (`tokens_api`), lives in a `TokenStore` (this process's memory, or Redis shared by
several processes: `redis_tokens`), and is redeemed when its session's setup arrives
(`TokenGate`, LiveSession's ``gate``): a new session takes one use, a resumed one takes none. A principal (a
one-way id of the key, or of the token itself) names the caller in resumption handles and logs; a key itself is
never logged or sent back.

A token's locks hold for the whole session, not only for its setup (security findings F3, F15): a
``contextUpdate`` may not change a locked field, and a resumed session's saved setup is constrained again. Handles
are bound to the token, so one user of an app (or of the playground) cannot resume another's session. The store
is bounded per minter (security finding F9): a key, or a playground client address, holds at most so many live
tokens and so many bytes of locked setups; expired tokens count for nothing.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import InitVar, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from localive.clock import SYSTEM_CLOCK, Clock
from localive.protocol import messages as wire
from localive.protocol.errors import INTERNAL, POLICY, Close, InvalidArgument, LiveError, PolicyViolation, close_for
from localive.protocol.keys import snake_to_camel
from localive.protocol.parse import describe_validation_error

TOKEN_PREFIX = "auth_tokens/"
ANONYMOUS = "anonymous"
INVALID_KEY = "API key not valid. Please pass a valid API key."
MISSING_KEY = "Missing API key. Please pass a valid API key."
TOKEN_EXPIRED = "The ephemeral token has expired."
NO_NEW_SESSIONS = "The ephemeral token no longer accepts new sessions."
TOKEN_NEEDS_CONSTRAINED = "Ephemeral tokens are only accepted by BidiGenerateContentConstrained."
KEPT_AFTER_EXPIRY_S = 3600.0  # an expired token is remembered this long, so its refusal says "expired"
MAX_TOKENS = 100_000  # live (unexpired) tokens of all minters together
MAX_EXPIRED_REMEMBERED = 100_000  # expired tokens remembered (without their setups) to say "expired"
MAX_SETUP_BYTES_TOTAL = 256 * 2**20  # locked setups (compact JSON) of all live tokens together
PURGE_EVERY_S = 60.0


class Unauthenticated(LiveError):
    """A missing, wrong, expired or misused credential (close 1008)."""

    close_code = POLICY
    default_reason = INVALID_KEY
    blame = "client"


class TokenUsedUp(LiveError):
    """A token's uses are spent: Gemini closes with 1011 and this wording (docs/protocol-notes.md)."""

    close_code = INTERNAL
    default_reason = "Token has been used too many times"
    blame = "client"


class TokenExpired(LiveError):
    """A token's session reached the token's expireTime: a planned end (1011, like Gemini's session deadline)."""

    close_code = INTERNAL
    default_reason = TOKEN_EXPIRED
    blame = "nobody"


class TokenStoreFull(Exception):
    """Too many unexpired tokens are held already, by everyone or by this minter."""


class TokenStoreUnavailable(LiveError):
    """A shared token store (Redis) did not answer: the caller is neither accepted nor refused (1011)."""

    close_code = INTERNAL
    blame = "server"


@dataclass(frozen=True)
class Quota:
    """What one minter (an API key, or a playground client's address) may hold at once."""

    tokens: int = 10_000  # live tokens
    setup_bytes: int = 16 * 2**20  # their locked setups, as compact JSON


KEY_QUOTA = Quota()


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


def principal_of(key: str | None) -> str:
    """A stable, one-way id of an API key (the same across restarts, so resumption handles stay bound)."""
    if not key:
        return ANONYMOUS
    return hashlib.sha256(b"localive principal\0" + key.encode("utf-8")).hexdigest()[:16]


def is_token(credential: str | None) -> bool:
    return bool(credential) and str(credential).startswith(TOKEN_PREFIX)


# --- API keys ------------------------------------------------------------------------------------------------

class KeyRing:
    """The configured API keys, as digests. Empty: the server is open."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        cleaned = [k.strip() for k in keys if k.strip()]
        if any(is_token(k) for k in cleaned):
            raise ValueError(f"an API key may not start with {TOKEN_PREFIX!r} (that marks ephemeral tokens)")
        self._digests = tuple(dict.fromkeys(_digest(k) for k in cleaned))

    def __len__(self) -> int:
        return len(self._digests)

    @property
    def open(self) -> bool:
        return not self._digests

    def accepts(self, key: str | None) -> bool:
        """Open: anything. Otherwise the key must equal a configured one (every digest compared, in constant time)."""
        if self.open:
            return True
        if not key:
            return False
        candidate = _digest(key)
        found = False
        for known in self._digests:
            found |= hmac.compare_digest(candidate, known)
        return found

    @classmethod
    def load(cls, keys: Iterable[str] = (), files: Iterable[Path] = (), env: str | None = None) -> KeyRing:
        """Keys from the command line, key files (one a line, ``#`` comments) and LOCALIVE_API_KEYS (commas)."""
        found = list(keys)
        for path in files:
            found += read_keys_file(path)
        found += (env or "").split(",")
        return cls(found)


def read_keys_file(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


# --- ephemeral tokens ----------------------------------------------------------------------------------------

@dataclass
class Token:
    expire_at: float
    new_session_until: float
    uses: int  # 0: unlimited
    principal: str  # of the key that minted it (logs)
    setup: InitVar[dict[str, Any] | None] = None  # bidiGenerateContentSetup, camelCase
    field_mask: tuple[str, ...] | None = None  # camelCase dotted paths; None: the whole setup is locked
    used: int = 0
    minter: str = ""  # whose quota it counts against (default: the principal)
    setup_json: str | None = field(init=False, default=None)  # compact: a dict would cost ~10x the bytes

    def __post_init__(self, setup: dict[str, Any] | None) -> None:
        if setup is not None:
            self.setup_json = json.dumps(setup, separators=(",", ":"), ensure_ascii=False)
        self.minter = self.minter or self.principal

    @property
    def locked_setup(self) -> dict[str, Any] | None:
        return None if self.setup_json is None else dict(json.loads(self.setup_json))

    @property
    def locks_anything(self) -> bool:
        return self.setup_json is not None or self.field_mask is not None

    @property
    def setup_bytes(self) -> int:
        return len(self.setup_json.encode("utf-8")) if self.setup_json is not None else 0


def new_token_name() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)  # 256 random bits


def token_principal(name: str) -> str:
    """The principal of a token's sessions: its resumption handles belong to the token, not to every token of the
    key that minted it (one app's users, or the playground's, cannot resume each other's sessions)."""
    return "t-" + hashlib.sha256(b"localive token\0" + name.encode("utf-8")).hexdigest()[:16]


class TokenStore(Protocol):
    """Where tokens live: this process's memory (`MemoryTokenStore`) or Redis, shared by several processes
    (`localive.server.redis_tokens.RedisTokenStore`). Async, as a shared store is network I/O; a store that cannot
    answer raises TokenStoreUnavailable. Cancelling a call is safe: each change is one atomic step, done or not."""

    async def add(self, name: str, token: Token, now: float, quota: Quota = KEY_QUOTA) -> None:
        """Keep a new token; raises TokenStoreFull when the store, or the token's minter, holds too many."""
        ...

    async def get(self, name: str) -> Token | None:
        """The token, or None if unknown (or long expired)."""
        ...

    async def redeem(self, name: str, now: float, *, new_session: bool) -> Token:
        """Check the token for a session start and, for a new session, take one use: atomically."""
        ...


class MemoryTokenStore:
    """Tokens in this process's memory, by the digest of their name. Safe from threads and from the event loop
    (no await inside: each call is one step).

    Live tokens are counted per minter and in total; an expired one leaves the count at once (it is remembered,
    without its setup, for KEPT_AFTER_EXPIRY_S so that using it says "expired").
    """

    def __init__(self, max_tokens: int = MAX_TOKENS, max_setup_bytes: int = MAX_SETUP_BYTES_TOTAL) -> None:
        self._tokens: dict[bytes, Token] = {}
        self._expired: OrderedDict[bytes, Token] = OrderedDict()
        self._by_minter: dict[str, set[bytes]] = {}
        self._minter_bytes: dict[str, int] = {}
        self._setup_bytes = 0
        self._lock = threading.Lock()
        self._max = max_tokens
        self._max_setup_bytes = max_setup_bytes
        self._next_purge = 0.0

    def __len__(self) -> int:
        """Live (unexpired) tokens."""
        return len(self._tokens)

    async def add(self, name: str, token: Token, now: float, quota: Quota = KEY_QUOTA) -> None:
        size = token.setup_bytes
        with self._lock:
            if now >= self._next_purge or len(self._tokens) >= self._max:
                self._purge(now)
            mine = self._by_minter.get(token.minter, set())
            if len(mine) >= quota.tokens or self._minter_bytes.get(token.minter, 0) + size > quota.setup_bytes:
                self._purge(now)
                mine = self._by_minter.get(token.minter, set())
                if len(mine) >= quota.tokens or self._minter_bytes.get(token.minter, 0) + size > quota.setup_bytes:
                    raise TokenStoreFull
            if len(self._tokens) >= self._max or self._setup_bytes + size > self._max_setup_bytes:
                raise TokenStoreFull
            digest = _digest(name)
            self._tokens[digest] = token
            self._by_minter.setdefault(token.minter, set()).add(digest)
            self._minter_bytes[token.minter] = self._minter_bytes.get(token.minter, 0) + size
            self._setup_bytes += size

    async def get(self, name: str) -> Token | None:
        digest = _digest(name)
        with self._lock:
            return self._tokens.get(digest) or self._expired.get(digest)

    async def redeem(self, name: str, now: float, *, new_session: bool) -> Token:
        digest = _digest(name)
        with self._lock:  # check and count with no await in between: one use, one session
            token = self._tokens.get(digest) or self._expired.get(digest)
            if token is None:
                raise Unauthenticated
            if now >= token.expire_at:
                raise Unauthenticated(TOKEN_EXPIRED)
            if new_session:
                if token.uses and token.used >= token.uses:
                    raise TokenUsedUp
                if now >= token.new_session_until:
                    raise Unauthenticated(NO_NEW_SESSIONS)
                token.used += 1
            return token

    def _purge(self, now: float) -> None:
        for digest in [d for d, t in self._tokens.items() if now >= t.expire_at]:
            token = self._tokens.pop(digest)
            self._by_minter[token.minter].discard(digest)
            if not self._by_minter[token.minter]:
                del self._by_minter[token.minter]
            size = token.setup_bytes
            self._minter_bytes[token.minter] = self._minter_bytes.get(token.minter, 0) - size
            if self._minter_bytes[token.minter] <= 0:
                self._minter_bytes.pop(token.minter)
            self._setup_bytes -= size
            self._expired[digest] = replace(token, setup=None)
        while self._expired and (len(self._expired) > MAX_EXPIRED_REMEMBERED
                                 or now >= next(iter(self._expired.values())).expire_at + KEPT_AFTER_EXPIRY_S):
            self._expired.popitem(last=False)
        self._next_purge = now + PURGE_EVERY_S


# --- locked setup fields -------------------------------------------------------------------------------------

_MISSING = object()


def mask_path(path: str) -> tuple[str, ...]:
    """``generation_config.temperature`` → ("generationConfig", "temperature")."""
    return tuple(snake_to_camel(part.strip()) for part in path.split("."))


def constrain(client: dict[str, Any], locked: dict[str, Any] | None,
              mask: tuple[str, ...] | None) -> dict[str, Any]:
    """The effective setup of a token's session (the AuthToken ``fieldMask`` rules).

    No mask: the token's setup is the whole setup (the client's is ignored), except that the client's model is
    used when the token names none, and the client's ``sessionResumption`` when the token sets none. A mask: each
    listed path is taken from the token's setup, or removed when the token does not set it; everything else is
    the client's. Either way a client's resumption handle is kept: it names the connection, not its settings.
    """
    if mask is None:
        if not locked:
            return client
        effective = copy.deepcopy(locked)
        for name in ("model", "sessionResumption"):
            if name not in effective and name in client:
                effective[name] = client[name]
    else:
        effective = copy.deepcopy(client)
        for path in mask:
            parts = mask_path(path)
            value = _get(locked or {}, parts)
            if value is _MISSING:
                _delete(effective, parts)
            else:
                _set(effective, parts, copy.deepcopy(value))
    handle = (client.get("sessionResumption") or {}).get("handle")
    resumption = effective.get("sessionResumption")
    if handle and isinstance(resumption, dict):
        effective["sessionResumption"] = {**resumption, "handle": handle}
    return effective


def _get(tree: dict[str, Any], parts: tuple[str, ...]) -> Any:
    node: Any = tree
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _set(tree: dict[str, Any], parts: tuple[str, ...], value: Any) -> None:
    node = tree
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def _delete(tree: dict[str, Any], parts: tuple[str, ...]) -> None:
    parent = _get(tree, parts[:-1]) if len(parts) > 1 else tree
    if isinstance(parent, dict):
        parent.pop(parts[-1], None)


# --- the access check of a connection ------------------------------------------------------------------------

class CloseSink(Protocol):
    async def put(self, message: Close) -> None: ...


@dataclass(frozen=True)
class Credential:
    """An accepted caller: its principal and, for a token, the gate that redeems it at setup."""

    principal: str
    gate: TokenGate | None = None

    def watch_expiry(self, outbox: CloseSink) -> asyncio.Task[None] | None:
        """For a token: end the connection when the token expires (its ``expireTime``). Cancel when done."""
        if self.gate is None:
            return None
        return asyncio.create_task(self.gate.expire(outbox), name="token-expiry")


class TokenGate:
    """LiveSession's gate for a token: redeem it at setup and hold its locked fields for the whole session."""

    def __init__(self, store: TokenStore, name: str, token: Token, clock: Clock) -> None:
        self._store = store
        self._name = name
        self._token = token
        self._clock = clock

    async def __call__(self, setup: wire.Setup) -> wire.Setup:
        """Redeem the token (a new session takes one use, a resumed one none) and apply its locks."""
        effective = self.constrain(setup)
        resuming = bool(effective.session_resumption and effective.session_resumption.handle)
        await self._store.redeem(self._name, self._clock.time(), new_session=not resuming)
        return effective

    def constrain(self, setup: wire.Setup) -> wire.Setup:
        """The setup with the token's locked fields applied (again, after a resumed session's setup is restored)."""
        token = self._token
        if not token.locks_anything:
            return setup
        raw = setup.model_dump(by_alias=True, exclude_none=True, mode="json")
        try:
            return wire.Setup.model_validate(constrain(raw, token.locked_setup, token.field_mask))
        except ValidationError as exc:
            raise InvalidArgument(describe_validation_error("setup", exc)) from None

    def check_update(self, update: wire.ContextUpdate) -> None:
        """Refuse a contextUpdate that would change a field the token locks (1008)."""
        for name, given in (("tools", update.tools), ("systemInstruction", update.system_instruction)):
            if given is not None and self.locks(name):
                raise PolicyViolation(f"The ephemeral token locks {name}: contextUpdate may not change it.")

    def locks(self, name: str) -> bool:
        """Whether the token fixes the top-level setup field `name` (or a part of it)."""
        token = self._token
        if token.field_mask is None:
            return token.setup_json is not None
        return any(mask_path(path)[0] == name for path in token.field_mask)

    async def expire(self, outbox: CloseSink) -> None:
        """Wait, on the clock, for the token's expireTime; then close the connection (1011, TOKEN_EXPIRED)."""
        await self._clock.sleep(max(0.0, self._token.expire_at - self._clock.time()))
        await outbox.put(close_for(TokenExpired()))


class Access:
    """The server's access policy: its API keys and its ephemeral tokens. Token times (minting, redeeming, expiry)
    are the clock's wall time (`Clock.time`): a token's expireTime is absolute."""

    def __init__(self, keys: KeyRing | None = None, tokens: TokenStore | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.keys = keys or KeyRing()
        self.tokens: TokenStore = tokens if tokens is not None else MemoryTokenStore()  # (an empty one is falsy)
        self.clock = clock

    def describe(self) -> str:
        if self.keys.open:
            return "open (no API keys configured: any key is accepted)"
        return f"{len(self.keys)} API key(s) required"

    async def authenticate(self, credential: str | None, *, constrained: bool) -> Credential:
        """Accept or refuse a Live connection's credential (raises Unauthenticated, or TokenStoreUnavailable)."""
        if is_token(credential):
            assert credential is not None
            if not constrained:
                raise Unauthenticated(TOKEN_NEEDS_CONSTRAINED)
            token = await self.tokens.get(credential)
            if token is None:
                raise Unauthenticated
            if self.clock.time() >= token.expire_at:
                raise Unauthenticated(TOKEN_EXPIRED)
            return Credential(token_principal(credential), TokenGate(self.tokens, credential, token, self.clock))
        if not self.keys.accepts(credential):
            raise Unauthenticated(INVALID_KEY if credential else MISSING_KEY)
        return Credential(principal_of(credential))
