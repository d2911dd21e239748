"""The scoring interface proactive audio's judge uses (session/proactive.py; the method: engines/llm/addressed.py).

Kept apart from `LLM` (base.py), which is what every session generates with: scoring generates nothing. Every
backend localive loads (embedded, remote, emulator) implements both, as a `ScoringLLM`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from localive.engines.llm.base import LLM, ChatMessage


class Scorer(Protocol):
    """A model that scores text instead of generating it. Implementations run blocking work off the event loop."""

    name: str
    # Whether `continuation_logprobs` works: an embedded model scores any text; a chat-completions backend gives
    # no prompt log-probabilities, so proactive audio's judge asks it the yes/no question alone (session/proactive.py).
    can_score_continuations: bool

    async def continuation_logprobs(self, chats: Sequence[list[ChatMessage]], text: str) -> list[float]:
        """For each chat: log P(`text` is its next user message | the chat), summed over the text's tokens
        (proactive audio's judge, engines/llm/addressed.py). Generates nothing, leaves the cache of the
        conversation being generated alone; runs off the event loop."""
        ...

    async def reply_start_logprobs(self, chat: list[ChatMessage], starts: Sequence[Sequence[str]]) -> list[float]:
        """For each group of words: log P(the assistant's reply to `chat` starts with one of them), from the first
        token's distribution (e.g. [("yes", "Yes"), ("no", "No")]). Generates nothing, leaves the conversation's
        cache alone; runs off the event loop. A backend that returns no probabilities answers with its choice
        instead: 0.0 (certain) for the chosen group, -inf for the others."""
        ...

    async def prepare_scoring(self, chats: Sequence[list[ChatMessage]],
                              question: list[ChatMessage] | None = None) -> None:
        """Evaluate ahead of time what the next `continuation_logprobs(chats, …)` and `reply_start_logprobs` of
        `question` (with the utterance where addressed.SENTINEL stands) will start with, so that they cost less
        then (e.g. while the user listens to the answer). The results do not change; runs off the event loop."""
        ...


class ScoringLLM(LLM, Scorer, Protocol):
    """A backend that generates and scores: what `LLMPool` loads, so that a session's model can judge too."""
