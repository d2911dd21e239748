"""The function calls a session has sent (`toolCall`) and is waiting on (`toolResponse`).

Every call gets a unique id. A BLOCKING call holds its model turn until the client answers it; a NON_BLOCKING one
runs beside the conversation and may be answered several times (`willContinue`). How responses are matched,
deterministically:

- an id this session never issued, or a call already answered for good → close 1007 (a client bug);
- an id whose call was cancelled (`toolCallCancellation`, sent when the user interrupted) → dropped and logged:
  the client may have answered before the cancellation reached it, which is not a mistake;
- a response whose `name` differs from the call's → close 1007.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from localive.engines.llm.base import CalledFunction
from localive.protocol import messages as wire
from localive.protocol.errors import InvalidArgument

MAX_PENDING_CALLS = 64
REMEMBERED_IDS = 1024  # how many finished/cancelled ids are kept to tell "late" and "duplicate" from "unknown"


@dataclass
class PendingCall:
    id: str
    call: CalledFunction
    non_blocking: bool
    turn: int
    answer: asyncio.Future[wire.FunctionResponse] = field(repr=False, default_factory=asyncio.Future)


class ToolCalls:
    def __init__(self) -> None:
        self._prefix = f"function-call-{secrets.token_hex(4)}"
        self._numbers = itertools.count(1)
        self._pending: dict[str, PendingCall] = {}
        self._finished: OrderedDict[str, str] = OrderedDict()  # id → "answered" | "cancelled"

    def __len__(self) -> int:
        return len(self._pending)

    def issue(self, call: CalledFunction, *, non_blocking: bool, turn: int) -> PendingCall:
        if len(self._pending) >= MAX_PENDING_CALLS:
            raise InvalidArgument(f"More than {MAX_PENDING_CALLS} function calls are waiting for a toolResponse.")
        pending = PendingCall(f"{self._prefix}-{next(self._numbers)}", call, non_blocking, turn)
        self._pending[pending.id] = pending
        return pending

    def resolve(self, response: wire.FunctionResponse) -> PendingCall | None:
        """The call a response answers (its future set), None for a late answer to a cancelled call."""
        call_id = response.id or ""
        pending = self._pending.get(call_id)
        if pending is None:
            state = self._finished.get(call_id)
            if state == "cancelled":
                return None
            if state == "answered":
                raise InvalidArgument(f"Function call '{call_id[:40]}' was already answered.")
            raise InvalidArgument(f"toolResponse for unknown function call id '{call_id[:40]}'.")
        if response.name is not None and response.name != pending.call.name:
            raise InvalidArgument(f"Function call '{call_id[:40]}' is '{pending.call.name[:30]}', not "
                                  f"'{response.name[:30]}'.")
        if not (pending.non_blocking and response.will_continue):
            self._finish(call_id, "answered")
        if not pending.answer.done():
            pending.answer.set_result(response)
        return pending

    def cancel_turn(self, turn: int) -> list[str]:
        """Cancel the still-unanswered BLOCKING calls of an interrupted turn; returns their ids."""
        ids = [c.id for c in self._pending.values() if c.turn == turn and not c.non_blocking]
        for call_id in ids:
            self._pending[call_id].answer.cancel()
            self._finish(call_id, "cancelled")
        return ids

    def cancel_all(self) -> None:
        for call in self._pending.values():
            call.answer.cancel()
        self._pending.clear()

    def _finish(self, call_id: str, state: str) -> None:
        self._pending.pop(call_id, None)
        self._finished[call_id] = state
        while len(self._finished) > REMEMBERED_IDS:
            self._finished.popitem(last=False)


def response_text(response: wire.FunctionResponse) -> str:
    """What the model reads as a function's result: the response object as JSON (Gemini's convention is
    ``{"output": …}`` or ``{"error": …}``; anything else is the output as a whole)."""
    body: dict[str, Any] = {k: v for k, v in (response.response or {}).items() if k != "scheduling"}
    if response.parts:
        body["attachments"] = [p.inline_data.mime_type if p.inline_data else "file" for p in response.parts]
    return json.dumps(body, ensure_ascii=False)


def scheduling_of(response: wire.FunctionResponse) -> str:
    """INTERRUPT, WHEN_IDLE (the default) or SILENT. The seed's example puts `scheduling` inside `response`;
    the field of FunctionResponse wins when both are given."""
    if response.scheduling and response.scheduling != "SCHEDULING_UNSPECIFIED":
        return response.scheduling
    inner = (response.response or {}).get("scheduling")
    if isinstance(inner, str) and inner.upper() in ("INTERRUPT", "WHEN_IDLE", "SILENT"):
        return inner.upper()
    return "WHEN_IDLE"
