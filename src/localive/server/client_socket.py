"""A Live client's socket as every session uses it, whoever answers it (this process's models, an upstream, a
cassette): frames in, parsed and checked by the protocol and charged to the client's work budget (`parse_event`);
messages out, each taken within the write timeout or the connection aborted (`send_within`); the client's own close
(`PeerClosed`) and the abort (`abort`). server/live_ws.py and server/answerer.py both use these.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

from localive.protocol.errors import INTERNAL, NORMAL, Close, LiveError, close_for
from localive.protocol.messages import ClientMessage
from localive.server.budget import WorkBudget
from localive.server.frames import FrameRefused, parse_frame_metered
from localive.server.transport import ABORT_EXTENSION

log = logging.getLogger("localive.live")


class SlowReader(LiveError):
    """The client took none of our messages within the write timeout: its connection is aborted (1011)."""

    close_code = INTERNAL
    blame = "client"


class PeerClosed(Exception):
    """The socket was closed by the client or by the WebSocket protocol layer; nothing more can be sent."""

    def __init__(self, close: Close) -> None:
        super().__init__(close.reason)
        self.close = close


async def parse_event(event: Message, session_id: str, budget: WorkBudget) -> ClientMessage | Close:
    """The frame's message, or the Close it calls for. Its cost is taken from the client's work budget, and when
    that is spent this waits before returning: the socket is not read meanwhile (backpressure on the client).
    Raises PeerClosed for the client's close."""
    if event["type"] == "websocket.disconnect":  # the client closed, or the protocol layer did (e.g. 1009)
        # the close that came in, recorded for the log (nothing is sent back): not one of ours, so no close_for
        raise PeerClosed(Close(int(event.get("code") or NORMAL), str(event.get("reason") or "")))
    frame = frame_of(event)
    try:
        message, cost_s = await parse_frame_metered(frame)
    except FrameRefused as refused:
        budget.charge(len(frame), refused.cost_s)  # charged: a client that reconnects after each refusal still pays
        return close_for(refused.error)
    except Exception as exc:  # an unexpected failure of ours: logged, reported as 1011
        log.exception("session %s failed", session_id)
        return close_for(exc)
    await budget.pay(len(frame), cost_s)  # a rate limit: the client's heaviest messages take their share only
    return message


def frame_of(event: Message) -> str | bytes:
    """A received event's frame, text or binary, as it came."""
    text, data = event.get("text"), event.get("bytes")
    return text if text is not None else (data or b"")


async def send_within(ws: WebSocket, frame: str | bytes, write_timeout_s: float) -> None:
    """Send one frame. Raises SlowReader (after aborting the connection) if the client's socket does not take it
    within `write_timeout_s`, PeerClosed if the connection is gone."""
    try:
        async with asyncio.timeout(write_timeout_s):
            if isinstance(frame, str):
                await ws.send_text(frame)
            else:
                await ws.send_bytes(frame)
    except TimeoutError:
        abort(ws)
        raise SlowReader(f"The client did not read for {write_timeout_s:.0f} s.") from None
    except (WebSocketDisconnect, RuntimeError, OSError):
        raise PeerClosed(Close(1006, "the client's connection was lost")) from None


def abort(ws: WebSocket) -> None:
    """Drop the connection now, unsent data and all (uvicorn's own close waits for the client to read it)."""
    extension = (ws.scope.get("extensions") or {}).get(ABORT_EXTENSION)
    if extension is not None:
        extension["abort"]()
