"""Pages are read in processes of their own, at a lower CPU priority (security finding F4).

Reading a hostile page is bounded (url_text, url_html: about a second of CPU at most), but it is Python code: in a
thread of the server it holds the interpreter lock, and while one runs, every step of the event loop waits for
the lock (a text turn of another session took 3.8 times as long while one client kept the readers busy). In a
process of its own it takes none of the server's interpreter, and at `NICENESS` the kernel gives the server's
threads the CPU first. The processes are started on first use (spawned: a fork of a server with loaded models
and threads would be neither small nor safe) and shared by every fetcher of the process, for its lifetime (the
executor's own exit handling ends them); a reader that dies is replaced at the next page.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from localive.tools.url_text import PageText, page_text

READERS = 2  # processes; the fetcher's parse threads (url_text.ParsePool) decide how many pages go at once
NICENESS = 10

_lock = threading.Lock()
_executor: ProcessPoolExecutor | None = None


def read_page(data: bytes, declared: str | None, is_html: bool, *, max_chars: int, max_text_chars: int,
              deadline: float | None) -> tuple[PageText, float]:
    """`url_text.page_text` in a reader process, and the CPU seconds it took there. Blocking: call it from a
    thread. The deadline is on the monotonic clock, which the processes of one machine share."""
    executor = _readers()
    try:
        return executor.submit(_read, data, declared, is_html, max_chars, max_text_chars, deadline).result()
    except BrokenProcessPool:  # a reader was killed (e.g. by the OOM killer): start afresh for the next page
        _replace(executor)
        raise


def _readers() -> ProcessPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ProcessPoolExecutor(READERS, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_lower_priority)
        return _executor


def _replace(broken: ProcessPoolExecutor) -> None:
    global _executor
    with _lock:
        if _executor is broken:
            _executor = None
    broken.shutdown(wait=False, cancel_futures=True)


def _lower_priority() -> None:
    os.nice(NICENESS)


def _read(data: bytes, declared: str | None, is_html: bool, max_chars: int, max_text_chars: int,
          deadline: float | None) -> tuple[PageText, float]:
    started = time.process_time()
    page = page_text(data, declared, is_html, max_chars=max_chars, max_text_chars=max_text_chars, deadline=deadline)
    return page, time.process_time() - started
