"""Who may start a sandboxed run now: a bounded number at once, a few per owner, the rest in a fair, bounded line.

Without it the only limit was the pool of 32 uids, first come first served with no deadline: one client with 32
sessions of ``time.sleep(60)`` made everybody else's code wait (security finding F11), and 32 runs at once on a
2-core host were 32 times a run's memory. Now:

* at most ``total`` runs at once in this server (``SandboxLimits.concurrent_runs``);
* at most ``per_owner`` runs at once per owner (``SandboxLimits.runs_per_owner``). The owner is an opaque string the
  caller passes: who asked (an API key's principal, a connection). A run without an owner counts only against the
  total;
* a free slot goes to the waiting run whose owner has the fewest runs going, the one that came first among equals:
  FIFO, except that an owner who already holds slots does not go before one who holds none, and one at its limit
  does not hold up the others;
* the wait is bounded: :meth:`Admission.enter` returns False at its deadline, and the run is not started.

Slots are handed over under a thread lock and each waiter is woken on its own event loop, so that one sandbox can
serve several loops and threads (the server has one loop; tests have many).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field

log = logging.getLogger("localive.tools.sandbox")


@dataclass(eq=False)
class _Ticket:
    owner: str | None
    number: int
    loop: asyncio.AbstractEventLoop
    turn: asyncio.Future[None]
    granted: bool = field(default=False)


class Admission:
    """At most ``total`` runs at once, at most ``per_owner`` for one owner; the others wait, fairly, for a while."""

    def __init__(self, total: int, per_owner: int) -> None:
        if total < 1 or per_owner < 1:
            raise ValueError("concurrent_runs and runs_per_owner must be at least 1")
        self.total, self.per_owner = total, per_owner
        self._lock = threading.Lock()
        self._going = 0
        self._by_owner = Counter[str]()
        self._waiting: list[_Ticket] = []
        self._numbers = itertools.count()

    async def enter(self, owner: str | None, timeout_s: float) -> bool:
        """Wait for a slot for a run of ``owner``: True once it has one (then :meth:`leave` must follow), False if
        ``timeout_s`` passed first. Cancelling it gives up the place in line, or the slot."""
        loop = asyncio.get_running_loop()
        with self._lock:
            ticket = _Ticket(owner, next(self._numbers), loop, loop.create_future())
            self._waiting.append(ticket)
            self._hand_out()
            if ticket.granted:
                return True
            ahead = sum(1 for t in self._waiting if t.number < ticket.number)
            going, theirs = self._going, self._by_owner[owner] if owner is not None else 0
        log.info("sandbox busy: a run of %s waits (%d of %d runs going, %d of them its owner's; %d waiting before it); "
                 "it gives up after %.0f s", owner or "an unnamed caller", going, self.total, theirs, ahead, timeout_s)
        try:
            async with asyncio.timeout(timeout_s):
                await ticket.turn
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            with self._lock:
                if ticket.granted:
                    self._release(owner)
                else:
                    self._waiting.remove(ticket)
            raise
        with self._lock:
            if not ticket.granted:  # the deadline passed first (a slot handed over at that very moment is kept)
                self._waiting.remove(ticket)
            return ticket.granted

    def leave(self, owner: str | None) -> None:
        """Give back the slot of a run of ``owner`` that :meth:`enter` admitted."""
        with self._lock:
            self._release(owner)

    def going(self) -> int:
        with self._lock:
            return self._going

    def _release(self, owner: str | None) -> None:
        self._going -= 1
        if owner is not None:
            self._by_owner[owner] -= 1
            if not self._by_owner[owner]:
                del self._by_owner[owner]
        self._hand_out()

    def _hand_out(self) -> None:
        """Give free slots to waiting runs: fewest going for their owner first, then first come. Under the lock."""
        while self._going < self.total:
            eligible = [t for t in self._waiting if t.owner is None or self._by_owner[t.owner] < self.per_owner]
            if not eligible:
                return
            ticket = min(eligible, key=lambda t: (self._by_owner[t.owner] if t.owner is not None else 0, t.number))
            self._waiting.remove(ticket)
            try:
                ticket.loop.call_soon_threadsafe(_wake, ticket.turn)
            except RuntimeError:  # its event loop is closed, so its task is gone: the slot goes to the next one
                continue
            ticket.granted = True
            self._going += 1
            if ticket.owner is not None:
                self._by_owner[ticket.owner] += 1


def _wake(turn: asyncio.Future[None]) -> None:
    if not turn.done():  # done: the waiter timed out or was cancelled meanwhile, and sees ``granted`` itself
        turn.set_result(None)
