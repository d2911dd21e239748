"""Run the ASGI app on uvicorn: a TLS (wss) listener and optionally a plain (ws) one, in one event loop.

uvicorn runs with localive's own protocol classes (server/transport.py: request deadline, connection bound,
abortable WebSockets) and with every log record redacted (no key or token name reaches a log, at any level).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import uvicorn

from localive.clock import SYSTEM_CLOCK, Clock
from localive.server.tls import TlsFiles
from localive.server.transport import ConnectionGuard, default_max_connections, http_protocol, websocket_protocol

log = logging.getLogger("localive.server")
_QUERY = re.compile(r"\?[^\s\"']+")  # a query string: "/path?key=K HTTP/1.1"
# A credential header, however a logger prints it: "< x-goog-api-key: K", "(b'authorization', b'Bearer K')",
# "{'cookie': 'a=b'}". The value runs to the end of the line or to the closing quote.
_HEADER = re.compile(r"(?i)(x-goog-api-key|proxy-authorization|authorization|set-cookie|cookie)"
                     r"(['\"]?\s*[:=,]\s*(?:b?['\"])?)([^'\"\r\n]+)")
_TOKEN = re.compile(r"auth_tokens/[^\s'\",;&?#)\]}]+")
REDACTED = "<redacted>"
REDACTED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "websockets", "websockets.server",
                    "websockets.protocol", "localive")


def redact(text: str) -> str:
    """`text` without query strings (the JS SDK's ?key=), credential headers and ephemeral token names."""
    text = _QUERY.sub("?" + REDACTED, text)
    text = _HEADER.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    return _TOKEN.sub("auth_tokens/" + REDACTED, text)


class RedactSecrets(logging.Filter):
    """API keys and token names never reach a log (security finding F8), at any level: with --log-level debug the
    WebSocket handshake logger prints every request header. Each record is formatted once and its text redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except (TypeError, ValueError, KeyError):  # a malformed record: let logging report it as it would
            return True
        cleaned = redact(text)
        if cleaned != text:
            record.msg, record.args = cleaned, None
        return True


def install_log_redaction() -> None:
    """On the loggers that print requests, and on the root handlers, which every propagated record passes."""
    targets: list[logging.Filterer] = [logging.getLogger(name) for name in REDACTED_LOGGERS]
    targets += logging.getLogger().handlers
    for target in targets:
        if not any(isinstance(f, RedactSecrets) for f in target.filters):
            target.addFilter(RedactSecrets())


class _Server(uvicorn.Server):
    """A uvicorn server whose signals are handled by `serve_all` for all listeners together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _config(app: Any, host: str, port: int, max_message_bytes: int, tls: TlsFiles | None, guard: ConnectionGuard,
            forwarded_allow_ips: str | None, ws_compression: bool) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=http_protocol(guard),  # h11 with a request deadline and the connection bound (server/transport.py)
        ws=websocket_protocol(guard),  # websockets-sansio, abortable by the handler
        ws_max_size=max_message_bytes,
        # permessage-deflate, when a client offers it (both SDKs do): off by default, it costs the event loop
        # ~8 µs per 20 ms audio chunk received and ~30 µs per audio message sent, for ~25 % fewer bytes
        ws_per_message_deflate=ws_compression,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        lifespan="off",
        access_log=False,  # uvicorn's access log prints query strings, which may hold API keys
        log_config=None,
        ssl_certfile=str(tls.server_cert) if tls else None,
        ssl_keyfile=str(tls.server_key) if tls else None,
        timeout_graceful_shutdown=5,
        # X-Forwarded-For/-Proto change the client address (the per-address cap, `--playground local`) only when
        # they come from a proxy named with --forwarded-allow-ips; uvicorn's default trusts any loopback peer.
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips or "",
    )


async def serve_all(app: Any, *, host: str, port: int, plain_port: int | None, tls: TlsFiles,
                    max_message_bytes: int, header_timeout_s: float = 10.0, max_connections: int | None = None,
                    forwarded_allow_ips: str | None = None, started: asyncio.Event | None = None,
                    clock: Clock = SYSTEM_CLOCK, ws_compression: bool = False,
                    drain: Callable[[], Awaitable[None]] | None = None) -> None:
    """Serve until SIGINT/SIGTERM (or cancellation). `started` is set once every listener is bound.
    `drain`: on the first signal, run it (the sessions leave: ServerState.drain) before the listeners close; a
    second signal closes them at once.
    `max_connections` bounds the client connections of both listeners together (None: the descriptor limit less
    a reserve). `clock`: the server's (ServerState.clock), for the connection guard's bookkeeping.
    `ws_compression`: accept permessage-deflate when a client offers it (`--ws-compression`, docs/benchmarks.md)."""
    install_log_redaction()
    guard = ConnectionGuard(max_connections or default_max_connections(), header_timeout_s, clock)
    log.info("transport: at most %d connections; a request must arrive within %.0f s; X-Forwarded-For %s",
             guard.max_connections, header_timeout_s,
             f"trusted from {forwarded_allow_ips}" if forwarded_allow_ips is not None else "ignored")
    servers = [_Server(_config(app, host, port, max_message_bytes, tls, guard, forwarded_allow_ips, ws_compression))]
    if plain_port is not None:
        servers.append(_Server(_config(app, host, plain_port, max_message_bytes, None, guard, forwarded_allow_ips,
                                       ws_compression)))

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    draining: list[asyncio.Task[None]] = []

    def signalled() -> None:
        if drain is None or draining:
            if draining:
                log.warning("stopping now: open sessions are cut")
            stop()
            return
        log.info("shutting down: draining the open sessions (a second signal stops at once)")
        task = asyncio.ensure_future(drain())
        task.add_done_callback(lambda _: stop())
        draining.append(task)

    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # not in the main thread (tests)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, signalled)
    tasks = [asyncio.create_task(s.serve(), name=f"uvicorn-{s.config.port}") for s in servers]
    try:
        while not all(s.started for s in servers):
            done = [t for t in tasks if t.done()]
            if done:
                done[0].result()  # a listener failed to bind: raise its error
                raise SystemExit(f"a listener stopped during start-up (port {port} or {plain_port} in use?)")
            await asyncio.sleep(0.05)  # real time: polling uvicorn's `started` flag (it offers no event to wait on)
        if started is not None:
            started.set()
        await asyncio.gather(*tasks)
    finally:
        stop()
        for task in draining:
            task.cancel()
        await asyncio.gather(*tasks, *draining, return_exceptions=True)
