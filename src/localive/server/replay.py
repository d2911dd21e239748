"""`localive serve --replay DIR`: answer sessions from cassettes (cassette/format.py) instead of models.

A new connection is given the first cassette, in the order they were recorded, whose recorded setup matches its
setup, preferring the ones used least so far: the same app run twice gets the same cassettes. A setup that resumes
with ``replay-handle-N`` (the handle a replay gives for the recorded ``<handle N>``) matches the cassette recorded
resuming with ``<handle N>``. No cassette matching: the connection is closed (1007) with the nearest one's first
difference.

Then the cassette is played. Its events are taken in order: each client message must match the client's next
message (cassette/match.py), and each server message is sent once the client messages recorded before it have
come — with the delay recorded after the last of them (`timing="recorded"`), or at once (`"fast"`). A recorded
server close is sent as it was (code and reason); a recorded client close is where the client is expected to
leave. A client message that does not match, or one more than the cassette holds, closes the session with 1007
and a reason naming the first difference; the whole report goes to the log at WARNING for the developer.
Handles are given as ``replay-handle-N``; audio recorded as a hash (--no-audio) is sent as silence of its length.
A cassette's header may hold `faults`, an emulator script's [faults] table (protocol/faults.py): its goAway ends
each session given the cassette (goAway, then 1011 "Deadline expired…"), its setup error refuses the first ones,
and the rest reshape the recorded messages through the same fault stage (server/fault_stage.py).
The server messages are a function of the cassette alone: replaying the same run gives the same bytes, and the
log's last line for each session (INFO) gives how many were sent and the SHA-256 of them all, to compare runs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from localive.cassette.format import Cassette, Event
from localive.cassette.match import MatchRules, first_difference
from localive.cassette.redact import is_audio_blob, placeholder_of, replay_handle
from localive.clock import Clock
from localive.protocol import server_messages as out
from localive.protocol.errors import (
    Close,
    InternalError,
    LiveError,
    Relayed,
    ReplayMismatch,
    ScriptedFault,
    close_for,
)
from localive.protocol.server_messages import ServerMessage
from localive.server.answerer import AnsweredSession, Call, PeerClosed, SessionElsewhere, first_to_end
from localive.server.fault_stage import FaultStage, Outgoing
from localive.session.lifetime import DeadlineExpired

log = logging.getLogger("localive.replay")

Timing = Literal["recorded", "fast"]
REASON_PREFIX = "Replay: "
OUT_QUEUE = 64  # recorded messages waiting for the fault stage
MAX_SILENCE_BYTES = 16 * 1024 * 1024  # one hashed audio blob sent as silence


@dataclass
class CassetteLibrary:
    """The cassettes of one --replay folder and how often each has been given out."""

    cassettes: list[Cassette]
    uses: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.uses = [0] * len(self.cassettes)

    def choose(self, setup: dict[str, Any], rules: MatchRules) -> Cassette | str:
        """The cassette for a session that sent `setup`, or a report of why none fits."""
        setup = _recorded_form(setup)
        order = sorted(range(len(self.cassettes)), key=lambda i: (self.uses[i], i))
        for i in order:
            if first_difference(setup, self.cassettes[i].setup, rules) is None:
                self.uses[i] += 1
                return self.cassettes[i]
        nearest = self.cassettes[order[0]]
        difference = first_difference(setup, nearest.setup, rules)
        return f"no cassette recorded this setup; against {nearest.name}: {difference}"


@dataclass(frozen=True)
class Replay:
    """The replay server's `Answerer` (server/answerer.py)."""

    library: CassetteLibrary
    clock: Clock
    timing: Timing = "recorded"
    rules: MatchRules = field(default_factory=MatchRules)
    open_handles: dict[str, str] = field(default_factory=dict)  # a handle sent on a session still open → its id
    setups: Counter[str] = field(default_factory=Counter)  # sessions given each cassette

    def refusal(self, cassette: Cassette, call: Call) -> LiveError | None:
        """A cassette's setup-time faults: its `setup_error` for the first sessions given it, and with
        `refuse_resume_while_open`, a resumption of a handle sent on a session still open (1011)."""
        self.setups[cassette.name] += 1
        error = cassette.faults.setup_error
        if error is not None and self.setups[cassette.name] <= error.count:
            return ScriptedFault(error.code, error.reason)
        resumption = call.setup.session_resumption
        if cassette.faults.refuse_resume_while_open and resumption is not None and resumption.handle in \
                self.open_handles:
            return ScriptedFault()
        return None

    def describe(self) -> str:
        return (f"replaying {len(self.library.cassettes)} cassette(s), {self.timing} timing, text matched "
                f"{self.rules.text}, audio by {self.rules.audio}; no model loaded")

    def open(self, call: Call) -> AnsweredSession:
        return ReplayedSession(self, call)


class ReplayedSession(SessionElsewhere):
    def __init__(self, replay: Replay, call: Call) -> None:
        super().__init__(call, replay.clock)
        self._replay = replay
        self._matched: dict[int, float] = {}  # event index → when the client's message matched it (clock time)
        self._progress = asyncio.Event()
        self._cassette: Cassette | None = None
        self._sent = 0
        self._digest = hashlib.sha256()  # of every frame sent: the log's proof that a replay was the same
        self._out: asyncio.Queue[Outgoing] | None = None  # into the fault stage, when the cassette has faults
        self._handles: list[str] = []  # sent on this connection (a cassette's refuse_resume_while_open)

    async def _answer(self) -> tuple[Close, bool]:
        call = self._call
        if call.credential.gate is not None:
            await call.credential.gate(call.setup)  # a token is redeemed as for a real session
        chosen = self._replay.library.choose(call.first, self._replay.rules)
        if isinstance(chosen, str):
            return self._mismatch(chosen), False
        self._cassette = chosen
        if (refusal := self._replay.refusal(chosen, call)) is not None:
            return close_for(refusal), False
        self._matched[0] = self._replay.clock.monotonic()
        log.info("session %s: replaying %s", call.session_id, chosen.name)
        return await self._play(chosen)

    def _ended(self) -> None:
        for handle in self._handles:
            if self._replay.open_handles.get(handle) == self._call.session_id:
                del self._replay.open_handles[handle]
        if self._cassette is not None:
            log.info("session %s: replay of %s ended: %d server messages sent, SHA-256 of their frames %s",
                     self._call.session_id, self._cassette.name, self._sent, self._digest.hexdigest())

    async def _say(self, message: ServerMessage) -> None:
        await self._emit(message)

    async def _play(self, cassette: Cassette) -> tuple[Close, bool]:
        faults = cassette.faults
        parts = [self._read(cassette), self._send(cassette), self._closes.get()]
        if faults.shapes_output:  # the recorded messages go through the fault stage (server/fault_stage.py)
            self._out = asyncio.Queue(maxsize=OUT_QUEUE)
            parts.append(self._write_through(FaultStage(faults, clock=self._replay.clock), self._out))
        if faults.goaway_after_s is not None:
            parts.append(self._deadline(faults.goaway_after_s, faults.goaway_time_left_s))
        return await first_to_end(*parts)

    async def _write_through(self, stage: FaultStage, source: asyncio.Queue[Outgoing]) -> Close:
        async with contextlib.aclosing(stage.pipe(source)) as messages:
            async for message in messages:
                if isinstance(message, Close):
                    return message
                await self._write(message)
        raise AssertionError("the fault stage ends with a Close")

    async def _deadline(self, after_s: float, time_left_s: float) -> Close:
        """The cassette's goAway fault: goAway `after_s` into the session, then 1011 "Deadline expired…"."""
        await self._replay.clock.sleep(after_s)
        await self._emit(out.go_away(round(time_left_s)))
        await self._replay.clock.sleep(time_left_s)
        return close_for(DeadlineExpired())

    async def _emit(self, message: ServerMessage) -> None:
        """Send a message now, or hand it to the fault stage."""
        if self._out is not None:
            await self._out.put(message)
        else:
            await self._write(message)

    async def _write(self, message: ServerMessage) -> None:
        frame = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
        await self._client.send(frame)
        self._sent += 1
        self._digest.update(frame.encode("utf-8") + b"\n")
        update = message.get("sessionResumptionUpdate")
        if isinstance(update, dict) and isinstance(update.get("newHandle"), str) and update["newHandle"]:
            self._handles.append(update["newHandle"])
            self._replay.open_handles[update["newHandle"]] = self._call.session_id

    async def _read(self, cassette: Cassette) -> Close:
        """Match each client message to the next one recorded."""
        clients = [i for i, e in enumerate(cassette.events) if e.side == "client"][1:]  # after the setup
        position = 0
        while True:
            try:
                got = await self._client.receive()
            except PeerClosed:
                expected = cassette.events[clients[position]] if position < len(clients) else None
                if expected is not None and expected.message is not None:
                    count = sum(1 for i in clients if cassette.events[i].message is not None)
                    log.warning("session %s: replay of %s: the client left after %d of its %d recorded messages",
                                self._call.session_id, cassette.name, position, count)
                raise
            if isinstance(got, Close):  # a frame the protocol refuses ends the session, as a local one's would
                return got
            message = got[0]
            if position >= len(clients) or cassette.events[clients[position]].message is None:
                return self._mismatch(f"client message {position + 1} was not recorded (the cassette's client "
                                      f"{'closed' if position < len(clients) else 'sent no more'} here)")
            index = clients[position]
            event = cassette.events[index]
            try:
                rules = self._replay.rules.overridden(event.match)
            except ValueError as exc:
                return self._mismatch(f"the cassette's match rules at event {index + 1}: {exc}")
            if (difference := first_difference(message, event.message, rules)) is not None:
                return self._mismatch(f"client message {position + 1}: {difference}")
            self._matched[index] = self._replay.clock.monotonic()
            self._progress.set()
            position += 1

    async def _send(self, cassette: Cassette) -> Close | None:
        """Send the recorded server messages, each once the client messages before it have matched."""
        clock = self._replay.clock
        base_t, base_at = cassette.events[0].t, self._matched[0]
        for index, event in enumerate(cassette.events[1:], start=1):
            if event.side == "client":
                if event.message is None:  # the client closed here: nothing after it can be sent
                    break
                while index not in self._matched:
                    self._progress.clear()
                    await self._progress.wait()
                base_t, base_at = event.t, self._matched[index]
                continue
            if self._replay.timing == "recorded":
                await clock.sleep(max(0.0, base_at + (event.t - base_t) - clock.monotonic()))
            if event.close is not None:
                close = close_for(Relayed(*event.close)) if event.close != (1000, "") else close_for(None)
                if self._out is None:
                    return close
                await self._out.put(close)  # after what the fault stage still holds
                break
            await self._emit(_sent_form(event))
        await asyncio.get_running_loop().create_future()  # the cassette is played: the client ends the session
        raise AssertionError("unreachable")

    def _mismatch(self, report: str) -> Close:
        name = self._cassette.name if self._cassette is not None else "-"
        log.warning("session %s: replay of %s: %s", self._call.session_id, name, report)
        return close_for(ReplayMismatch(REASON_PREFIX + report))


def _recorded_form(setup: dict[str, Any]) -> dict[str, Any]:
    """A client's setup message as the cassette would hold it: a replay's handle as its placeholder."""
    body = setup.get("setup")
    resumption = body.get("sessionResumption") if isinstance(body, dict) else None
    if isinstance(resumption, dict) and isinstance(resumption.get("handle"), str):
        return {**setup, "setup": {**body, "sessionResumption": {  # type: ignore[dict-item]
            **resumption, "handle": placeholder_of(resumption["handle"])}}}
    return setup


def _sent_form(event: Event) -> ServerMessage:
    """A recorded server message as the replay sends it: placeholders as replay handles, hashed audio as silence."""
    message: ServerMessage = _filled(event.message)
    update = message.get("sessionResumptionUpdate")
    if isinstance(update, dict) and isinstance(update.get("newHandle"), str):
        message = {**message, "sessionResumptionUpdate": {**update, "newHandle": replay_handle(update["newHandle"])}}
    return message


def _filled(value: Any) -> Any:
    if is_audio_blob(value) and "data" not in value and isinstance(value.get("bytes"), int):
        if not 0 <= value["bytes"] <= MAX_SILENCE_BYTES:
            raise InternalError(f"{REASON_PREFIX}the cassette's audio blob is too large to send.")
        rest = {k: v for k, v in value.items() if k not in ("bytes", "sha256")}
        return {**rest, "data": base64.b64encode(bytes(value["bytes"])).decode("ascii")}
    if isinstance(value, dict):
        return {k: _filled(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v) for v in value]
    return value
