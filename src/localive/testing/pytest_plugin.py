"""A pytest plugin that fails a test which leaves work running when it ends: an asyncio task still pending on the
test's event loop, or a thread it started that is still alive.

Turn it on with `pytest_plugins = ["localive.testing.pytest_plugin"]` in a conftest.py (localive's own tests do:
tests/conftest.py) or `-p localive.testing.pytest_plugin` on the command line. It is not registered as a `pytest11`
entry point on purpose: that would turn it on in every project that merely has localive installed.

- Tasks: an `async def` test (run by pytest-asyncio) is wrapped so that, once its body has returned, the loop runs a
  few more passes (a task cancelled at the end gets to finish) and then every task created during the body that
  is still not done fails the test. The leftovers are cancelled, so they do not run into the next test. A test
  whose body raised is left alone: its own failure is the one to read.
- Threads: a non-daemon thread started during the test's body (any test) that is still alive when it ends,
  after up to THREAD_GRACE_S for it to finish, fails the test: it is what keeps a process from exiting. Not
  counted: daemon threads, which libraries start for process-wide pools that outlive any one test
  (multiprocessing's pool and queue threads, http.server's request threads), and the threads of
  `concurrent.futures` executors (a thread pool's workers, a process pool's manager thread), which an executor
  keeps until it is shut down by its owner (a fixture, a process-wide pool, or the event loop, whose default
  executor is shut down with the loop).

`@pytest.mark.leaves_running("why")` exempts a test that means to leave something running for a fixture to stop.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
import time
from collections.abc import Callable, Coroutine, Generator
from concurrent.futures import process as executor_processes
from concurrent.futures import thread as executor_threads
from typing import Any

import pytest

LOOP_PASSES = 5  # loop passes the test's leftovers get to finish after its body returned
THREAD_GRACE_S = 1.0  # how long, in all, threads started by the test get to end after it
MARKER = "leaves_running"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(reason): the test may leave asyncio tasks or threads running "
                                       "when it ends (a fixture stops them); localive.testing.pytest_plugin")


def _describe(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
    where = f" ({code.co_filename}:{code.co_firstlineno})" if code is not None else ""
    return f"{task.get_name()}: {getattr(coro, '__qualname__', coro)!r}{where}"


def _watched(test: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Coroutine[Any, Any, Any]]:
    @functools.wraps(test)
    async def watched(*args: Any, **kwargs: Any) -> Any:
        before = asyncio.all_tasks()
        result = await test(*args, **kwargs)
        for _ in range(LOOP_PASSES):
            await asyncio.sleep(0)
        current = asyncio.current_task()
        left = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
        if left:
            for task in left:
                task.cancel()
            await asyncio.wait(left, timeout=5)
            pytest.fail(f"the test left {len(left)} asyncio task(s) running on its event loop:\n  "
                        + "\n  ".join(_describe(t) for t in left), pytrace=False)
        return result

    return watched


def _counted(thread: threading.Thread) -> bool:
    if thread.daemon or isinstance(thread, executor_processes._ExecutorManagerThread):
        return False
    return getattr(thread, "_target", None) is not executor_threads._worker


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, None]:
    if item.get_closest_marker(MARKER) is not None or not isinstance(item, pytest.Function):
        yield
        return
    threads_before = set(threading.enumerate())
    original = item.obj
    wrap = inspect.iscoroutinefunction(original)
    if wrap:  # pytest-asyncio runs item.obj on the test's loop: it will run the watched coroutine
        item.obj = _watched(original)
    try:
        outcome = yield
    finally:
        if wrap:
            item.obj = original
    if outcome.excinfo is not None:
        return
    started = [t for t in threading.enumerate() if t not in threads_before and _counted(t)]
    deadline = time.monotonic() + THREAD_GRACE_S
    for thread in started:
        thread.join(max(0.0, deadline - time.monotonic()))
    alive = [t for t in started if t.is_alive()]
    if alive:
        names = ", ".join(f"{t.name} (target {getattr(getattr(t, '_target', None), '__qualname__', '?')})"
                          for t in alive)
        outcome.force_exception(pytest.fail.Exception(
            f"the test left {len(alive)} thread(s) running: {names}", pytrace=False))
