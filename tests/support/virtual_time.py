"""An asyncio event loop in virtual time, for deterministic and fast tests of session logic.

`loop.time()` is virtual: whenever nothing is ready to run, the loop jumps straight to its next timer instead of
waiting for it, so `asyncio.sleep(3)` and timeouts cost no wall time and the order of events depends only on the
program, never on the machine's speed. Executor work (`run_in_executor`, `asyncio.to_thread`) runs inline, in the
calling thread, on the loop's default executor and on `InlineExecutor`s given to the code under test, so nothing
happens behind the loop's back. Code that reads `time.monotonic()` itself still sees (almost) no time pass.

The loop also records every task created on it (`tasks`), every error asyncio reports through its exception
handler (`errors`: a callback that raised, a task destroyed while pending, …), and stops a livelock: more than
`max_iterations` passes without virtual time moving forward raise `Livelock`.

How this relates to `localive.clock.VirtualClock`, the package's virtual time: a `VirtualClock` moves only when a
test calls `advance`, and only what reads that clock (the session's lifetimes, watchdog, playback, the fakes'
delays) sees it move; a test steps a session to exact moments. This loop moves by itself whenever nothing is
ready, and every asyncio timer on it is virtual, real-I/O timeouts included; the fuzz test uses it to run whole
scenarios until they go quiet, with no step of its own. The two do not mix (a `VirtualClock` on this loop would
wait for an `advance` nobody calls); on this loop a session gets `LoopClock`, whose reads and sleeps are the
loop's time, so its lifetimes and its playback estimates move with everything else.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class Livelock(RuntimeError):
    """The loop kept running callbacks without ever waiting: something reschedules itself forever."""


class InlineExecutor(ThreadPoolExecutor):
    """Runs each submitted call at once, in the submitting thread (a deterministic stand-in for a thread pool; a
    ThreadPoolExecutor only because asyncio's default executor must be one: it never starts a thread)."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001  # delivered to whoever awaits the future, as a thread pool would
            future.set_exception(exc)
        return future


class _VirtualSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """Never blocks: I/O that is ready is returned at once; otherwise the loop's clock jumps by the timeout."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events or timeout == 0:
            self._loop._idle_passes += 1
            if self._loop._idle_passes > self._loop.max_iterations:
                raise Livelock(f"{self._loop.max_iterations} loop passes without virtual time moving")
            return events
        if timeout is None:  # nothing scheduled at all and nothing ready: the program waits for I/O that never comes
            raise Livelock("the event loop would wait forever: no timer, no ready callback, no I/O")
        self._loop._now += timeout
        self._loop._idle_passes = 0
        return []


class LoopClock:
    """A `localive.clock.Clock` on the running event loop's time (on `VirtualTimeLoop`: virtual time)."""

    EPOCH = 1_000_000.0  # wall time (Clock.time) at loop time 0

    def time(self) -> float:
        return self.EPOCH + asyncio.get_running_loop().time()

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, max_iterations: int = 200_000) -> None:
        self._now = 0.0
        self._idle_passes = 0
        self.max_iterations = max_iterations
        self.tasks: list[asyncio.Task[Any]] = []
        self.errors: list[dict[str, Any]] = []
        super().__init__(selector=_VirtualSelector(self))
        self.set_default_executor(InlineExecutor())
        self.set_task_factory(self._record_task)
        self.set_exception_handler(lambda loop, context: self.errors.append(context))

    def time(self) -> float:
        return self._now

    def _record_task(self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        self.tasks.append(task)
        return task


def run_virtual(main: Callable[[VirtualTimeLoop], Coroutine[Any, Any, T]]) -> T:
    """Run `main(loop)` to completion on a fresh VirtualTimeLoop; then cancel whatever it left behind (a failed
    test's leftovers) and close the loop."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main(loop))
    finally:
        try:
            left = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.wait(left, timeout=60))
        finally:
            loop.close()
