"""One event stream per session: client messages and the session's internal events go through one bounded queue,
consumed by one task (the session's event loop), so that they are applied one at a time — turns are started and
interrupted only there, never by two tasks at once.

- `ClientMessage`: a parsed client message; `LiveSession.handle` queues it and awaits `done`, so that a LiveError
  from applying it still reaches the transport's reader as a raise.
- `BackchannelHeard`: the words of a short utterance heard while the model talked (its judge's task transcribed
  them): let pass as a backchannel, or taken as the user's turn.
- `GoingAway`: the server is draining (server/drain.py): tell the client, give it a fresh resumption handle if
  the session is between turns, and end the session at the drain's deadline.
- `TurnEnded`: a model turn answered in full (its audio played out): what waited for it (NON_BLOCKING results, a
  next turn asked for with NO_INTERRUPTION or WHEN_IDLE) can go on.

Internal events are posted without waiting: their number is bounded by construction (each comes from a task the
event loop started, which posts at most one), so a full queue there is a bug (RuntimeError). Client messages wait
for room among their own MESSAGE_ROOM places. The event loop never awaits anything that needs another event to be
applied: a BLOCKING function call's answer, for one, is awaited by the model turn, not by the loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from localive.protocol import messages as wire

if TYPE_CHECKING:
    from localive.session.hearing import Heard
    from localive.session.tasks import Outcome
    from localive.session.turn import Turn

MESSAGE_ROOM = 4  # client messages queued at most (the transport sends one at a time)
INTERNAL_ROOM = 32  # internal events queued at most (a few at a time, by construction)


@dataclass(frozen=True)
class ClientMessage:
    message: wire.ClientMessage
    count: int = 1  # client messages it stands for (audio chunks the transport joined: server/live_ws.py)
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass(frozen=True)
class BackchannelHeard:
    words: str
    judge: asyncio.Task[None]  # only the latest judge's verdict counts
    heard: asyncio.Task[Outcome[Heard]]


@dataclass(frozen=True)
class TurnEnded:
    turn: Turn


@dataclass(frozen=True)
class GoingAway:
    deadline: float  # clock time: the session ends then


Event = ClientMessage | BackchannelHeard | TurnEnded | GoingAway


class EventQueue:
    def __init__(self) -> None:
        self._events: asyncio.Queue[Event] = asyncio.Queue(MESSAGE_ROOM + INTERNAL_ROOM)
        self._message_room = asyncio.Semaphore(MESSAGE_ROOM)

    async def send(self, message: ClientMessage) -> None:
        """Queue a client message (waits for room) and wait until it has been applied; raises what applying it
        raised."""
        await self._message_room.acquire()  # given back when the event loop takes the message
        self._events.put_nowait(message)
        # a sender that stopped waiting (cancelled) leaves the outcome to nobody: taken here, it is not logged
        message.done.add_done_callback(lambda done: done.cancelled() or done.exception())
        await asyncio.shield(message.done)  # a sender cancelled does not cancel what is being applied

    def post(self, event: Event) -> None:
        """Queue an internal event, without waiting."""
        try:
            self._events.put_nowait(event)
        except asyncio.QueueFull:
            raise RuntimeError("the session's event queue is full of internal events") from None

    async def get(self) -> Event:
        event = await self._events.get()
        if isinstance(event, ClientMessage):
            self._message_room.release()
        return event

    def close(self) -> None:
        """The session ends: client messages not applied are dropped (their senders return)."""
        while not self._events.empty():
            event = self._events.get_nowait()
            if isinstance(event, ClientMessage) and not event.done.done():
                event.done.set_result(None)
