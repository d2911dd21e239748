"""What every remote serving engine (the LLM, speech recognition, speech synthesis) shares with the session that
admits new sessions to it: a limit on concurrent sessions (`SessionSlots`) and whether it is down
(`BackendHealth`). A session refused by either closes with 1013 (try again later), before it can fail mid-turn."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Awaitable, Callable

import httpx2

from localive.clock import SYSTEM_CLOCK, Clock

RECHECK_S = 2.0  # how often a backend known to be down is asked again, at most (a new session asks)


class SessionSlots:
    """A backend's limit on concurrent sessions: a session takes a slot at setup and gives it back at its end;
    when none is free the new session is refused (1013) instead of slowing every session down."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._taken = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.limit is not None and self._taken >= self.limit:
                return False
            self._taken += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self._taken = max(0, self._taken - 1)


class BackendHealth:
    """Whether a new session may use a backend: yes unless it is known to be down (it did not answer at start, or
    a connection to it was refused during a turn); then `probe` asks it again, at most every RECHECK_S and only
    when a new session wants it, and the session is refused with 1013 until it answers. The interval is read on
    `clock`; the probe's own timeout is real time (a real request to a real backend)."""

    def __init__(self, probe: Callable[[], Awaitable[bool]], *, timeout_s: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self.down = False
        self._probe = probe  # True when the backend answers as it should
        self._timeout_s = timeout_s
        self._clock = clock
        self._checked_at = -math.inf

    async def reachable(self) -> bool:
        if not self.down:
            return True
        now = self._clock.monotonic()
        if now - self._checked_at < RECHECK_S:
            return False
        self._checked_at = now
        try:
            async with asyncio.timeout(self._timeout_s):
                self.down = not await self._probe()
        except (TimeoutError, httpx2.HTTPError):
            self.down = True
        return not self.down

    def failed(self, exc: BaseException) -> None:
        """A request failed: a refused connection marks the backend down for new sessions (the session whose
        request it was fails on its own, 1011)."""
        if isinstance(exc, httpx2.ConnectError):
            self.down = True
