"""The turn watchdog: a turn that produces nothing for too long is ended with a reason and counted, never left
silent; and the stages of a turn, named in the close when one of them fails or hangs.

Producing something is: a message put in the session's outbox, a piece the language model streams (hidden
thoughts included), or a call into a stage completing (a transcript, a clause's speech, a code run, a save). The
bound runs only while a turn works. It is held while the turn waits for the client (a BLOCKING function call's
response, the answer's audio playing out) and while the outbox is full (the client is not reading: the transport's
write timeout deals with that), and there is none between turns (waiting for the user's next words or for a
NON_BLOCKING call's result). When it runs out, the session closes with 1011 and "The model produced nothing for
60 s (stalled in the speech synthesis stage).", after what it had sent; the turn is cancelled, a WARNING logged
and `on_stall` called (the server counts stalls: /healthz). Outside turns, calls into the session store (setup's
checkpoint, loading a resumed session, a session's end) are bounded the same way by `bounded`.

A turn's calls into an engine run inside `stage(name)`, which records what is running (for that reason) and turns
an unexpected exception into `StageFailed`: 1011 with a reason naming the stage, the traceback logged here. A
LiveError (a remote backend's BackendFailed or BackendError, which name their stage already) passes unchanged.
Timers run on the session's `Clock`, so tests run them in virtual time.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from localive.clock import Clock
from localive.protocol.errors import INTERNAL, LiveError, StageFailed, close_for
from localive.session.outbox import Outbox

log = logging.getLogger("localive.session")

T = TypeVar("T")

DEFAULT_TURN_WATCHDOG_S = 60.0
# the stages a session names (speech recognition and synthesis are engines/speech_remote.py's ASR_STAGE, TTS_STAGE)
LLM_STAGE = "language model"
CODE_STAGE = "code execution"
STORE_STAGE = "session store"


class Stalled(LiveError):
    """A turn produced nothing within the watchdog's bound, or the session store did not answer within it (1011)."""

    close_code = INTERNAL
    blame = "server"


class Watchdog:
    """One session's watchdog and stage names. `bound_s` None (or 0) turns the timer off; stages are still named."""

    def __init__(self, session_id: str, outbox: Outbox, clock: Clock, bound_s: float | None = DEFAULT_TURN_WATCHDOG_S,
                 on_stall: Callable[[], None] | None = None,
                 start: Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]] | None = None) -> None:
        self.session_id = session_id
        # how its timer is started: in the session's task group (session/tasks.py), else as a plain task
        self._start = start or (lambda work, name: asyncio.create_task(work, name=f"{name}-{session_id}"))
        self.bound_s = bound_s if bound_s and bound_s > 0 else None
        self.expired: Stalled | None = None  # set once a turn has stalled: the session's close is queued
        self._outbox = outbox
        self._clock = clock
        self._on_stall = on_stall
        self._last = clock.monotonic()  # when the turn last produced something
        self._waiting = 0  # > 0 while the turn waits for the client
        self._running: Counter[str] = Counter()  # the stages called now, in the order they were entered
        self._timer: asyncio.Task[None] | None = None
        outbox.on_put = self.progress

    def progress(self) -> None:
        self._last = self._clock.monotonic()

    def watch(self, turn: asyncio.Task[None]) -> None:
        """Watch a turn that has just started, instead of any earlier one."""
        if self.bound_s is None or self.expired is not None:
            return
        self.stop()
        self.progress()
        timer = self._start(self._run(turn, self.bound_s), "watchdog")
        turn.add_done_callback(lambda _: timer.cancel() if self.expired is None else None)  # lives as long as it
        self._timer = timer

    def stop(self) -> asyncio.Task[None] | None:
        """Stop watching (the session ends); returns the timer's task if it was running."""
        timer, self._timer = self._timer, None
        if timer is None or timer.done():
            return None
        timer.cancel()
        return timer

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """A call into the stage `name`: recorded as running; an unexpected exception becomes StageFailed."""
        self._running[name] += 1
        try:
            yield
        except (LiveError, StopAsyncIteration):
            raise
        except Exception as exc:
            log.error("session %s: the %s stage failed", self.session_id, name, exc_info=exc)
            raise StageFailed(name) from exc
        finally:
            self._running[name] -= 1
            if not self._running[name]:
                del self._running[name]
            self.progress()

    def stream(self, name: str, items: AsyncIterator[T]) -> AsyncIterator[T]:
        """`items` (a model's stream) with each step as a call into the stage `name`; closing it closes `items`."""
        return _StageStream(self, name, items)

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """The turn waits for the client (a function response, its audio playing out): the bound is held."""
        self._waiting += 1
        try:
            yield
        finally:
            self._waiting -= 1
            self.progress()

    async def bounded(self, name: str, work: Awaitable[T]) -> T:
        """Outside a turn: `work`, a call into the stage `name`, within the bound; Stalled (counted) beyond it."""
        with self.stage(name):
            if self.bound_s is None:
                return await work
            task = asyncio.ensure_future(work)
            timer = asyncio.ensure_future(self._clock.sleep(self.bound_s))
            try:
                done, _ = await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                timer.cancel()
                if not task.done():
                    task.cancel()
            if task in done:
                return task.result()
            raise self._stalled(f"The {name} did not answer within {self.bound_s:g} s.")

    async def _run(self, turn: asyncio.Task[None], bound_s: float) -> None:
        while not turn.done():
            quiet_s = self._clock.monotonic() - self._last
            if quiet_s < bound_s:
                await self._clock.sleep(bound_s - quiet_s)
            elif self._waiting or self._outbox.full:  # the client's move: look again later
                await self._clock.sleep(bound_s)
            else:
                stages = " and ".join(self._running)
                where = f" (stalled in the {stages} stage{'s' if len(self._running) > 1 else ''})" if stages else ""
                self.expired = self._stalled(f"The model produced nothing for {bound_s:g} s{where}.")
                await self._outbox.put(close_for(self.expired))  # after what the turn has sent; it sends no more
                turn.cancel()
                return

    def _stalled(self, reason: str) -> Stalled:
        log.warning("session %s: %s", self.session_id, reason)
        if self._on_stall is not None:
            self._on_stall()
        return Stalled(reason)


class _StageStream(AsyncIterator[T]):
    def __init__(self, watchdog: Watchdog, name: str, items: AsyncIterator[T]) -> None:
        self._watchdog = watchdog
        self._name = name
        self._items = items

    async def __anext__(self) -> T:
        with self._watchdog.stage(self._name):
            return await self._items.__anext__()

    async def aclose(self) -> None:
        if (close := getattr(self._items, "aclose", None)) is not None:
            await close()
