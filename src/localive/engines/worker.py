"""The one worker thread an embedded engine computes on, counting what it has to do (`idle`)."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class CountedWorker(concurrent.futures.ThreadPoolExecutor):
    """A one-thread executor that knows whether anything is waiting or running on it: work done only to be ready
    sooner (session/foresight.py) starts only while it is `idle`. A job whose caller gave up counts until the
    thread has finished it (or it was cancelled before it started)."""

    def __init__(self, thread_name_prefix: str) -> None:
        super().__init__(max_workers=1, thread_name_prefix=thread_name_prefix)
        self._jobs = 0  # done callbacks run on the worker thread: under _lock
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        with self._lock:
            self._jobs += 1
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._job_done(None)
            raise
        future.add_done_callback(self._job_done)
        return future

    def _job_done(self, _: object) -> None:
        with self._lock:
            self._jobs -= 1

    @property
    def idle(self) -> bool:
        with self._lock:
            return self._jobs == 0
