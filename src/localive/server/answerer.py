"""Who answers a Live connection when it is not this process's models: an upstream Live API (`localive relay`,
server/relay.py) or a cassette (`localive serve --replay`, server/replay.py).

The Live endpoint (server/live_ws.py) does everything before and after the same way for all: the handshake's
checks, the credential, the setup's arrival within its timeout, admission, the close and its log line. Only the
session in between is the answerer's: `open` gets the connection (`Call`) and returns an `AnsweredSession`, whose
`run` goes on until the session ends and returns the close to send (and whether the client closed first), and
whose `go_away` the server calls when it drains.

`ClientLink` is the client's side of such a session, with the same pieces as a local session's
(server/client_socket.py): frames in, each parsed and checked by the protocol and charged to the client's work
budget; messages out, each taken by the client within the write timeout or the connection is aborted; one sender at
a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.websockets import WebSocket

from localive.clock import Clock
from localive.protocol import server_messages as out
from localive.protocol.errors import Close, LiveError, ShuttingDown, close_for
from localive.protocol.messages import ClientMessage, Setup
from localive.protocol.server_messages import ServerMessage
from localive.server.auth import Credential
from localive.server.budget import WorkBudget
from localive.server.client_socket import PeerClosed, frame_of, parse_event, send_within


@dataclass
class Call:
    """A Live connection whose setup has arrived and been admitted."""

    ws: WebSocket
    version: str  # the API version in its path: v1beta, v1alpha, v1
    session_id: str
    setup: Setup  # parsed and checked
    first: dict[str, Any]  # the setup message as the client sent it
    credential: Credential
    secret: str | None  # the client's key or token, to be cut out of anything written
    budget: WorkBudget
    write_timeout_s: float


class AnsweredSession(Protocol):
    def go_away(self, deadline: float) -> None: ...

    async def run(self) -> tuple[Close, bool]: ...


class Answerer(Protocol):
    def describe(self) -> str: ...

    def open(self, call: Call) -> AnsweredSession: ...


class ClientLink:
    """The client's side of a session answered elsewhere (server/client_socket.py's pieces, for one connection)."""

    def __init__(self, call: Call) -> None:
        self._call = call
        self._sending = asyncio.Lock()

    async def receive(self) -> tuple[dict[str, Any], ClientMessage, str | bytes] | Close:
        """The client's next message: as JSON, as parsed and checked by the protocol (so that a relay or a replay
        takes exactly the messages a local session takes, with the same bounds on their work), and its frame as it
        came; or the Close a refused frame calls for. Raises PeerClosed when the client closes."""
        event = await self._call.ws.receive()
        message = await parse_event(event, self._call.session_id, self._call.budget)
        if isinstance(message, Close):
            return message
        frame = frame_of(event)
        return json.loads(frame), message, frame

    async def send(self, frame: str | bytes) -> None:
        """Send one frame, one sender at a time (raises SlowReader or PeerClosed: `send_within`)."""
        async with self._sending:
            await send_within(self._call.ws, frame, self._call.write_timeout_s)


class SessionElsewhere:
    """What a relayed and a replayed session share: the client's link, the closes the server makes itself (a
    token's expiry, a drain's deadline) and the drain's `goAway`. A subclass answers in `_answer` and tidies up in
    `_ended`; its parts end the session by awaiting `self._closes.get()` among them (`first_to_end`)."""

    def __init__(self, call: Call, clock: Clock) -> None:
        self._call = call
        self._clock = clock
        self._client = ClientLink(call)
        self._closes: asyncio.Queue[Close] = asyncio.Queue(maxsize=4)  # token expiry, a drain's deadline
        self._leaving: asyncio.Task[None] | None = None

    def go_away(self, deadline: float) -> None:
        if self._leaving is None:
            self._leaving = asyncio.create_task(self._leave_by(deadline), name=f"leave-{self._call.session_id}")

    async def run(self) -> tuple[Close, bool]:
        expiry = self._call.credential.watch_expiry(self._closes)
        try:
            return await self._answer()
        except LiveError as exc:
            return close_for(exc), False
        finally:
            for task in (expiry, self._leaving):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            self._ended()

    async def _answer(self) -> tuple[Close, bool]:
        raise NotImplementedError

    def _ended(self) -> None:
        """The session is over (whatever ended it)."""

    async def _say(self, message: ServerMessage) -> None:
        await self._client.send(json.dumps(message, separators=(",", ":"), ensure_ascii=False))

    async def _leave_by(self, deadline: float) -> None:
        """The server drains: `goAway` with the time left, then close (1001) at `deadline` (clock time)."""
        left = max(0.0, deadline - self._clock.time())
        with contextlib.suppress(PeerClosed, LiveError):
            await self._say(out.go_away(round(left)))
        if left > 0:
            await self._clock.sleep(left)
        await self._closes.put(close_for(ShuttingDown()))


async def first_to_end(*work: Coroutine[Any, Any, Close | None]) -> tuple[Close, bool]:
    """Run the session's parts (reading the client, sending to it, waiting for a close) until the first ends;
    cancel the rest. Returns the close to send, or the client's own close and True when the client closed first
    (a part raised PeerClosed); a part that ends with a Close (None: a normal end) or raises a LiveError gives the
    close to send."""
    tasks = [asyncio.create_task(part) for part in work]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    first = next(t for t in tasks if t in done)
    if (exc := first.exception()) is not None:
        if isinstance(exc, PeerClosed):
            return exc.close, True
        return close_for(exc), False
    return first.result() or close_for(None), False


__all__ = ["AnsweredSession", "Answerer", "Call", "ClientLink", "PeerClosed", "SessionElsewhere", "first_to_end"]
