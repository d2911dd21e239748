"""A virtual clock for sessions (session/lifetime.py's Clock): time moves only when the test says so."""

from __future__ import annotations

import asyncio


class VirtualClock:
    """Time moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + seconds, wake))
        await wake

    async def advance(self, seconds: float) -> None:
        """Move time on, wake the sleepers it reaches, and let what they start run a little."""
        self.now += seconds
        for at, wake in list(self._sleepers):
            if at <= self.now and not wake.done():
                wake.set_result(None)
                self._sleepers.remove((at, wake))
        for _ in range(5):
            await asyncio.sleep(0)
