"""How long a connection (and a session without context compression) may last, and the GoAway warning before.

Timers run on an injectable `Clock`, so tests can run them in virtual time. Defaults: no limit (a local server has
no reason to cut connections); `GEMINI_LIMITS` reproduces the real service: ~10 min connections with GoAway a
minute before, and 15 min sessions without `contextWindowCompression`.
"""

from __future__ import annotations

from dataclasses import dataclass

from localive.clock import Clock
from localive.protocol import server_messages as out
from localive.protocol.errors import INTERNAL, LiveError, ShuttingDown, close_for
from localive.session.outbox import Outbox

DEADLINE_REASON = "Deadline expired before operation could complete."  # Gemini's (docs/protocol-notes.md#lifetimes)


class DeadlineExpired(LiveError):
    """The connection's or the session's time is up: a planned end, resumable (1011 and Gemini's words)."""

    close_code = INTERNAL
    default_reason = DEADLINE_REASON
    blame = "nobody"


@dataclass(frozen=True)
class Limits:
    max_connection_s: float | None = None  # None: connections are not cut
    goaway_before_s: float = 60.0
    max_session_s: float | None = None  # a session's total age without contextWindowCompression


LOCAL_LIMITS = Limits()
GEMINI_LIMITS = Limits(max_connection_s=600.0, goaway_before_s=60.0, max_session_s=900.0)


def deadline_s(limits: Limits, *, connected_at: float, session_started_at: float, compressed: bool) -> float | None:
    """When (clock time) this connection must end, or None."""
    ends = []
    if limits.max_connection_s is not None:
        ends.append(connected_at + limits.max_connection_s)
    if limits.max_session_s is not None and not compressed:
        ends.append(session_started_at + limits.max_session_s)
    return min(ends) if ends else None


async def run_out(deadline: float, limits: Limits, clock: Clock, outbox: Outbox) -> None:
    """Send `goAway` `goaway_before_s` before the deadline, then close the connection (resumably) at it."""
    warn_at = deadline - limits.goaway_before_s
    if (wait := warn_at - clock.time()) > 0:
        await clock.sleep(wait)
    left = max(0.0, deadline - clock.time())
    await outbox.put(out.go_away(round(left)))
    if left > 0:
        await clock.sleep(left)
    await outbox.put(close_for(DeadlineExpired()))


async def leave_by(deadline: float, clock: Clock, outbox: Outbox) -> None:
    """The server is draining: `goAway` with the time left now, then close (1001, resumable) at `deadline`."""
    left = max(0.0, deadline - clock.time())
    await outbox.put(out.go_away(round(left)))
    if left > 0:
        await clock.sleep(left)
    await outbox.put(close_for(ShuttingDown()))
