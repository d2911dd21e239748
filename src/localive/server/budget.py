"""How much server work a client's messages may cost: a share of a CPU core per connection (security finding F2).

Every frame a client sends costs the server time before the session sees it: receiving and decoding it (about
proportional to its bytes), parsing it (measured in the parse worker for big frames) and applying it to the
session (the event loop's own CPU time while the session handles it). A client that sends
its heaviest messages back to back would otherwise take a whole core from everyone else. So each connection has
a bucket of work seconds, refilled at `share` of a core (2 % by default), with room for a burst; a frame's cost is
taken from it, and when the bucket is empty the connection's reader waits before reading the next frame. The
socket is not read meanwhile, so the client's own sends back up (TCP flow control): nothing piles up in the
server, and other connections, even from the same address, are not slowed.

Closing and reopening a connection must not refill the bucket (a client whose heaviest message is refused would
reconnect and send it again): a connection that ends in debt leaves its debt with its address, and the next
connection from that address starts from it (at most `CARRIED_S` of it, a second's worth: another client behind
the same address, every local client on 127.0.0.1 for instance, waits that second once, not until an attacker's
whole debt is paid), less the cost of a connection itself (`CONNECT_S`), so that reconnecting over and over is
bounded by the same share. Real-time audio costs about 15 % of the share, a 200 KB
video frame a second about 25 %; only floods of the largest messages ever wait. 2 % was chosen with
`python -m benchmarks.attacks`: at 5 %, other sessions' 90th-percentile turns took up to 3 times their idle
time under the heaviest floods.

Buckets fill on the server's `Clock` (its monotonic time), and the reader's wait is a sleep on it (`pay`), so
tests check the rate limit in virtual time. The cost itself is real: CPU seconds measured in the parse worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from localive.clock import SYSTEM_CLOCK, Clock

INGEST_BYTES_PER_S = 50e6  # receiving, unmasking and decoding a frame: its cost estimated from its bytes
SHARE = 0.02  # of a CPU core, per connection
BURST_S = 0.5  # work seconds a connection may spend at once (e.g. a few 1 MiB history messages)
MAX_WAIT_S = 5.0  # longest single wait: well below the SDKs' keepalive timeouts
MAX_DEBTORS = 10_000  # addresses whose debt is remembered
CONNECT_S = 0.02  # a connection's own cost (handshake, session set-up and teardown), charged when it opens
CARRIED_S = 0.02  # the most debt a new connection takes over from its address: a second of its share


@dataclass
class WorkBudget:
    """One connection's bucket. Used from the event loop only."""

    address: str
    level_s: float
    updated: float
    share: float
    burst_s: float
    clock: Clock

    def charge(self, frame_bytes: int, parse_s: float = 0.0) -> float:
        """Take a frame's cost from the bucket; return the seconds the reader should wait before the next read."""
        self.refill()
        self.level_s -= frame_bytes / INGEST_BYTES_PER_S + parse_s
        if self.level_s >= 0:
            return 0.0
        return min(-self.level_s / self.share, MAX_WAIT_S)

    async def pay(self, frame_bytes: int, parse_s: float = 0.0) -> None:
        """`charge`, then wait (on the clock) as long as it says: the rate limit of a connection's reader."""
        if (wait_s := self.charge(frame_bytes, parse_s)) > 0:
            await self.clock.sleep(wait_s)

    def refill(self) -> None:
        """Add what the share earned since the last look (up to the burst)."""
        now = self.clock.monotonic()
        self.level_s = min(self.level_s + (now - self.updated) * self.share, self.burst_s)
        self.updated = now


@dataclass
class WorkBudgets:
    """Hands out a bucket per connection and remembers, per address, the debt of connections that closed in it."""

    share: float = SHARE
    burst_s: float = BURST_S
    clock: Clock = SYSTEM_CLOCK
    _debts: dict[str, tuple[float, float]] = field(default_factory=dict)  # address → (level_s, when)

    def open(self, address: str) -> WorkBudget:
        now = self.clock.monotonic()
        level = self.burst_s
        if (debt := self._debts.pop(address, None)) is not None:  # at most CARRIED_S of it: see the docstring
            level = max(min(debt[0] + (now - debt[1]) * self.share, self.burst_s), -CARRIED_S)
        return WorkBudget(address, level - CONNECT_S, now, self.share, self.burst_s, self.clock)

    def close(self, budget: WorkBudget) -> None:
        budget.refill()
        if budget.level_s < self.burst_s:  # the next connection from there starts where this one ended
            if len(self._debts) >= MAX_DEBTORS:
                self._debts.pop(next(iter(self._debts)))
            self._debts[budget.address] = (budget.level_s, budget.updated)
