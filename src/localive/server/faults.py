"""Faults on demand, server-wide: what an emulator script's `[faults]` table (protocol/faults.py) asks of the server.

`ServerFaults` lives with the server's state (server/state.py `ServerState.faults`; None without faults, and then
nothing here runs). It keeps what spans connections:

* the setups seen, so that the first `setup_error.count` of them are refused with the script's code and reason;
* the resumption handles sent on each connection still open (`sessionResumptionUpdate.newHandle`, at most
  `HANDLES_PER_CONNECTION` each, the newest), so that with `refuse_resume_while_open` a setup resuming one of them
  is closed with 1011, as Google does (docs/protocol-notes.md: a resume while the old socket is open).

Both refusals are made before the session exists (server/live_ws.py `_serve`), through `close_for`. For each
connection, `connect` gives a `ConnectionFaults`: its outgoing messages pass through a `FaultStage`
(server/fault_stage.py) when the faults reshape the output, and their handles are noted. The goAway fault is not
here: it is the connection's `Limits` (cli.py).
"""

from __future__ import annotations

import contextlib
import itertools
from collections import deque
from collections.abc import AsyncGenerator

from localive.clock import Clock
from localive.protocol.errors import LiveError, ScriptedFault
from localive.protocol.faults import Faults
from localive.protocol.messages import ClientMessage, Setup
from localive.server.fault_stage import FaultStage, MessageSource, Outgoing

HANDLES_PER_CONNECTION = 16  # the newest handles of a connection that a resumption is checked against


class ServerFaults:
    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.setups = 0  # setups seen (the first message of a connection, when it is a setup)
        self._open: dict[str, int] = {}  # a handle sent on a connection still open → that connection
        self._ids = itertools.count(1)

    def refusal(self, first: ClientMessage) -> LiveError | None:
        """The error to close a connection with, given its first message, before any session exists; or None."""
        if not isinstance(first, Setup):
            return None
        self.setups += 1
        error = self.faults.setup_error
        if error is not None and self.setups <= error.count:
            return ScriptedFault(error.code, error.reason)
        resumption = first.session_resumption
        if self.faults.refuse_resume_while_open and resumption is not None and resumption.handle in self._open:
            return ScriptedFault()  # 1011 "Internal error encountered."
        return None

    def sent(self, connection_id: int, handle: str) -> None:
        """A handle was sent on an open connection."""
        self._open[handle] = connection_id

    def forget(self, connection_id: int, handle: str) -> None:
        """That connection closed (or sent newer handles): a resumption of `handle` is no longer refused."""
        if self._open.get(handle) == connection_id:
            del self._open[handle]

    def connect(self, clock: Clock) -> ConnectionFaults | None:
        """What one connection's output goes through, or None when the faults change nothing there."""
        if not (self.faults.shapes_output or self.faults.refuse_resume_while_open):
            return None
        stage = FaultStage(self.faults, clock=clock) if self.faults.shapes_output else None
        return ConnectionFaults(self, next(self._ids), stage)


class ConnectionFaults:
    """One connection's faults: its fault stage (or none) and the handles it was sent."""

    def __init__(self, server: ServerFaults, connection_id: int, stage: FaultStage | None) -> None:
        self._server = server
        self._id = connection_id
        self._stage = stage
        self._handles: deque[str] = deque()

    async def pipe(self, source: MessageSource) -> AsyncGenerator[Outgoing, None]:
        """The messages to send, in order, until a `Close` (yielded last). Close it with `contextlib.aclosing`."""
        track = self._server.faults.refuse_resume_while_open
        messages = self._stage.pipe(source) if self._stage is not None else _plain(source)
        async with contextlib.aclosing(messages):
            async for message in messages:
                if track and isinstance(message, dict):
                    self._note(message)
                yield message

    def close(self) -> None:
        """The connection is gone: its handles may be resumed."""
        while self._handles:
            self._server.forget(self._id, self._handles.popleft())

    def _note(self, message: dict[str, object]) -> None:
        update = message.get("sessionResumptionUpdate")
        handle = update.get("newHandle") if isinstance(update, dict) else None
        if not isinstance(handle, str) or not handle:
            return
        self._handles.append(handle)
        self._server.sent(self._id, handle)
        if len(self._handles) > HANDLES_PER_CONNECTION:
            self._server.forget(self._id, self._handles.popleft())


async def _plain(source: MessageSource) -> AsyncGenerator[Outgoing, None]:
    while True:
        message = await source.get()
        yield message
        if not isinstance(message, dict):
            return
