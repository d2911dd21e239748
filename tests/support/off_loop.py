"""Does a model call run off the event loop? Told without timing: the call waits until the loop has run."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


async def runs_off_the_loop(target: object, method: str, work: Awaitable[T]) -> tuple[bool, T]:
    """Await `work` with `target.method` (the blocking model call inside it) watched: True when every call ran on
    another thread and the event loop ran a callback while the call was in progress. A call made on the loop's
    thread blocks the loop, which then cannot run it: the call gives up after 30 s (only a broken engine waits)."""
    real = getattr(target, method)
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()
    seen: list[bool] = []

    def watched(*args: Any, **kwargs: Any) -> Any:
        loop_ran = threading.Event()
        loop.call_soon_threadsafe(loop_ran.set)
        seen.append(threading.get_ident() != loop_thread and loop_ran.wait(timeout=30))
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(target, method, watched)
        result = await work
    return bool(seen) and all(seen), result
