"""`localive relay`: serve the Live API here and answer every session from an upstream Live API — Google's, with
the operator's key held on this server (read from GEMINI_API_KEY, never sent to clients, never logged or
recorded), or another localive.

Clients connect to the relay as to any localive: with one of its API keys, or with an ephemeral token it minted
(`POST /v1alpha/auth_tokens`), so a browser or an app holds only a short-lived token; a token's locked fields are
applied to the setup before it goes upstream. Each session gets its own upstream connection. Frames pass through
unchanged both ways (each client frame is first parsed and checked by the protocol, as for a local session); the
upstream's close — its code and reason, 1011 "Deadline expired…" included — reaches the client as it is, and the
client's close goes upstream. Resumption handles are the upstream's: a client resumes through any relay of the
same upstream. When the relay drains (SIGTERM), its sessions get `goAway` and are closed (1001) at the deadline.

With a `Recorder` (--record DIR), each session is also written to a cassette (server/recorder.py).
"""

from __future__ import annotations

import json
import logging
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from localive.clock import Clock
from localive.protocol.errors import (
    NORMAL,
    Close,
    Relayed,
    UpstreamUnavailable,
    close_for,
)
from localive.protocol.messages import ContextUpdate
from localive.server.answerer import AnsweredSession, Call, PeerClosed, SessionElsewhere, first_to_end
from localive.server.recorder import Recorder, Recording

log = logging.getLogger("localive.relay")

GEMINI_URL = "https://generativelanguage.googleapis.com"
LIVE_METHOD = "/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContent"
OPEN_TIMEOUT_S = 10.0
MAX_UPSTREAM_MESSAGE_BYTES = 16 * 1024 * 1024  # the SDKs take server messages of any size; this bounds ours


def upstream_url(base: str, version: str) -> str:
    """The upstream's Live WebSocket URL for API `version`, from its base URL (https:// or wss://, http:// or
    ws://, as an SDK's base URL is given)."""
    parts = urlsplit(base)
    scheme = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(f"the upstream must be an https://, wss://, http:// or ws:// URL, not {base!r}")
    if parts.username or parts.password or parts.query:
        raise ValueError("the upstream URL may not hold credentials or a query: the key comes from GEMINI_API_KEY")
    path = parts.path.rstrip("/") + LIVE_METHOD.format(version=version)
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def shown_upstream(base: str) -> str:
    """The upstream as logs show it: scheme, host and port only."""
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


@dataclass(frozen=True)
class Relay:
    """The relay's `Answerer` (server/answerer.py)."""

    upstream: str  # base URL
    api_key: str | None  # sent upstream as x-goog-api-key
    clock: Clock
    ssl_context: ssl.SSLContext | None = None  # for a wss:// upstream (None: the system's trust store)
    recorder: Recorder | None = None
    open_timeout_s: float = OPEN_TIMEOUT_S

    def describe(self) -> str:
        record = f", recording to {self.recorder.folder}" if self.recorder is not None else ""
        return f"relaying to {shown_upstream(self.upstream)}{record}"

    def open(self, call: Call) -> AnsweredSession:
        return RelayedSession(self, call)


class RelayedSession(SessionElsewhere):
    def __init__(self, relay: Relay, call: Call) -> None:
        super().__init__(call, relay.clock)
        self._relay = relay
        self._recording: Recording | None = None
        self._upstream_close_recorded = False

    def _ended(self) -> None:
        if self._recording is not None:
            self._recording.finish()

    async def _answer(self) -> tuple[Close, bool]:
        call, relay = self._call, self._relay
        first = call.first
        if call.credential.gate is not None:  # redeem the token; its locked fields go upstream, not the client's
            effective = await call.credential.gate(call.setup)
            if effective is not call.setup:
                first = {"setup": effective.model_dump(by_alias=True, exclude_none=True, mode="json")}
        if relay.recorder is not None:
            self._recording = relay.recorder.start(call.version, [s for s in (call.secret, relay.api_key) if s])
            self._recording.message("client", first)
        try:
            upstream = await connect(upstream_url(relay.upstream, call.version), ssl=self._ssl(),
                                     additional_headers={"x-goog-api-key": relay.api_key} if relay.api_key else None,
                                     open_timeout=relay.open_timeout_s, max_size=MAX_UPSTREAM_MESSAGE_BYTES,
                                     compression=None, user_agent_header="localive-relay")
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            status = f" (HTTP {exc.response.status_code})" if isinstance(exc, InvalidStatus) else ""
            log.warning("session %s: the upstream %s refused or could not be reached%s: %s", call.session_id,
                        shown_upstream(relay.upstream), status, type(exc).__name__)
            self._record_close("server", close_for(UpstreamUnavailable()))
            return close_for(UpstreamUnavailable()), False
        try:
            await upstream.send(json.dumps(first, separators=(",", ":"), ensure_ascii=False))
            return await self._pump(upstream)
        except ConnectionClosed:
            return self._upstream_closed(upstream), False
        finally:
            await upstream.close()

    async def _pump(self, upstream: ClientConnection) -> tuple[Close, bool]:
        return await first_to_end(self._from_client(upstream), self._from_upstream(upstream), self._closed_here())

    async def _closed_here(self) -> Close:
        """The relay's own end of the session: the token expired, or a drain's deadline came."""
        close = await self._closes.get()
        self._record_close("server", close)
        return close

    async def _from_client(self, upstream: ClientConnection) -> Close:
        gate = self._call.credential.gate
        try:
            while True:
                got = await self._client.receive()
                if isinstance(got, Close):  # a frame the protocol refuses ends the session, as a local one's would
                    return got
                message, parsed, frame = got
                if gate is not None and isinstance(parsed, ContextUpdate):
                    gate.check_update(parsed)  # a token's locked fields stay locked
                if self._recording is not None:
                    self._recording.message("client", message)
                await upstream.send(frame)
        except ConnectionClosed:  # the upstream ended the session while the client spoke: its close is the end
            return self._upstream_closed(upstream)
        except PeerClosed as gone:  # the client's close goes upstream
            self._record_close("client", gone.close)
            await upstream.close(_sendable(gone.close.code), gone.close.reason)
            raise

    async def _from_upstream(self, upstream: ClientConnection) -> Close:
        try:
            async for frame in upstream:
                if self._recording is not None:
                    self._recording.frame("server", frame)
                await self._client.send(frame)
        except ConnectionClosed:
            pass
        return self._upstream_closed(upstream)

    def _upstream_closed(self, upstream: ClientConnection) -> Close:
        code, reason = upstream.close_code or 1006, upstream.close_reason or ""
        if self._recording is not None and not self._upstream_close_recorded:
            self._upstream_close_recorded = True
            self._recording.close("server", code, reason)
        return close_for(Relayed(code, reason)) if code != NORMAL or reason else close_for(None)

    def _record_close(self, side: str, close: Close) -> None:
        if self._recording is not None:
            self._recording.close("client" if side == "client" else "server", close.code, close.reason)

    def _ssl(self) -> ssl.SSLContext | None:
        if urlsplit(self._relay.upstream).scheme not in ("https", "wss"):
            return None
        return self._relay.ssl_context or ssl.create_default_context()


def _sendable(code: int) -> int:
    """A client's close code as one the relay may send upstream (1005/1006: none came, so a normal close)."""
    return code if 1000 <= code <= 4999 and code not in (1005, 1006, 1015) else NORMAL
