"""One injectable clock: every place that reads the time or waits on it (session lifetimes, the turn watchdog,
playback pacing, turn timings, token expiry, stores, the fake engines) takes a `Clock`, so tests can run them in
virtual time.

`SystemClock` is the real one. `VirtualClock` is time that moves only when a test says so (`advance`): a
30-minute session, a token's expiry or a barge-in's timing is checked in milliseconds of real time, with no
real-time sleep used as synchronisation. It is public (re-exported by `localive.testing`) so that users' own tests
can drive a session the same way.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch (wall time: session ages and token expiry survive a restart)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start, never going back (spans within one process: watchdogs, pacing)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait this many seconds of this clock's time."""
        ...


class SystemClock:
    """The machine's clocks and asyncio's sleep."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


class VirtualClock:
    """Time that moves only when `advance` moves it. `sleep` waits until the clock reaches its end; `advance`
    wakes the sleepers it passes, in the order of their wake times, letting each run before moving on."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), wake))
        try:
            await wake
        finally:
            if not wake.done():  # cancelled: forget it
                wake.cancel()

    @property
    def sleepers(self) -> int:
        """How many tasks wait on this clock now."""
        return sum(1 for *_, wake in self._sleepers if not wake.done())

    async def advance(self, seconds: float, *, settle: int = 5) -> None:
        """Move time on by `seconds`, waking each sleeper whose time comes (time stands at its wake time while it
        runs), then let what they started run for `settle` passes of the event loop."""
        end = self.now + seconds
        while self._sleepers and self._sleepers[0][0] <= end:
            at, _, wake = heapq.heappop(self._sleepers)
            if wake.done():
                continue
            self.now = max(self.now, at)
            wake.set_result(None)
            for _ in range(settle):
                await asyncio.sleep(0)
        self.now = end
        for _ in range(settle):
            await asyncio.sleep(0)
