"""A session's conversation history: its entries, and every edit made to them (`History`).

Only `History` changes the entries: what the user and the model said, tool results (a NON_BLOCKING result that
arrives during a model turn waits in `deferred` until the turn is over), the rewrite after an interruption (only
what the user was given or heard stays), and the two bounds — by bytes as messages arrive (`bound_bytes`), and by
tokens before a turn (session/prompt.py's `fit_context`, which drops what `drop_oldest` says).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload

from localive.engines.llm.base import CalledFunction
from localive.protocol.errors import ContextFull

log = logging.getLogger("localive.session")

# History is bounded as messages arrive, before any turn counts its tokens (security finding F6): a token is
# rarely longer than this many bytes, so a history beyond context_tokens × this cannot fit the model anyway.
HISTORY_BYTES_PER_TOKEN = 16
ENTRY_OVERHEAD_BYTES = 64  # counted per history entry, so that a flood of tiny turns is bounded too


@dataclass
class Entry:
    role: str  # "user" | "model" | "tool"
    text: str
    calls: tuple[CalledFunction, ...] = ()  # model: functions called after `text`
    call_ids: tuple[str, ...] = ()
    name: str | None = None  # tool: the function (or "code_execution") whose result `text` is


class History(Sequence[Entry]):
    """The entries, oldest first (read as a sequence), and the results waiting to join them."""

    def __init__(self, entries: Iterable[Entry] = (), deferred: Iterable[Entry] = ()) -> None:
        self._entries = list(entries)
        self._deferred = list(deferred)  # NON_BLOCKING results that arrived during a model turn

    @overload
    def __getitem__(self, index: int) -> Entry: ...
    @overload
    def __getitem__(self, index: slice) -> list[Entry]: ...
    def __getitem__(self, index: int | slice) -> Entry | list[Entry]:
        return self._entries[index]

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries)

    @property
    def deferred(self) -> list[Entry]:
        return list(self._deferred)

    # --- additions --------------------------------------------------------------------------------------

    def add(self, entry: Entry) -> None:
        self._entries.append(entry)

    def add_text(self, role: str, text: str) -> bool:
        """What the user or the model said; nothing for empty text. Returns whether it was added."""
        if text:
            self._entries.append(Entry(role, text))
        return bool(text)

    def add_tool(self, name: str, text: str) -> None:
        self._entries.append(Entry("tool", text, name=name))

    def defer(self, entry: Entry) -> None:
        """A result that joins the history once the model turn in progress is over (`take_deferred`)."""
        self._deferred.append(entry)

    def take_deferred(self) -> None:
        self._entries.extend(self._deferred)
        self._deferred.clear()

    # --- rewrites ---------------------------------------------------------------------------------------

    def drop_last(self) -> None:
        self._entries.pop()

    def keep_after_interruption(self, mark: int, heard: str, cancelled: set[str]) -> None:
        """Rewrite the entries from `mark` (the interrupted turn's): keep its tool exchanges except cancelled
        calls, and of its words only `heard` — what the user was given (text) or heard (audio)."""
        kept = [t for t in self._entries[mark:]
                if not (t.role == "model" and not t.calls) and not cancelled.intersection(t.call_ids)]
        del self._entries[mark:]
        self._entries.extend(kept)
        if heard:
            self._entries.append(Entry("model", heard))

    def drop_oldest(self, sizes: list[int], total: int, target: int) -> int:
        """Drop the oldest whole turns to bring `total` (the sum of `sizes`, one per entry) down to `target`;
        returns how many entries went."""
        cut = whole_turns_to_drop(self._entries, sizes, total, target)
        del self._entries[:cut]
        return cut

    def bound_bytes(self, limit: int, *, compress: bool, session_id: str) -> None:
        """Keep the history within `limit` bytes as it grows: with contextWindowCompression (`compress`) drop the
        oldest whole turns at once (to half the bound), without it end the session as a full context does (1011).
        Linear in the history's size, which this keeps bounded."""
        sizes = [len(t.text.encode("utf-8")) + ENTRY_OVERHEAD_BYTES for t in self._entries]
        total = sum(sizes)
        if total <= limit:
            return
        if not compress:
            raise ContextFull()
        cut = self.drop_oldest(sizes, total, limit // 2)
        log.info("session %s: history %d bytes > %d: dropped the oldest %d entries", session_id, total, limit, cut)
        if total - sum(sizes[:cut]) > limit:  # the newest turn alone is too big for the model
            raise ContextFull()

    # --- reading ----------------------------------------------------------------------------------------

    def reply_since(self, mark: int) -> str:
        """The model's words (not its tool calls) from `mark` on."""
        return " ".join(t.text for t in self._entries[mark:] if t.role == "model" and t.text and not t.calls)

    def last_user_text(self) -> str:
        return next((t.text for t in reversed(self._entries) if t.role == "user"), "")


def whole_turns_to_drop(history: Sequence[Entry], sizes: list[int], tokens: int, target: int) -> int:
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
