"""Every task of one session, started in one `asyncio.TaskGroup`, so that none outlives the session.

`SessionTasks.run(body)` holds the group open while `body` runs: the session's event loop (session/events.py),
itself started at the first client message. When the body ends or is cancelled (`LiveSession.aclose`), every task
of the group is cancelled and awaited before `run` returns. Nothing can be started before or after that
(RuntimeError).

A task of the group never lets an exception reach the group (a TaskGroup would cancel the whole session saying
nothing): `start` ends the session with the exception's close (`on_failure`: close_for into the outbox, an
unexpected one logged with its traceback), and `start_outcome` hands the outcome — a value or an exception — to
whoever awaits the task (a transcription, awaited by the model turn or a backchannel judge).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from localive.protocol.errors import LiveError

log = logging.getLogger("localive.session")

T = TypeVar("T")


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """A task's result or its exception, held until someone takes it."""

    value: T | None = None
    error: Exception | None = None

    def get(self) -> T:
        if self.error is not None:
            raise self.error
        return cast(T, self.value)


class SessionTasks:
    def __init__(self, session_id: str, on_failure: Callable[[Exception], Awaitable[None]]) -> None:
        self._session_id = session_id
        self._on_failure = on_failure
        self._group: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    async def run(self, body: Callable[[], Awaitable[None]]) -> None:
        """Run `body` with the group open; then cancel every task of the group and wait for them all."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            try:
                await body()
            finally:
                self._group = None  # nothing more may start
                for task in list(self._tasks):
                    task.cancel()

    def start(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run `work` in the group; an exception it raises ends the session with its close."""
        return self._create(work, self._guarded(work), name)

    def start_outcome(self, work: Coroutine[Any, Any, T], name: str) -> asyncio.Task[Outcome[T]]:
        """Run `work` in the group; its result or exception is the task's `Outcome`."""
        return self._create(work, self._outcome(work), name)

    def _create(self, work: Coroutine[Any, Any, Any], wrapped: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        if self._group is None:
            wrapped.close()
            work.close()
            raise RuntimeError(f"session {self._session_id} is not running: {name} cannot start")
        task = self._group.create_task(wrapped, name=f"{name}-{self._session_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: work.close())  # cancelled before it ran: `work` was never awaited
        return task

    async def _guarded(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception as exc:
            if not isinstance(exc, LiveError):
                log.exception("session %s: a task failed", self._session_id)
            await self._on_failure(exc)

    @staticmethod
    async def _outcome(work: Coroutine[Any, Any, T]) -> Outcome[T]:
        try:
            return Outcome(await work)
        except Exception as exc:  # noqa: BLE001 - taken by whoever awaits the task
            return Outcome(error=exc)
