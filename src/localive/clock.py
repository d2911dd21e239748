"""One injectable clock: every place that reads the time or waits on it as part of a session's or the server's
behaviour takes a `Clock` (default `SYSTEM_CLOCK`), so tests can run it in virtual time.

`SystemClock` is the real one. `VirtualClock` is time that moves only when a test says so (`advance`): a
30-minute session, a token's expiry or a barge-in's timing is checked in milliseconds of real time, with no
real-time sleep used as synchronisation. It is public, here in `localive.clock`, so that users' own tests can drive
a session the same way. The server builds one clock (`ServerState.clock`) and hands it to its sessions, tokens,
work budgets and stores.

Which time goes through the clock (the rule, decided case by case by what the time is used for):

- **The clock**: anything that paces, orders, bounds or expires behaviour the client can see, and the spans
  between a session's own events. Session lifetimes and goAway (`session/lifetime.py`), the turn watchdog,
  playback pacing (what the user has heard, when the turn is over: `session/speech_out.py`), turn timings
  (`session/timings.py`), ephemeral tokens' expiry (`server/auth.py`), work budgets (`server/budget.py`),
  handle expiry (`stores/`), a down backend's re-check interval (`engines/remote_backend.py`), the transport's
  ordering of waiting connections, and the fake engines' simulated compute time (`ScriptedASR`, `ToneTTS`,
  `EmulatorLLM`'s pacing).
- **Real time, always**: (1) a real engine measuring its own compute (``time.perf_counter`` around a model call,
  in `engines/asr/whisper.py`; load times logged at start): virtual time cannot make a model faster, and the
  number is only logged. (2) Work charged to a client's work budget: CPU time (``time.thread_time``) of what
  runs on a worker thread, the event loop's own time (``time.perf_counter`` around a parse that runs there
  without waiting) of what runs on it: it measures work done, it does not wait. (3) Timeouts on real I/O:
  ``asyncio.timeout`` around a socket's send or receive, an HTTP call to a backend, uvicorn's ``call_later``
  deadlines in `server/transport.py`, the runner's start-up poll:
  they guard against real peers, which a virtual clock does not slow down. (4) The tools' deadlines (code sandbox,
  URL fetching): they bound real processes and real network reads. (5) `localive.bench`: it measures real
  latency by definition. A ``sleep(0)`` that only yields to the event loop is not a wait and stays
  ``asyncio.sleep(0)``.

This project's tests have a second tool, `tests/support/virtual_time.py`: an event loop whose ``loop.time()``
jumps to its next timer whenever nothing is ready (the fuzz test runs whole sessions on it until they go quiet,
with a `LoopClock` that reads the loop's time). It makes every ``asyncio`` timer virtual, the real-I/O timeouts
above included; `VirtualClock` moves only what reads the clock, and only when the test says, so a test steps a
session to exact moments.
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
        runs), then let what they started run for `settle` passes of the event loop. What is ready to run gets
        those passes first, before time moves: a task just created starts its sleep at the present time."""
        for _ in range(settle):
            await asyncio.sleep(0)
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
