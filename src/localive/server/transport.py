"""uvicorn's HTTP and WebSocket protocols with the bounds uvicorn leaves out (security findings F13 and F14).

uvicorn closes idle keep-alive connections, but it waits forever for a request whose headers come one byte at a
time (slowloris), and it never gives up on a client that stops reading: a WebSocket send waits until the socket
is writable again, and closing waits until the send buffer is flushed. Each such connection holds a file
descriptor, and a Live connection also holds a session slot. Here:

- **Request deadline** (``--header-timeout``): from the moment a connection opens, or its previous response
  ends, a whole request (headers, and a body if it has one) must arrive within this time, or the connection is
  closed. A WebSocket upgrade ends the deadline when its headers are in.
- **Connection bound** (``--max-connections``, default: the descriptor limit less a reserve): when every place is
  taken, a new connection pushes out the connection that has waited longest for its request (under a slowloris
  flood that is an attacker's, while a real request, sent at once, gets through); if no connection is waiting,
  the newcomer gets 503. The server therefore never runs out of descriptors, and ``/healthz`` keeps answering.
- **Transport abort**: WebSocket handlers find ``abort`` under ``scope["extensions"][ABORT_EXTENSION]`` and use it
  when a send misses its write deadline (server/live_ws.py); ``waiting`` there says whether the client's next
  message is already in (the reader joins audio chunks that are). A WebSocket connection still open
  ``KEEPALIVE_GRACE_S`` after its ping went unanswered, or ``CLOSE_GRACE_S`` after its handler returned, is
  aborted too: uvicorn's close would wait for ever for a client that reads nothing to take the close frame.

- **Frame-by-frame reading** (security finding F2): uvicorn hands each chunk the socket gives (up to 256 KiB) to
  the WebSocket parser at once, which decompresses and queues every message in it. With permessage-deflate a
  256 KiB chunk can hold hundreds of highly compressed messages of up to 1 MiB each: a client flooding them made one
  read take 0.25 s of the event loop, and after the server's close frame, such reads went on until the client's
  close reply. Here the parser gets `FEED_BYTES` at a time and no more once a message is waiting for the session
  (the rest waits until the session takes it); after the close frame at most `DISCARDED_AFTER_CLOSE` messages
  are read and dropped, then the connection is aborted. The socket itself is paused only when `UNREAD_MAX_BYTES`
  wait unparsed, not for every message as uvicorn does: pausing and resuming a socket costs two epoll calls and
  their Python around them, ~10 % of the event loop's time with 150 sessions sending 20 ms audio chunks.

Deadlines here are the event loop's timers (``call_later``): they bound real sockets, in real time. The guard's
own bookkeeping (which connection has waited longest, how often to warn) reads the server's `Clock`.

These classes touch uvicorn's protocol internals (``cycle``, ``transport``, ``disconnected``, ``run_asgi``),
which are stable across the 0.3x–0.5x releases; tests/integration/test_transport_attacks.py replays each attack
against a real server, so a uvicorn change that breaks them fails there.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from localive.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger("localive.server")

ABORT_EXTENSION = "localive.transport"  # scope["extensions"][ABORT_EXTENSION]["abort"]: drop the connection now
CLOSE_GRACE_S = 15.0  # after a WebSocket handler returns (uvicorn's close handshake waits 10 s)
KEEPALIVE_GRACE_S = 5.0  # after a ping went unanswered (ws_ping_timeout) and uvicorn began to close
FD_RESERVE = 128  # descriptors kept for everything but client connections: models, databases, the sandbox
MIN_CONNECTIONS = 32
FEED_BYTES = 4096  # given to the WebSocket parser at a time
UNREAD_MAX_BYTES = 64 * 1024  # read ahead of the parser, at most (plus one read): then the socket is paused
DISCARDED_AFTER_CLOSE = 16  # messages a client may still send after the server's close frame
REPORT_EVERY_S = 10.0  # at most one warning this often about pushed-out or refused connections
_BUSY_BODY = b"Too many connections; try again shortly.\n"
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
         b"content-length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY))


def default_max_connections() -> int:
    """The descriptor limit of this process less FD_RESERVE (at least MIN_CONNECTIONS)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(MIN_CONNECTIONS, soft - FD_RESERVE)


class ConnectionGuard:
    """Every open client connection of all listeners, and since when each has been waiting for a request."""

    def __init__(self, max_connections: int, header_timeout_s: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self.max_connections = max_connections
        self.header_timeout_s = header_timeout_s
        self.clock = clock
        self.waiting_since: dict[asyncio.Protocol, float | None] = {}  # None: serving a request, or a WebSocket
        self.pushed_out = 0
        self.refused = 0
        self.timed_out = 0
        self._reported_at = 0.0

    def __len__(self) -> int:
        return len(self.waiting_since)

    def make_room(self) -> bool:
        """Before a new connection is counted: push out the longest-waiting one if the bound is reached.
        False if every connection is busy (the newcomer must go)."""
        if len(self.waiting_since) < self.max_connections:
            return True
        waiting = [(since, p) for p, since in self.waiting_since.items() if since is not None]
        if not waiting:
            self.refused += 1
            self._report()
            return False
        _, oldest = min(waiting, key=lambda item: item[0])
        self.waiting_since.pop(oldest, None)
        transport = getattr(oldest, "transport", None)
        if transport is not None:
            transport.abort()
        self.pushed_out += 1
        self._report()
        return True

    def _report(self) -> None:
        now = self.clock.monotonic()
        if now - self._reported_at >= REPORT_EVERY_S:
            self._reported_at = now
            log.warning("connection bound (%d) reached: %d connections that were waiting for their request "
                        "pushed out, %d refused with 503 so far (--max-connections)",
                        self.max_connections, self.pushed_out, self.refused)


def http_protocol(guard: ConnectionGuard) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the request deadline and the connection bound of `guard`."""

    class GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            self._deadline: asyncio.TimerHandle | None = None
            super().connection_made(transport)
            if not guard.make_room():
                self.transport.write(_BUSY)
                self.transport.close()
                return
            self._await_request()

        def _await_request(self) -> None:
            """The connection now waits for a request: start its deadline."""
            guard.waiting_since[self] = guard.clock.monotonic()
            if self._deadline is None:
                self._deadline = self.loop.call_later(guard.header_timeout_s, self._too_slow)

        def _request_in(self) -> None:
            if self in guard.waiting_since:
                guard.waiting_since[self] = None
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                guard.timed_out += 1
                log.debug("%s: no whole request in %.0f s: closed (--header-timeout)",
                          f"{self.client[0]}:{self.client[1]}" if self.client else "-", guard.header_timeout_s)
                self.transport.abort()  # nothing of ours is buffered: the request never came

        def handle_events(self) -> None:
            super().handle_events()
            cycle = self.cycle
            if cycle is not None and not cycle.more_body and not cycle.response_complete:
                self._request_in()  # the request is complete (headers, and its body if any)

        def on_response_complete(self) -> None:
            super().on_response_complete()  # may start a pipelined request (handle_events)
            if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
                self._await_request()

        def handle_websocket_upgrade(self, event: Any) -> None:
            self._request_in()
            guard.waiting_since.pop(self, None)  # the WebSocket protocol counts the connection from here
            super().handle_websocket_upgrade(event)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            guard.waiting_since.pop(self, None)
            super().connection_lost(exc)

    return GuardedH11Protocol


def websocket_protocol(guard: ConnectionGuard) -> type[WebSocketsSansIOProtocol]:
    """uvicorn's websockets-sansio protocol that counts in `guard`, offers `abort` to the handler, and aborts a
    connection left open after its handler has returned."""

    class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self._unread = bytearray()  # received, not yet given to the parser
            self._discarded = 0  # messages dropped after the close frame
            super().connection_made(transport)
            guard.waiting_since[self] = None  # upgraded from a counted HTTP connection; never pushed out

        def data_received(self, data: bytes) -> None:
            self._unread += data
            self._feed()

        def _feed(self) -> None:
            """Give the parser the unread bytes a piece at a time, until a message waits for the session; pause
            the socket while `UNREAD_MAX_BYTES` wait, resume it once they do not."""
            while (self._unread and not self.disconnected and not self.transport.is_closing()
                   and (self.close_sent or self.queue.empty())):
                piece = bytes(self._unread[:FEED_BYTES])
                del self._unread[:FEED_BYTES]
                super().data_received(piece)
            if self.disconnected or self.transport.is_closing():
                return
            full = len(self._unread) >= UNREAD_MAX_BYTES
            if full != self.read_paused:
                self.read_paused = full
                if full:
                    self.transport.pause_reading()
                else:
                    self.transport.resume_reading()

        async def receive(self) -> Any:
            message = await self.queue.get()  # uvicorn's receive, less its resume_reading (_feed decides)
            if self._unread and self.queue.empty():  # the session took the last message: read on
                self.loop.call_soon(self._feed)
            return message

        def send_receive_event_to_app(self) -> None:
            if self.close_sent:
                self._discarded += 1
                if self._discarded > DISCARDED_AFTER_CLOSE and not self.disconnected:
                    log.info("a WebSocket client sent %d messages after the close frame: aborted", self._discarded)
                    self._unread.clear()
                    self.transport.abort()
                    return
            paused, self.read_paused = self.read_paused, True  # uvicorn pauses the socket on every message: not here
            try:
                super().send_receive_event_to_app()
            finally:
                self.read_paused = paused

        def connection_lost(self, exc: Exception | None) -> None:
            guard.waiting_since.pop(self, None)
            super().connection_lost(exc)

        async def run_asgi(self) -> None:
            self.scope["extensions"][ABORT_EXTENSION] = {"abort": self.abort, "waiting": self.waiting}
            try:
                await super().run_asgi()
            finally:
                self.loop.call_later(CLOSE_GRACE_S, self._abort_if_open)

        def keepalive_timeout(self) -> None:
            super().keepalive_timeout()  # a 1011 close frame, then a close that waits until the client reads it
            self.loop.call_later(KEEPALIVE_GRACE_S, self._abort_if_open)

        def waiting(self) -> bool:
            """Whether a message can be received at once: one is queued, or the bytes already read hold one
            (parsed now, as the next `_feed` would)."""
            if self.queue.empty() and self._unread:
                self._feed()
            return not self.queue.empty()

        def abort(self) -> None:
            if not self.disconnected:
                self.transport.abort()

        def _abort_if_open(self) -> None:
            if not self.disconnected:
                log.debug("a WebSocket connection still open %.0f s after its handler ended: aborted", CLOSE_GRACE_S)
                self.transport.abort()

    return GuardedWebSocketProtocol
