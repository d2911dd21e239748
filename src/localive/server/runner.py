"""Run the ASGI app on uvicorn: a TLS (wss) listener and optionally a plain (ws) one, in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
from collections.abc import Generator
from typing import Any

import uvicorn

from localive.server.tls import TlsFiles

log = logging.getLogger("localive.server")
_QUERY = re.compile(r"\?[^\s\"]*")


class RedactQueryStrings(logging.Filter):
    """uvicorn logs WebSocket paths with their query string, where the JS SDK puts the API key: cut it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(_QUERY.sub("?<redacted>", a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = _QUERY.sub("?<redacted>", record.msg)
        return True


def install_log_redaction() -> None:
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactQueryStrings) for f in logger.filters):
            logger.addFilter(RedactQueryStrings())


class _Server(uvicorn.Server):
    """A uvicorn server whose signals are handled by `serve_all` for all listeners together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _config(app: Any, host: str, port: int, max_message_bytes: int, tls: TlsFiles | None) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        ws="websockets-sansio",
        ws_max_size=max_message_bytes,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        lifespan="off",
        access_log=False,  # uvicorn's access log prints query strings, which may hold API keys
        log_config=None,
        ssl_certfile=str(tls.server_cert) if tls else None,
        ssl_keyfile=str(tls.server_key) if tls else None,
        timeout_graceful_shutdown=5,
    )


async def serve_all(app: Any, *, host: str, port: int, plain_port: int | None, tls: TlsFiles,
                    max_message_bytes: int, started: asyncio.Event | None = None) -> None:
    """Serve until SIGINT/SIGTERM (or cancellation). `started` is set once every listener is bound."""
    install_log_redaction()
    servers = [_Server(_config(app, host, port, max_message_bytes, tls))]
    if plain_port is not None:
        servers.append(_Server(_config(app, host, plain_port, max_message_bytes, None)))

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # not in the main thread (tests)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
    tasks = [asyncio.create_task(s.serve(), name=f"uvicorn-{s.config.port}") for s in servers]
    try:
        while not all(s.started for s in servers):
            done = [t for t in tasks if t.done()]
            if done:
                done[0].result()  # a listener failed to bind: raise its error
                raise SystemExit(f"a listener stopped during start-up (port {port} or {plain_port} in use?)")
            await asyncio.sleep(0.05)  # polling uvicorn's `started` flag: it offers no event to wait on
        if started is not None:
            started.set()
        await asyncio.gather(*tasks)
    finally:
        stop()
        await asyncio.gather(*tasks, return_exceptions=True)
