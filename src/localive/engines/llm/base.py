"""The LLM interface the session talks to. Engines know nothing of the wire format."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    text: str


@dataclass(frozen=True)
class SamplingParams:
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_output_tokens: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()


class ModelNotInstalled(RuntimeError):
    """The weights or runtime for a model are not installed; the message says what to install."""


class LLM(Protocol):
    """A chat model that streams text. Implementations run blocking inference off the event loop."""

    name: str

    def count_tokens(self, text: str) -> int:
        """Tokens in a plain text, with this model's tokenizer (cheap; may run on the event loop)."""
        ...

    def count_prompt_tokens(self, messages: list[ChatMessage]) -> int:
        """Tokens of the whole prompt these messages render to."""
        ...

    def stream(self, messages: list[ChatMessage], params: SamplingParams) -> AsyncIterator[str]:
        """Yield text pieces as they are generated. Closing the iterator (or cancelling the task that
        iterates it) stops generation promptly; no work keeps running for an abandoned stream."""
        ...
