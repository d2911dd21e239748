"""The fault stage: one connection's outgoing messages, sent at the times an emulator script's `[faults]` dictate.

`FaultStage.pipe(source)` takes server messages (dicts, and `Close` objects) from any queue-like `source` with an
async `get()` — a session's outbox (server/live_ws.py), or a replay of recorded messages — and yields them in the
order and at the times the faults ask for:

* in order, each no earlier than the one before it (the *chain*), except transcriptions when
  `transcript_delay_ms` holds them back: each leaves that long after it was taken, and what follows overtakes it;
* output audio (`modelTurn` parts of `audio/pcm`) paced at `audio_pace` of real time (a chunk of d seconds takes
  d / pace to "arrive"), or held and released at every multiple of `audio_burst_ms` since the stage started;
  what follows the audio waits behind it;
* a spurious `{"serverContent": {"interrupted": true}}` `interrupted_delay_ms` after turn N's `turnComplete`;
* a close (1011 "Internal error encountered.") `close_after_tool_call_ms` after a `toolCall`, in the chain: what the
  session sends after the call never leaves;
* silence after `silent_after_turns` turnCompletes: everything taken later is dropped (the source is still
  drained, so the session carries on), except a `Close`, which still ends the connection.

A `Close` ends the pipe once yielded. Memory is bounded: at most `hold_max` messages are held (plus the injected
ones, at most one per message taken); when the hold is full the stage stops taking from the source, so the
source's own bound applies backpressure (a session's outbox pauses its producers). Timers run on the `clock`
(a `VirtualClock` in tests). The stage's two tasks (the pending `get()` and the timer) are its own, and cancelled
when the pipe ends, is closed (`contextlib.aclosing`) or is cancelled: cancelling is safe, except that a message
taken and not yet yielded is lost (the connection is ending).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import AsyncGenerator
from typing import Any, Protocol

from localive.clock import SYSTEM_CLOCK, Clock
from localive.protocol import server_messages as out
from localive.protocol.errors import Close, ScriptedFault, close_for
from localive.protocol.faults import Faults
from localive.protocol.server_messages import ServerMessage

HOLD_MAX = 64  # messages held at most (each at most one audio chunk: 200 ms of 24 kHz PCM, about 13 KB as base64)
TRANSCRIPTIONS = frozenset({"inputTranscription", "outputTranscription"})
DEFAULT_AUDIO_RATE_HZ = 24000  # an output audio part's rate when its mimeType does not say

Outgoing = ServerMessage | Close


class MessageSource(Protocol):
    async def get(self) -> Outgoing:
        """The next message; waits while there is none. Cancelling must be safe (nothing taken)."""
        ...


class FaultStage:
    """One connection's fault stage. `pipe` is called once."""

    def __init__(self, faults: Faults, *, clock: Clock = SYSTEM_CLOCK, hold_max: int = HOLD_MAX) -> None:
        if hold_max < 1:
            raise ValueError("hold_max must be at least 1")
        self.faults = faults
        self.turns = 0  # turnCompletes taken
        self._clock = clock
        self._hold_max = hold_max
        self._held: list[tuple[float, int, Outgoing]] = []  # a heap of (due, order taken, message)
        self._order = itertools.count()
        self._chain_due = -math.inf  # the latest due time in the chain: what comes next leaves no earlier
        self._transcript_due = -math.inf
        self._silent_after: int | None = -1 if faults.silent_after_turns == 0 else None  # drop what comes later
        self._origin = 0.0
        self._piped = False

    @property
    def held(self) -> int:
        """Messages held now (taken from the source, not yet yielded)."""
        return len(self._held)

    async def pipe(self, source: MessageSource) -> AsyncGenerator[Outgoing, None]:
        """Yield `source`'s messages at the times the faults dictate, until a `Close` (yielded last)."""
        if self._piped:
            raise RuntimeError("a FaultStage pipes one source")
        self._piped = True
        self._origin = self._clock.monotonic()
        getter: asyncio.Task[Outgoing] | None = None
        timer: asyncio.Task[None] | None = None
        timer_due = 0.0
        try:
            while True:
                while self._held and self._held[0][0] <= self._clock.monotonic():
                    _, order, message = heapq.heappop(self._held)
                    if isinstance(message, Close):
                        yield message
                        return
                    if self._silent_after is None or order <= self._silent_after:
                        yield message
                if not self._held:  # nothing to time: wait for the source alone (no task a message)
                    if getter is None:
                        self._take(await source.get())
                    else:
                        self._take(await getter)
                        getter = None
                    continue
                head = self._held[0][0]
                if timer is None or timer_due != head:
                    if timer is not None:
                        timer.cancel()
                    timer, timer_due = asyncio.create_task(self._clock.sleep(head - self._clock.monotonic())), head
                if getter is None and len(self._held) < self._hold_max:
                    getter = asyncio.create_task(source.get())
                waits: set[asyncio.Future[Any]] = {timer} if getter is None else {timer, getter}
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if timer in done:
                    timer = None
                if getter is not None and getter in done:
                    self._take(getter.result())
                    getter = None
        finally:
            tasks = [task for task in (getter, timer) if task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _take(self, message: Outgoing) -> None:
        """Hold a message taken from the source until its time, with what the faults inject after it."""
        now = self._clock.monotonic()
        order = next(self._order)
        if isinstance(message, Close):
            self._chain(max(now, self._chain_due), order, message)
            return
        if self._silent_after is not None:
            return
        content = message.get("serverContent")
        content = content if isinstance(content, dict) else {}
        faults = self.faults
        if faults.transcript_delay_ms and content and set(content) <= TRANSCRIPTIONS:
            self._transcript_due = max(now + faults.transcript_delay_ms / 1000, self._transcript_due)
            heapq.heappush(self._held, (self._transcript_due, order, message))
            return
        due = max(now, self._chain_due)
        if (faults.audio_pace or faults.audio_burst_ms) and (audio_s := audio_seconds(content)):
            if faults.audio_pace:
                due += audio_s / faults.audio_pace
            elif faults.audio_burst_ms:
                burst_s = faults.audio_burst_ms / 1000
                due = self._origin + math.ceil((due - self._origin) / burst_s - 1e-9) * burst_s
        self._chain(due, order, message)
        if "toolCall" in message and faults.close_after_tool_call_ms is not None:
            self._chain(due + faults.close_after_tool_call_ms / 1000, next(self._order),
                        close_for(ScriptedFault()))  # the real service's words: "Internal error encountered."
        if content.get("turnComplete"):
            self.turns += 1
            if self.turns == faults.interrupted_after_turn:
                heapq.heappush(self._held, (due + faults.interrupted_delay_ms / 1000, next(self._order),
                                            out.interrupted()))
            if self.turns == faults.silent_after_turns:
                self._silent_after = order

    def _chain(self, due: float, order: int, message: Outgoing) -> None:
        self._chain_due = due
        heapq.heappush(self._held, (due, order, message))


def audio_seconds(content: dict[str, Any]) -> float:
    """How long the output audio in a `serverContent` plays (0.0: none), from its base64 length and its rate."""
    turn = content.get("modelTurn")
    parts = turn.get("parts") if isinstance(turn, dict) else None
    seconds = 0.0
    for part in parts if isinstance(parts, list) else []:
        inline = part.get("inlineData") if isinstance(part, dict) else None
        if not isinstance(inline, dict) or not str(inline.get("mimeType", "")).startswith("audio/pcm"):
            continue
        data = str(inline.get("data", ""))
        size = len(data) * 3 // 4 - (len(data) - len(data.rstrip("=")))  # bytes, without decoding
        seconds += size / 2 / _rate_of(str(inline["mimeType"]))
    return seconds


def _rate_of(mime_type: str) -> int:
    for parameter in mime_type.split(";")[1:]:
        name, _, value = parameter.strip().partition("=")
        if name == "rate" and value.isdigit() and int(value) > 0:
            return int(value)
    return DEFAULT_AUDIO_RATE_HZ
