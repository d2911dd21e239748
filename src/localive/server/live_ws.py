"""The Live WebSocket endpoint: a thin transport between a socket and a `LiveSession`.

One reader loop (frames → parsed messages → session) and one writer task (session outbox → frames), both owned
by this handler and cancelled when either side ends. Every close, a failure's or a normal end's, is made by
`protocol.errors.close_for`, the single place that maps errors to codes, and logged once when the connection ends,
at the level its blame calls for (`log_close`).

Every wait is bounded (security finding F13). A connection must send its setup within `setup_timeout_s`, and
holds no session slot until it does (the counters are in server/state.py). Each message to the client must be
taken by its socket within `write_timeout_s`: a client that asks for a long answer and never reads would
otherwise keep its slot for ever, because a send waits for the socket to drain, and so does a close. Such a
connection is aborted (server/transport.py) and its slot freed. These bounds are real time (they guard a real
socket); the session and the rate limit's waits run on the server's clock (localive/clock.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from dataclasses import dataclass
from functools import partial

from starlette.responses import JSONResponse
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

from localive.protocol.errors import (
    Close,
    LiveError,
    NotFound,
    Overloaded,
    PolicyViolation,
    ShuttingDown,
    close_for,
    log_close,
)
from localive.protocol.messages import (
    JOIN_CHUNKS,
    ClientMessage,
    ContextUpdate,
    RealtimeInput,
    Setup,
    audio_only,
    join_audio,
    joinable,
)
from localive.protocol.server_messages import dumps
from localive.server.answerer import Answerer, Call
from localive.server.auth import ANONYMOUS
from localive.server.budget import WorkBudget
from localive.server.client_socket import PeerClosed, SlowReader, abort, parse_event, send_within
from localive.server.faults import ConnectionFaults
from localive.server.state import Connection, ServerState
from localive.server.transport import ABORT_EXTENSION
from localive.session.live import LiveSession

log = logging.getLogger("localive.live")
access = logging.getLogger("localive.access")

API_VERSIONS = ("v1", "v1beta", "v1alpha")
REFUSE_WAIT_S = 5.0  # a refused credential: how long to wait for the setup frame before closing


def api_key_of(ws: WebSocket) -> str | None:
    """The credential, from where each SDK puts it (docs/protocol-notes.md). Never logged."""
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
    if version not in API_VERSIONS:  # refused at the handshake (a close before accept is an HTTP 403)
        outcome = close_for(NotFound(f"API version {version} is not supported."))
        await ws.close(code=outcome.code, reason=outcome.reason)
        _ended(state, client, path, "-", outcome)
        return
    if state.draining:  # refused before the upgrade: a proxy (deploy/nginx.conf) passes it to another process
        await ws.send_denial_response(JSONResponse({"error": {"code": 503, "status": "UNAVAILABLE",
                                                              "message": ShuttingDown.default_reason}},
                                                   status_code=503, headers={"Retry-After": "1"}))
        access.info('%s "WS %s" session=- http=503 the server is draining', client, path)
        return
    try:  # its address's share and the queue of connections waiting for their setup (server/state.py)
        connection = state.connections.open(ws.client.host if ws.client else None)
    except Overloaded as exc:
        outcome = close_for(exc)
        with contextlib.suppress(Exception):  # the client may already be gone
            await ws.accept()
            await _close(ws, outcome, state.settings.write_timeout_s)
        _ended(state, client, path, "-", outcome)
        return
    budget = state.budgets.open(ws.client.host if ws.client else "-")  # its share of server work (budget.py)
    try:
        await _serve(ws, state, connection, budget, version=version, client=client, path=path)
    finally:
        state.connections.close(connection)
        state.budgets.close(budget)


async def _serve(ws: WebSocket, state: ServerState, connection: Connection, budget: WorkBudget, *, version: str,
                 client: str, path: str) -> None:
    settings = state.settings
    await ws.accept()
    try:  # API key or ephemeral token (server/auth.py); a refusal is a close after the upgrade, as Gemini does
        credential = await state.access.authenticate(api_key_of(ws), constrained=path.endswith("Constrained"))
    except LiveError as exc:
        outcome = close_for(exc)
        await _refuse(ws, outcome, settings.write_timeout_s)
        _ended(state, client, path, "-", outcome)
        return
    try:
        first, first_frame = await _first_message(ws, settings.setup_timeout_s, budget)
    except PeerClosed as exc:
        _ended(state, client, path, "-", exc.close)
        return
    state.connections.setup_arrived(connection)
    if isinstance(first, Close):  # no setup in time, or a first frame that is not a message
        await _close(ws, first, settings.write_timeout_s)
        _ended(state, client, path, "-", first)
        return
    if state.faults is not None and (refusal := state.faults.refusal(first)) is not None:  # an emulator script's
        outcome = close_for(refusal)  # setup_error, or a resumption while the old socket is open (server/faults.py)
        await _close(ws, outcome, settings.write_timeout_s)
        _ended(state, client, path, "-", outcome)
        return
    # the session slot is taken only now, with the setup in hand; one resuming with a handle goes ahead of new ones
    resumption = first.session_resumption if isinstance(first, Setup) else None
    resuming = resumption is not None and bool(resumption.handle)
    try:
        state.admit(resuming=resuming)
    except Overloaded as exc:  # draining, full, or too loaded for a new session
        outcome = close_for(exc)
        await _close(ws, outcome, settings.write_timeout_s)
        _ended(state, client, path, "-", outcome)
        return
    session_id = secrets.token_hex(8)
    if state.answerer is not None:  # relayed upstream or replayed from a cassette (server/answerer.py)
        assert isinstance(first, Setup)  # a first message that is not a setup is refused by the protocol's parse
        call = Call(ws, version, session_id, first, json.loads(first_frame), credential, api_key_of(ws), budget,
                    settings.write_timeout_s)
        await _serve_elsewhere(state, state.answerer, call, client=client, path=path)
        return
    session = LiveSession(registry=state.registry, engines=state.engines, session_id=session_id,
                          api_version=version, outbox_size=settings.outbox_size, store=state.store,
                          limits=state.limits, principal=credential.principal, setup_gate=credential.gate,
                          owner=_owner(credential.principal, ws), charge_work=partial(budget.charge, 0),
                          turn_watchdog_s=settings.turn_watchdog_s, on_stall=state.count_stall, clock=state.clock,
                          telemetry=state.metrics)
    state.opened(session)
    expiry = credential.watch_expiry(session.outbox)  # a token's session ends at its expireTime
    faults = state.faults.connect(state.clock) if state.faults is not None else None
    writer = asyncio.create_task(_write(ws, session, settings.write_timeout_s, faults), name=f"writer-{session_id}")
    outcome, closed_by_peer = close_for(None), False
    try:
        outcome = await _read(ws, session, writer, first, budget)
    except PeerClosed as exc:
        outcome, closed_by_peer = exc.close, True
    finally:
        await session.aclose()
        writer.cancel()
        if expiry is not None:
            expiry.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer
        if faults is not None:
            faults.close()
        state.release(session)
        if not closed_by_peer:
            await _close(ws, outcome, settings.write_timeout_s)
        _ended(state, client, path, session_id, outcome, session.config.model.name if session.config else None)


async def _serve_elsewhere(state: ServerState, answerer: Answerer, call: Call, *, client: str, path: str) -> None:
    """The session of an admitted connection answered by `answerer`; then its close and its log line."""
    session = answerer.open(call)
    state.opened(session)
    outcome, closed_by_peer = close_for(None), False
    try:
        outcome, closed_by_peer = await session.run()
    finally:
        state.release(session)
        if not closed_by_peer:
            await _close(call.ws, outcome, state.settings.write_timeout_s)
        _ended(state, client, path, call.session_id, outcome, call.setup.model)


def _ended(state: ServerState, client: str, path: str, session_id: str, close: Close,
           model: str | None = None) -> None:
    """The single place a connection's end is recorded: its access line, why it ended at the level the close's
    blame calls for, and the metrics' count by model (None: no setup named one) and close code."""
    access.info('%s "WS %s" session=%s close=%d %s', client, path, session_id, close.code, close.reason)
    log_close(log, session_id, close)
    state.metrics.session_ended(model, close.code)


def _owner(principal: str, ws: WebSocket) -> str:
    """Whose share of rationed work (code runs) a session uses: its key or token; on an open server, where everyone
    is anonymous, its client's address (security finding F11)."""
    if principal != ANONYMOUS:
        return principal
    return f"address {ws.client.host}" if ws.client else principal


async def _first_message(ws: WebSocket, setup_timeout_s: float,
                         budget: WorkBudget) -> tuple[ClientMessage | Close, str | bytes]:
    """The client's first message, parsed, and its frame; or the Close to send when none comes in time or it is
    malformed. Raises PeerClosed if the client leaves first."""
    try:
        async with asyncio.timeout(setup_timeout_s):
            event = await ws.receive()
    except TimeoutError:
        return close_for(PolicyViolation("No setup message was received in time.")), b""
    message = await parse_event(event, "-", budget)
    return message, event.get("text") or event.get("bytes") or b""


async def _read(ws: WebSocket, session: LiveSession, writer: asyncio.Task[Close | None],
                first: ClientMessage, budget: WorkBudget) -> Close:
    """Feed frames to the session until the client leaves, an error ends the session, or the writer stops."""
    message: ClientMessage | Close = first
    watch = WriterWatch(writer)
    ahead: Ahead = None  # what came right behind joined audio chunks (`_join_audio`): the next to apply
    while True:
        if isinstance(message, Close):
            return message
        consumed = 1
        if isinstance(message, RealtimeInput) and audio_only(message):
            message, consumed, ahead = await _join_audio(ws, message, session.session_id, budget)
        started = time.thread_time() if isinstance(message, ContextUpdate) else 0.0
        try:
            await session.handle(message, consumed)
            # compiling a contextUpdate's tools is the session's one heavy step that awaits nothing: the event
            # loop's CPU time for it is this client's alone, and is charged too
            if isinstance(message, ContextUpdate):
                await budget.pay(0, time.thread_time() - started)
        except LiveError as exc:
            return close_for(exc)
        except Exception as exc:  # an unexpected failure of ours: logged, reported as 1011
            log.exception("session %s failed", session.session_id)
            return close_for(exc)
        if writer.done():
            return writer.result() or close_for(None)
        if isinstance(ahead, Parsed):
            message, ahead = ahead.message, None
            continue
        if ahead is not None:
            event, ahead = ahead, None
        else:
            try:
                event = await watch.receive(ws)
            except WriterEnded:
                return writer.result() or close_for(None)
        message = await parse_event(event, session.session_id, budget)


@dataclass(frozen=True)
class Parsed:
    message: ClientMessage | Close


Ahead = Parsed | Message | None  # a frame parsed, or the event of one not parsed yet (the client's close)


async def _join_audio(ws: WebSocket, message: RealtimeInput, session_id: str,
                      budget: WorkBudget) -> tuple[RealtimeInput, int, Ahead]:
    """An audio chunk, joined with the audio chunks right behind it that have already arrived (at most
    JOIN_CHUNKS): a session that has fallen behind real time catches up in fewer, longer steps, one VAD hand-off
    each, instead of one a chunk; a session that keeps up finds nothing waiting and goes on chunk by chunk.
    Returns the message to apply, how many client messages it stands for, and what came next if it was taken
    and not joined (a message of another kind, a refused frame's Close, the client's close event): that is
    applied next, so the order holds. Every frame is parsed and charged to the budget as it always is."""
    joined = [message]
    joined_bytes = len(message.audio.data) if message.audio is not None else 0
    while len(joined) < JOIN_CHUNKS and _frame_waiting(ws):
        event = await ws.receive()  # waiting: returns at once
        if event["type"] != "websocket.receive":
            return join_audio(joined), len(joined), event
        after = await parse_event(event, session_id, budget)
        if not (isinstance(after, RealtimeInput) and joinable(joined[-1], after, joined_bytes)):
            return join_audio(joined), len(joined), Parsed(after)
        joined.append(after)
        joined_bytes += len(after.audio.data) if after.audio is not None else 0
    return join_audio(joined), len(joined), None


def _frame_waiting(ws: WebSocket) -> bool:
    """Whether the client's next frame is already here (received and parsed by the WebSocket layer)."""
    extension = (ws.scope.get("extensions") or {}).get(ABORT_EXTENSION)
    return extension is not None and "waiting" in extension and bool(extension["waiting"]())


class WriterEnded(Exception):
    """The writer ended while the reader waited for the client's next frame."""


class WriterWatch:
    """Waits for the client's next frame in the reader's own task, and interrupts that wait when the writer ends
    (a Close from the session, or the socket gone). Cheaper per frame than a task for each receive raced against
    the writer with `asyncio.wait`: at 10,000 audio chunks a second, that was a tenth of the event loop's time."""

    def __init__(self, writer: asyncio.Task[Close | None]) -> None:
        self._reader = asyncio.current_task()
        self._receiving = False
        self._interrupted = False
        writer.add_done_callback(self._writer_done)

    def _writer_done(self, _: object) -> None:
        if self._receiving and not self._interrupted and self._reader is not None:
            self._interrupted = True
            self._reader.cancel()

    async def receive(self, ws: WebSocket) -> Message:
        """The next frame's event; raises WriterEnded if the writer ended first. A cancellation from elsewhere
        (the server shutting down) propagates as it is."""
        self._receiving = True
        try:
            return await ws.receive()
        except asyncio.CancelledError:
            if self._interrupted and self._reader is not None and self._reader.uncancel() == 0:
                raise WriterEnded from None
            raise
        finally:
            self._receiving = False


async def _write(ws: WebSocket, session: LiveSession, write_timeout_s: float,
                 faults: ConnectionFaults | None = None) -> Close | None:
    """Send the session's outbox in order; return the Close it asks for, or None if the socket went away.
    A message the client's socket does not take within `write_timeout_s` aborts the connection. With an emulator
    script's faults, the messages go through its fault stage first (server/faults.py)."""
    try:
        if faults is not None:
            async with contextlib.aclosing(faults.pipe(session.outbox)) as messages:
                async for message in messages:
                    if isinstance(message, Close):
                        return message
                    await send_within(ws, dumps(message), write_timeout_s)
            return None
        while True:
            message = await session.outbox.get()
            if isinstance(message, Close):
                return message
            await send_within(ws, dumps(message), write_timeout_s)
    except SlowReader as slow:
        return close_for(slow)
    except PeerClosed:
        return None


async def _refuse(ws: WebSocket, close: Close, write_timeout_s: float) -> None:
    """Close once the client's first frame (its setup) is in, so that the SDKs report the close as the answer to
    their setup (an APIError from connect), not as a failed send; wait at most REFUSE_WAIT_S, hold no slot."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(REFUSE_WAIT_S):
            await ws.receive()
    await _close(ws, close, write_timeout_s)


async def _close(ws: WebSocket, close: Close, write_timeout_s: float) -> None:
    """Send the close frame; a client that does not take it within `write_timeout_s` is cut off."""
    try:
        async with asyncio.timeout(write_timeout_s):
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):  # the client may be gone
                await ws.close(code=close.code, reason=close.reason)
    except TimeoutError:
        abort(ws)
