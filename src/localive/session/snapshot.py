"""A session's resumable state as JSON: the setup in force, the history, results waiting to join it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from localive.engines.llm.base import CalledFunction
from localive.session.history import Entry

VERSION = 1


@dataclass
class State:
    setup: dict[str, Any]
    history: list[Entry]
    deferred: list[Entry]
    session_key: str
    consumed: int  # index of the last client message whose effect is in this state
    started_at: float = 0.0  # when the session first connected (clock time)


def _turn(turn: Entry) -> dict[str, Any]:
    data: dict[str, Any] = {"role": turn.role, "text": turn.text}
    if turn.calls:
        data["calls"] = [{"name": c.name, "args": c.args} for c in turn.calls]
        data["callIds"] = list(turn.call_ids)
    if turn.name:
        data["name"] = turn.name
    return data


def _from(data: dict[str, Any]) -> Entry:
    calls = tuple(CalledFunction(c["name"], dict(c["args"])) for c in data.get("calls", []))
    return Entry(data["role"], data["text"], calls, tuple(data.get("callIds", [])), data.get("name"))


def dumps(state: State) -> str:
    return json.dumps({
        "v": VERSION,
        "setup": state.setup,
        "history": [_turn(t) for t in state.history],
        "deferred": [_turn(t) for t in state.deferred],
        "sessionKey": state.session_key,
        "consumed": state.consumed,
        "startedAt": state.started_at,
    }, ensure_ascii=False, separators=(",", ":"))


def loads(text: str) -> State:
    data = json.loads(text)
    if data.get("v") != VERSION:
        raise ValueError(f"unknown snapshot version {data.get('v')}")
    return State(data["setup"], [_from(t) for t in data["history"]], [_from(t) for t in data["deferred"]],
                 data["sessionKey"], int(data["consumed"]), float(data.get("startedAt", 0.0)))
