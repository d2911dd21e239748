"""The bounded queue of server messages waiting for the transport to send them.

Overflow policy: producers wait (backpressure reaches the model stream, which pauses). Items are tagged with the
turn they belong to, so an interrupted turn's unsent output can be dropped at once instead of being delivered.
A `Close` item asks the transport to close the socket after what precedes it has been sent. `on_put`, when set, is
called with each message queued (the turn watchdog counts them as progress: session/watchdog.py).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from localive.protocol.errors import Close
from localive.protocol.server_messages import ServerMessage


@dataclass(frozen=True)
class Item:
    message: ServerMessage | Close
    turn: int | None = None


class Outbox:
    def __init__(self, maxsize: int = 256) -> None:
        self._items: deque[Item] = deque()
        self._maxsize = maxsize
        self._changed = asyncio.Condition()
        self.on_put: Callable[[], None] | None = None
        self._waiting = 0  # producers in put()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def full(self) -> bool:
        """Whether a message (other than a Close) would have to wait: the client is not taking them."""
        return len(self._items) >= self._maxsize

    @property
    def blocked(self) -> bool:
        """A producer waits for room: the transport has not taken what came before (a client that reads nothing)."""
        return self._waiting > 0

    async def put(self, message: ServerMessage | Close, turn: int | None = None) -> None:
        """Queue a message; waits while the outbox is full. Cancelling is safe (nothing is queued)."""
        async with self._changed:
            self._waiting += 1
            try:
                await self._changed.wait_for(lambda: len(self._items) < self._maxsize or isinstance(message, Close))
            finally:
                self._waiting -= 1
            self._items.append(Item(message, turn))
            self._changed.notify_all()
        if self.on_put is not None:
            self.on_put()

    async def get(self) -> ServerMessage | Close:
        """Take the next message; waits while empty. Cancelling is safe (nothing is taken)."""
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._items))
            item = self._items.popleft()
            self._changed.notify_all()
            return item.message

    async def drop_turn(self, turn: int) -> list[ServerMessage]:
        """Remove and return the unsent messages of a turn."""
        async with self._changed:
            dropped = [i.message for i in self._items if i.turn == turn and not isinstance(i.message, Close)]
            self._items = deque(i for i in self._items if i.turn != turn or isinstance(i.message, Close))
            self._changed.notify_all()
            return dropped
