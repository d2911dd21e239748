"""`Turn`: one model turn, as the session holds it — its task (started in the session's task group), whether it has
begun to run, and its cancellation, which happens at most once (`stop`, for an interruption).

What the turn does is session/model_turn.py's `ModelTurn.run`; when it answered in full, `on_end` is called (the
session posts `TurnEnded`, so that what waited for the turn goes on in the event loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from localive.clock import Clock
from localive.protocol.errors import LiveError
from localive.session.outbox import Outbox
from localive.session.tasks import SessionTasks

INTERRUPT_TIMEOUT_S = 5.0


class TurnDidNotStop(LiveError):
    """An interrupted model turn still running INTERRUPT_TIMEOUT_S later (an engine that does not let go)."""

    default_reason = "The answer in progress did not stop in time."


class ClientNotReading(LiveError):
    """An interrupted model turn cannot send its end: the client reads nothing (1011, as the transport's write
    timeout closes)."""

    blame = "client"


class Turn:
    def __init__(self, turn_id: int, body: Callable[[], Awaitable[bool]], on_end: Callable[[Turn], None],
                 tasks: SessionTasks) -> None:
        self.id = turn_id
        self.started = False  # its task has begun to run (else, cancelled, it cannot report its own end)
        self.cancelled = False
        self._body = body
        self._on_end = on_end
        self.task = tasks.start(self._run(), f"turn-{turn_id}")

    @property
    def running(self) -> bool:
        return not self.task.done()

    async def _run(self) -> None:
        self.started = True
        if await self._body():
            self._on_end(self)

    def cancel(self) -> bool:
        """Cancel the turn if it still runs and was not cancelled before; returns whether this cancelled it."""
        if self.cancelled or self.task.done():
            return False
        self.cancelled = True
        self.task.cancel()
        return True

    async def stop(self, outbox: Outbox, clock: Clock) -> None:
        """Wait for the cancelled turn to stop (it sends its end: interrupted → turnComplete). Raises a LiveError
        (the session must end) if it still runs INTERRUPT_TIMEOUT_S later (on the session's clock)."""
        timer = asyncio.ensure_future(clock.sleep(INTERRUPT_TIMEOUT_S))
        try:  # asyncio.wait: a caller cancelled here leaves the turn to aclose, and the turn's end is no error here
            await asyncio.wait((self.task, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        if not self.task.done():  # it still runs: the session ends (aclose cancels it) rather than go on beside it
            if outbox.blocked:  # it waits to send its end to a client that reads nothing
                raise ClientNotReading(f"The client read nothing for {INTERRUPT_TIMEOUT_S:.0f} s.")
            raise TurnDidNotStop()
