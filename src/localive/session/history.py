"""A session's conversation history: its entries, and the edits interruption and compression make to it."""

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


def keep_after_interruption(history: list[Turn], mark: int, heard: str, cancelled: set[str]) -> None:
    """Rewrite the entries from `mark` (the interrupted turn's): keep its tool exchanges except cancelled calls,
    and of its words only `heard` — what the user was given (text) or heard (audio)."""
    kept = [t for t in history[mark:]
            if not (t.role == "model" and not t.calls) and not cancelled.intersection(t.call_ids)]
    del history[mark:]
    history.extend(kept)
    if heard:
        history.append(Turn("model", heard))


def whole_turns_to_drop(history: list[Turn], sizes: list[int], tokens: int, target: int) -> int:
    """How many of the oldest entries to drop to bring `tokens` down to `target`, cutting only before a user
    entry (a turn goes with what answered it) and never the latest user entry. `sizes`: tokens per entry."""
    last_user = max((i for i, t in enumerate(history) if t.role == "user"), default=0)
    cut = dropped = 0  # a running sum: linear in the history's length, however many entries it has
    while cut < last_user and tokens - dropped > target:
        dropped += sizes[cut]
        cut += 1
        while cut < last_user and history[cut].role != "user":
            dropped += sizes[cut]
            cut += 1
    return cut
