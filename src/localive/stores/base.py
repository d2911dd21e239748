"""Where resumable session state lives between connections: the interface every store implements.

A saved state is found by its handle (unguessable, 192 bits), belongs to the principal (API-key id) that created
it, and expires. `SqliteStore` (stores/sqlite.py) keeps it for one process; `RedisStore` (stores/redis.py) shares
it between processes or hosts.
"""

from __future__ import annotations

import secrets
from typing import Protocol

DEFAULT_TTL_S = 2 * 3600.0  # handles stay valid 2 hours after the session ends (Gemini Developer API)


def new_handle() -> str:
    return secrets.token_urlsafe(24)


class SessionStore(Protocol):
    async def save(self, handle: str, *, session_key: str, principal: str, state: str) -> None:
        """Store `state` under a new handle; earlier handles of the session stay valid until they expire."""
        ...

    async def load(self, handle: str, principal: str) -> str | None:
        """The state of a live handle created by `principal`; None if unknown, expired or someone else's."""
        ...

    async def session_ended(self, session_key: str) -> None:
        """Start the session's handles' expiry clock (they stay valid `ttl_s` from now)."""
        ...

    async def ping(self) -> None:
        """Raise if the store cannot be reached now (`/readyz`)."""
        ...
