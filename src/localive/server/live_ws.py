"""The Live WebSocket endpoint: a thin transport between a socket and a `LiveSession`.

One reader loop (frames → parsed messages → session) and one writer task (session outbox → frames), both owned
by this handler and cancelled when either side ends. Every failure becomes a close frame through
`protocol.errors.close_for`, the single place that maps errors to codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

from starlette.websockets import WebSocket, WebSocketDisconnect

from localive.protocol.errors import NORMAL, Close, LiveError, Overloaded, close_for
from localive.protocol.parse import parse_client_message
from localive.protocol.server_messages import dumps
from localive.server.state import ServerState
from localive.session.live import LiveSession

log = logging.getLogger("localive.live")
access = logging.getLogger("localive.access")

API_VERSIONS = ("v1", "v1beta", "v1alpha")
REFUSE_WAIT_S = 5.0  # a refused credential: how long to wait for the setup frame before closing


class PeerClosed(Exception):
    """The socket was closed by the client or by the WebSocket protocol layer; nothing more can be sent."""

    def __init__(self, close: Close) -> None:
        super().__init__(close.reason)
        self.close = close


def api_key_of(ws: WebSocket) -> str | None:
    """The credential, from where each SDK puts it (live-protocol.md §1.3). Never logged."""
    for name in ("key", "access_token"):
        if value := ws.query_params.get(name):
            return value
    if value := ws.headers.get("x-goog-api-key"):
        return value
    auth = ws.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() in ("token", "bearer") and token:
        return token
    return None


async def live_endpoint(ws: WebSocket) -> None:
    state: ServerState = ws.app.state.localive
    version = ws.path_params["version"]
    client = f"{ws.client.host}:{ws.client.port}" if ws.client else "-"
    path = ws.url.path  # no query string: it may hold the API key
    if version not in API_VERSIONS:
        await ws.close(code=1008, reason=f"API version {version} is not supported."[:123])
        return
    await ws.accept()
    session_id = secrets.token_hex(8)
    outcome = Close(NORMAL, "")
    try:  # API key or ephemeral token (server/auth.py); a refusal is a close after the upgrade, as Gemini does
        credential = state.access.authenticate(api_key_of(ws), constrained=path.endswith("Constrained"))
    except LiveError as exc:
        outcome = close_for(exc)
        await _refuse(ws, outcome)
        access.info('%s "WS %s" session=- close=%d %s', client, path, outcome.code, outcome.reason)
        return
    if not state.admit():
        outcome = close_for(Overloaded())
        await _close(ws, outcome)
        access.info('%s "WS %s" session=- close=%d', client, path, outcome.code)
        return
    session = LiveSession(registry=state.registry, engines=state.engines, session_id=session_id,
                          api_version=version, outbox_size=state.settings.outbox_size, store=state.store,
                          limits=state.limits, principal=credential.principal, setup_gate=credential.gate)
    expiry = credential.watch_expiry(session.outbox)  # a token's session ends at its expireTime
    writer = asyncio.create_task(_write(ws, session), name=f"writer-{session_id}")
    closed_by_peer = False
    try:
        outcome = await _read(ws, session, writer, state.settings.setup_timeout_s)
    except PeerClosed as exc:
        outcome, closed_by_peer = exc.close, True
    finally:
        await session.aclose()
        writer.cancel()
        if expiry is not None:
            expiry.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer
        state.release()
        if not closed_by_peer:
            await _close(ws, outcome)
        access.info('%s "WS %s" session=%s close=%d %s', client, path, session_id, outcome.code, outcome.reason)


async def _read(ws: WebSocket, session: LiveSession, writer: asyncio.Task[Close | None],
                setup_timeout_s: float) -> Close:
    """Feed frames to the session until the client leaves, an error ends the session, or the writer stops."""
    while True:
        receive = asyncio.ensure_future(ws.receive())
        timeout = setup_timeout_s if session.config is None else None
        done, _ = await asyncio.wait({receive, writer}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            receive.cancel()
            return Close(1008, "No setup message was received in time.")
        if writer in done:
            receive.cancel()
            return writer.result() or Close(NORMAL, "")
        event = receive.result()
        if event["type"] == "websocket.disconnect":  # the client closed, or the protocol layer did (e.g. 1009)
            raise PeerClosed(Close(int(event.get("code") or NORMAL), str(event.get("reason") or "")))
        text, data = event.get("text"), event.get("bytes")
        frame: str | bytes = text if text is not None else (data or b"")
        try:
            await session.handle(parse_client_message(frame))
        except LiveError as exc:
            log.info("session %s closed: %s", session.session_id, exc.reason)
            return close_for(exc)
        except Exception as exc:  # an unexpected failure of ours: logged, reported as 1011
            log.exception("session %s failed", session.session_id)
            return close_for(exc)


async def _write(ws: WebSocket, session: LiveSession) -> Close | None:
    """Send the session's outbox in order; return the Close it asks for, or None if the socket went away."""
    while True:
        message = await session.outbox.get()
        if isinstance(message, Close):
            return message
        try:
            await ws.send_text(dumps(message))
        except (WebSocketDisconnect, RuntimeError, OSError):
            return None


async def _refuse(ws: WebSocket, close: Close) -> None:
    """Close once the client's first frame (its setup) is in, so that the SDKs report the close as the answer to
    their setup (an APIError from connect), not as a failed send; wait at most REFUSE_WAIT_S, hold no slot."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(REFUSE_WAIT_S):
            await ws.receive()
    await _close(ws, close)


async def _close(ws: WebSocket, close: Close) -> None:
    with contextlib.suppress(Exception):  # the client may already be gone
        await ws.close(code=close.code, reason=close.reason)
