"""One entry of a session's conversation history."""

from __future__ import annotations

from dataclasses import dataclass

from localive.engines.llm.base import CalledFunction


@dataclass
class Turn:
    role: str  # "user" | "model" | "tool"
    text: str
    calls: tuple[CalledFunction, ...] = ()  # model: functions called after `text`
    call_ids: tuple[str, ...] = ()
    name: str | None = None  # tool: the function (or "code_execution") whose result `text` is
