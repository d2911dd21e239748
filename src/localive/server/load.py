"""How loaded this process is, from what it does, for admission control (server/state.py `admit`).

A count of sessions is a poor measure: a listening session costs about 1 % of a core, a talking one several cores
for a second at a time, and the listening capacity is a cliff (docs/benchmarks.md): past it every session falls
behind, and before it the turns of the sessions already there slow down, because the listening work takes the cores
the models need. So the meter watches the work that serves every session and is not a model's:

- **serving cores**: the CPU time of the event loop's thread (parsing every client's audio, the sessions' logic,
  sending) and of the shared VAD's worker, per second of real time, smoothed over `smoothing_s`. What is left of
  the machine goes to the models when a turn ends; above `max_serving_cores` a new session is refused (1013).
  Sessions admitted in the last seconds count at the open sessions' average cost until the smoothed reading shows
  them: sessions that arrive together are not all admitted before their cost appears.
- **event-loop lag**: how late a timer of the loop fires (smoothed). A loop that runs late delays every session.
- **VAD wait**: how long the oldest audio frame has waited for the shared VAD now (engines/vad/silero.py).

A session that resumes with a handle is admitted whatever the load (only `--max-sessions` counts for it): it was
admitted before, here or on a process that is draining (docs/deploy.md). Times here are real time: the meter
measures the machine, not the session's clock (localive/clock.py).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from localive.engines.vad.base import VADLoad

PERIOD_S = 0.25  # one sample this often
SMOOTHING_S = 2.0  # the time constant of the smoothed values
MAX_LAG_S = 0.25  # smoothed event-loop lag above which new sessions are refused
MAX_VAD_WAIT_S = 0.3  # a frame waiting this long for the VAD: the listening path is behind
DEFAULT_CORE_SHARE = 0.1  # of the cores this process may use: the default max_serving_cores (at most 1)
BUSY_REASON = "The server is too busy for a new session now. Please try again later."


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def default_max_serving_cores() -> float:
    """A share of the cores: on two cores 0.2, where a talking session's first audio stayed within 1.5× of an idle
    server's at p90 in both runs, while 0.3 did in one of two (benchmarks/admission.py); at most one core (the
    event loop is one thread: past that, its lag test refuses)."""
    return round(min(1.0, DEFAULT_CORE_SHARE * available_cores()), 2)


@dataclass(frozen=True)
class LoadReading:
    serving_cores: float  # smoothed
    loop_lag_s: float  # smoothed
    vad_wait_s: float  # now


class LoadMeter:
    """Samples the process every `period_s` while `run` runs (a task of the server's, on its event loop).
    `max_serving_cores` None or 0: that test is off (the lag and VAD tests stay); `enabled` False: no test at all
    (the readings are still taken, for the metrics)."""

    def __init__(self, vad_load: Callable[[], VADLoad] | None = None, *, max_serving_cores: float | None = None,
                 max_lag_s: float = MAX_LAG_S, max_vad_wait_s: float = MAX_VAD_WAIT_S, period_s: float = PERIOD_S,
                 smoothing_s: float = SMOOTHING_S, loop_cpu_s: Callable[[], float] = time.thread_time,
                 enabled: bool = True) -> None:
        self._vad_load = vad_load
        self.enabled = enabled
        self.max_serving_cores = max_serving_cores
        self.max_lag_s = max_lag_s
        self.max_vad_wait_s = max_vad_wait_s
        self.period_s = period_s
        self.smoothing_s = smoothing_s
        self._loop_cpu_s = loop_cpu_s  # called on the loop's thread: its CPU time
        self.serving_cores = 0.0
        self.loop_lag_s = 0.0
        self.samples = 0
        self._admitted: dict[object, float] = {}  # open sessions admitted in the last smoothing_s × 3: since when

    def _cpu_s(self) -> float:
        vad = self._vad_load() if self._vad_load is not None else None
        return self._loop_cpu_s() + (vad.worker_cpu_s if vad else 0.0)

    def sample(self, elapsed_s: float, cpu_s: float, lag_s: float) -> None:
        """Fold one sample in: `cpu_s` of serving work during `elapsed_s` of real time, and a timer `lag_s` late."""
        if elapsed_s <= 0:
            return
        weight = 1.0 - math.exp(-elapsed_s / self.smoothing_s)
        self.serving_cores += weight * (cpu_s / elapsed_s - self.serving_cores)
        self.loop_lag_s += weight * (lag_s - self.loop_lag_s)
        self.samples += 1

    async def run(self) -> None:
        """Sample until cancelled."""
        loop = asyncio.get_running_loop()
        last_at, last_cpu = time.monotonic(), self._cpu_s()
        while True:
            planned = loop.time() + self.period_s
            await asyncio.sleep(self.period_s)  # real time: the lateness of this very wake-up is measured
            lag = max(0.0, loop.time() - planned)
            now, cpu = time.monotonic(), self._cpu_s()
            self.sample(now - last_at, cpu - last_cpu, lag)
            last_at, last_cpu = now, cpu

    def admitted(self, session: object, now: float | None = None) -> None:
        """A session was admitted: until the smoothed reading shows its cost, `unseen_cores` estimates it."""
        now = time.monotonic() if now is None else now
        self._admitted = {k: t for k, t in self._admitted.items() if now - t < 3 * self.smoothing_s}
        self._admitted[session] = now

    def released(self, session: object) -> None:
        """The session ended: whatever it cost is gone (a burst of short sessions adds nothing)."""
        self._admitted.pop(session, None)

    def unseen_cores(self, sessions: int, now: float | None = None) -> float:
        """The part of the recently admitted sessions' cost the smoothed reading does not show yet: each one still
        open at the average cost of the `sessions` open, times how much of it smoothing hides. (No floor: a burst
        of sessions that cost nothing, typed ones, is not held back by a guess.)"""
        now = time.monotonic() if now is None else now
        per_session = self.serving_cores / max(1, sessions)
        return per_session * sum(math.exp(-max(0.0, now - t) / self.smoothing_s) for t in self._admitted.values())

    def reading(self) -> LoadReading:
        vad = self._vad_load() if self._vad_load is not None else None
        return LoadReading(self.serving_cores, self.loop_lag_s, vad.oldest_wait_s if vad else 0.0)

    def overloaded(self, sessions: int = 0) -> str | None:
        """Why a new session should be refused now (for the log and /readyz), or None. `sessions`: those open,
        for the estimate of what the latest ones will add (`unseen_cores`)."""
        if not self.enabled:
            return None
        now = self.reading()
        expected = now.serving_cores + self.unseen_cores(sessions)
        if self.max_serving_cores and expected > self.max_serving_cores:
            return (f"serving work {now.serving_cores:.2f} cores, {expected:.2f} with the sessions just admitted "
                    f"(limit {self.max_serving_cores:.2f})")
        if now.loop_lag_s > self.max_lag_s:
            return f"event loop {now.loop_lag_s * 1000:.0f} ms late"
        if now.vad_wait_s > self.max_vad_wait_s:
            return f"voice activity detection {now.vad_wait_s * 1000:.0f} ms behind"
        return None
