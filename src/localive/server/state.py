"""What the endpoints share: settings, the model registry, the loaded engines, and admission control.

Admission has three counters (security finding F13). A Live connection first waits for its setup: it counts
against ``max_awaiting_setup`` and its client address's ``max_connections_per_ip``, and holds no session slot, so
sockets that never send a setup cannot keep real sessions out. Only once its first message has arrived does it
take one of the ``max_sessions`` slots. Each refusal is a 1013 at once, which clients may retry.

Draining (SIGTERM, server/runner.py): `drain` stops admitting sessions (each refusal a 1013 the client may retry
elsewhere; `/readyz` says so, for the load balancer), asks every open session to leave by the drain's deadline
(`goAway`, a fresh resumption handle, then 1001: session/lifetime.py `leave_by`), and returns once all have left.

The state holds the server's one `Clock` (localive/clock.py) and hands it on: to each session, to its access policy
(ephemeral tokens' minting, redemption and expiry) and to the work budgets. A session store is built before the
state; whoever builds both gives the store the same clock (cli.py does).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from localive.clock import SYSTEM_CLOCK, Clock
from localive.engines.llm.pool import LLMPool
from localive.models.registry import ModelRegistry
from localive.protocol.errors import Overloaded, ShuttingDown
from localive.server.auth import Access
from localive.server.budget import SHARE, WorkBudgets
from localive.server.faults import ServerFaults
from localive.server.load import BUSY_REASON, LoadMeter
from localive.server.metrics import ServerMetrics
from localive.session.engines import Engines
from localive.session.lifetime import LOCAL_LIMITS, Limits
from localive.session.watchdog import DEFAULT_TURN_WATCHDOG_S
from localive.stores.base import SessionStore

if TYPE_CHECKING:
    from localive.server.answerer import Answerer

log = logging.getLogger("localive.server")

IPV6_PREFIX = 64  # one IPv6 client usually holds a whole /64: count it as one address
DRAIN_GRACE_S = 5.0  # after the drain's deadline, for the last close frames (a client that reads nothing is cut
# by its write deadline meanwhile: server/live_ws.py)


class Leaving(Protocol):
    """An open session as a drain sees it (a LiveSession, or one answered elsewhere: server/answerer.py)."""

    def go_away(self, deadline: float) -> None: ...


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8765
    plain_port: int | None = None
    max_sessions: int = 100
    max_message_bytes: int = 1024 * 1024
    outbox_size: int = 256
    setup_timeout_s: float = 10.0  # from the handshake to the setup message
    write_timeout_s: float = 15.0  # one message to the client; a client that reads nothing for this long is cut
    turn_watchdog_s: float | None = DEFAULT_TURN_WATCHDOG_S  # a turn silent this long ends its session (None: off)
    max_awaiting_setup: int = 256  # connections that have not sent their setup yet
    work_share: float = SHARE  # of a CPU core, per connection, for its messages' parsing (server/budget.py)
    max_connections_per_ip: int = 32  # Live connections of one client address (0: no cap; loopback is not counted)
    allow_hosts: tuple[str, ...] = ()  # --allow-host, besides localhost, 127.0.0.1, ::1 and --host
    allow_origins: tuple[str, ...] = ()  # --allow-origin, besides the server's own pages
    max_serving_cores: float | None = None  # new sessions refused above this much serving work (server/load.py)
    admission_by_load: bool = True  # False: only max_sessions refuses (--admission off)


def address_key(host: str | None) -> str | None:
    """What the per-address cap counts a client as: its IPv4 address, its IPv6 /64; None for a loopback client
    (this machine's own programs, and every client of a reverse proxy on this machine) and for an unknown one."""
    if not host:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)


@dataclass
class Connection:
    """One Live connection's place in the counters."""

    address: str | None
    awaiting_setup: bool = True


class Connections:
    """Live connections per client address and those still waiting for their setup."""

    def __init__(self, max_per_address: int, max_awaiting_setup: int) -> None:
        self.max_per_address = max_per_address
        self.max_awaiting_setup = max_awaiting_setup
        self.per_address: Counter[str] = Counter()
        self.awaiting_setup = 0

    def open(self, client_host: str | None) -> Connection:
        """Count a new connection; raises Overloaded (1013) when its address or the setup queue is full."""
        address = address_key(client_host)
        if address is not None and self.max_per_address and self.per_address[address] >= self.max_per_address:
            raise Overloaded("Too many connections from this address; close some and try again later.")
        if self.awaiting_setup >= self.max_awaiting_setup:
            raise Overloaded()
        if address is not None:
            self.per_address[address] += 1
        self.awaiting_setup += 1
        return Connection(address)

    def setup_arrived(self, connection: Connection) -> None:
        if connection.awaiting_setup:
            connection.awaiting_setup = False
            self.awaiting_setup -= 1

    def close(self, connection: Connection) -> None:
        self.setup_arrived(connection)
        if connection.address is not None:
            self.per_address[connection.address] -= 1
            if self.per_address[connection.address] <= 0:
                del self.per_address[connection.address]
            connection.address = None


@dataclass
class ServerState:
    settings: ServerSettings
    registry: ModelRegistry
    llms: LLMPool
    engines: Engines
    store: SessionStore | None = None  # resumable session state (None: sessionResumption is refused)
    limits: Limits = LOCAL_LIMITS  # connection lifetime, GoAway, session age without compression
    access: Access = field(default_factory=Access)  # API keys and ephemeral tokens (default: open)
    active_sessions: int = 0
    sessions_served: int = field(default=0)
    stalls: int = 0  # turns (and session-store calls) the watchdog ended: session/watchdog.py
    connections: Connections = field(init=False)
    budgets: WorkBudgets = field(init=False)  # server work per client address (server/budget.py)
    clock: Clock = SYSTEM_CLOCK  # the server's one clock: sessions, tokens, budgets (and the store, given by cli)
    metrics: ServerMetrics = field(default_factory=ServerMetrics)  # `GET /metrics` (server/metrics.py)
    load: LoadMeter = field(init=False)  # admission by load (server/load.py); sampled while `load.run` runs
    draining: bool = False  # no new session is admitted: the server is shutting down (drain)
    sessions: set[Leaving] = field(default_factory=set)  # the open ones (those admitted and not yet released)
    answerer: Answerer | None = None  # who answers sessions instead of the models: relay, replay (server/answerer.py)
    faults: ServerFaults | None = None  # an emulator script's [faults] (server/faults.py); None: none, no cost
    _emptied: asyncio.Event | None = field(default=None, init=False)  # set when the last session leaves a drain
    _deadline: float = field(default=0.0, init=False)  # the drain's (clock time)

    def __post_init__(self) -> None:
        self.connections = Connections(self.settings.max_connections_per_ip, self.settings.max_awaiting_setup)
        self.budgets = WorkBudgets(share=self.settings.work_share, clock=self.clock)
        self.access.clock = self.clock  # token times are the server's time
        self.load = LoadMeter(getattr(self.engines, "vad_load", None),
                              max_serving_cores=self.settings.max_serving_cores,
                              enabled=self.settings.admission_by_load)
        # getattr: tests build a state without engines
        self.metrics.watch(sessions_open=lambda: self.active_sessions,
                           vad_load=getattr(self.engines, "vad_load", None), load=self.load)

    def admit(self, *, resuming: bool = False) -> None:
        """Take a session slot; raises Overloaded (1013) when the server is draining, full, or — for a new session,
        not one `resuming` with a handle — too loaded to keep its sessions' latency (server/load.py)."""
        if self.draining:
            raise Overloaded(ShuttingDown.default_reason)
        if self.active_sessions >= self.settings.max_sessions:
            raise Overloaded()
        if not resuming and (why := self.load.overloaded(self.active_sessions)) is not None:
            self.metrics.refused_for_load.inc()
            log.info("a new session refused (1013): %s", why)
            raise Overloaded(BUSY_REASON)
        self.active_sessions += 1
        self.sessions_served += 1

    def opened(self, session: Leaving) -> None:
        """An admitted session exists: a drain reaches it, and the load estimate counts it until the meter sees it."""
        self.sessions.add(session)
        self.load.admitted(session)
        if self.draining:  # admitted before the drain began, created after (no await between, but be sure)
            session.go_away(self._deadline)

    def release(self, session: Leaving | None = None) -> None:
        self.active_sessions -= 1
        if session is not None:
            self.sessions.discard(session)
            self.load.released(session)
        if not self.sessions and self._emptied is not None:
            self._emptied.set()

    async def drain(self, drain_s: float) -> None:
        """Refuse new sessions and ask each open one to leave within `drain_s` (`goAway`, then 1001 at the deadline);
        return when all have left, or `drain_s` plus a grace later (real time: a stuck client's socket)."""
        self.draining = True
        self._deadline = self.clock.time() + drain_s
        self._emptied = asyncio.Event()
        for session in list(self.sessions):
            session.go_away(self._deadline)
        if not self.sessions:
            return
        try:
            await asyncio.wait_for(self._emptied.wait(), drain_s + DRAIN_GRACE_S)
        except TimeoutError:
            pass

    def count_stall(self) -> None:
        self.stalls += 1
        self.metrics.stalled()
