"""Client frames to messages without stalling other sessions (security finding F2).

Parsing is pure (`protocol.parse`) but not free: a 1 MiB frame of many small parts took 370 ms of validation on
the event loop, during which no other session got audio out. Its work is bounded by `protocol.keys.MAX_NODES`;
a small frame (every audio chunk and most messages) is parsed where it arrives, a big one on a small pool of its
own, so that the event loop keeps serving the other sessions meanwhile. Each connection waits for its own frame
before reading the next, so at most one frame per connection is queued here.

Function declarations (in setup and contextUpdate) are checked and compiled in the same worker: the results are
cached (`tools.functions`), so the session's own check on the event loop is then a cache lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor

from localive.protocol import messages as wire
from localive.protocol.errors import LiveError
from localive.protocol.messages import ClientMessage
from localive.protocol.parse import parse_client_message
from localive.tools.functions import function_tools

INLINE_FRAME_BYTES = 16 * 1024  # parsed on the event loop: well under a millisecond
PARSE_THREADS = 2

_pool = ThreadPoolExecutor(max_workers=PARSE_THREADS, thread_name_prefix="localive-parse")


async def parse_frame(frame: str | bytes) -> ClientMessage:
    """Parse one client frame (raises InvalidArgument). Cancelling is safe: a parse already started finishes in
    its thread (its work is bounded) and its result is dropped."""
    message, _ = await parse_frame_metered(frame)
    return message


async def parse_frame_metered(frame: str | bytes) -> tuple[ClientMessage, float]:
    """`parse_frame`, and the seconds of work the parse took: on a worker its thread's CPU time (not the wait for
    the worker); inline, the event loop's time (`perf_counter`: the parse runs there without waiting, and that
    time is what the other sessions wait for; `thread_time` is a system call, measured at ~10 % of the event
    loop's time with 150 sessions sending audio). A frame that fails to parse raises `FrameRefused`, which
    carries its cost too."""
    if len(frame) <= INLINE_FRAME_BYTES:
        started = time.perf_counter()
        try:
            return parse_client_message(frame), time.perf_counter() - started
        except LiveError as exc:
            raise FrameRefused(exc, time.perf_counter() - started) from None
    outcome, cost_s = await asyncio.get_running_loop().run_in_executor(_pool, _parse_and_prepare, frame)
    if isinstance(outcome, LiveError):
        raise FrameRefused(outcome, cost_s)
    return outcome, cost_s


class FrameRefused(Exception):
    """A frame that did not parse: the error to close with, and what parsing it cost."""

    def __init__(self, error: LiveError, cost_s: float) -> None:
        super().__init__(error.reason)
        self.error = error
        self.cost_s = cost_s


def _parse_and_prepare(frame: str | bytes) -> tuple[ClientMessage | LiveError, float]:
    started = time.thread_time()
    try:
        message = parse_client_message(frame)
    except LiveError as exc:
        return exc, time.thread_time() - started
    tools = message.tools if isinstance(message, wire.Setup) else None
    if isinstance(message, wire.ContextUpdate) and message.tools is not None:
        tools = message.tools.tools
    if tools:
        with contextlib.suppress(LiveError):  # the session checks again, and refuses what is wrong
            function_tools(tools)
    return message, time.thread_time() - started
