"""The LLM interface the session talks to. Engines know nothing of the wire format."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from localive.engines.remote_backend import SessionSlots as SessionSlots  # also importable from here, as before
from localive.protocol.errors import InternalError

Role = Literal["system", "user", "assistant", "tool"]

# The text a NON_BLOCKING call's result stands in with until the client reports it.
PENDING_RESULT = '{"status": "running in the background; the result will be reported when it is ready"}'

# Said (as the user) after function or code results, so that a small model answers from them instead of
# calling again; never stored in history.
RESULT_NUDGE = "Using that result, answer my request in plain words."


@dataclass(frozen=True)
class CalledFunction:
    """A function call the model made (in history), or asks for (streamed out of `LLM.stream`)."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)

    def args_json(self) -> str:
        return json.dumps(self.args, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    text: str
    calls: tuple[CalledFunction, ...] = ()  # assistant: the functions it called after `text`
    name: str | None = None  # tool: the function whose result `text` is


@dataclass(frozen=True)
class FunctionSpec:
    """A function the model may call: name, description and the JSON Schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class FunctionCalls:
    """Streamed by `LLM.stream` (last) when the model calls functions instead of, or after, answering."""

    calls: tuple[CalledFunction, ...]


@dataclass(frozen=True)
class SamplingParams:
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_output_tokens: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    presence_penalty: float | None = None
    frequency_penalty: float | None = None


class BackendError(InternalError):
    """A remote serving engine failed (unreachable, timed out, an HTTP error, a broken stream). The session ends
    with 1011 and this reason, which names the stage and never carries a key or a URL's credentials."""

    def __init__(self, stage: str, problem: str) -> None:
        super().__init__(f"{stage} failed: {problem}")
        self.stage = stage


# A stable, opaque id of the session whose turn is running (the same across resumptions). Set by the session in
# its turn tasks; remote backends send it with their requests so that prefix caches and routers keep the session
# on one replica. A context variable rather than a `stream()` argument: every LLM call of a turn (the answer,
# thinking, the proactive judge) happens inside the session's tasks, and no embedded engine needs it.
SESSION_ID: ContextVar[str | None] = ContextVar("localive_session_id", default=None)

# The prompt's token count as the backend reported it for the last stream of this task (remote backends that send
# `usage`); None where it did not. The session uses it in usageMetadata instead of its own estimate.
REPORTED_PROMPT_TOKENS: ContextVar[int | None] = ContextVar("localive_reported_prompt_tokens", default=None)


class LLM(Protocol):
    """A chat model that streams text. Implementations run blocking inference off the event loop. (Scoring text
    for proactive audio's judge is a separate interface: `Scorer`, scoring.py.)"""

    name: str
    context_tokens: int  # the prompt and the answer must fit in this many tokens

    def count_tokens(self, text: str) -> int:
        """Tokens in a plain text, with this model's tokenizer (cheap; may run on the event loop)."""
        ...

    def count_prompt_tokens(self, messages: list[ChatMessage], functions: Sequence[FunctionSpec] = ()) -> int:
        """Tokens of the whole prompt these messages (and declared functions) render to."""
        ...

    def stream(self, messages: list[ChatMessage], params: SamplingParams,
               functions: Sequence[FunctionSpec] = ()) -> AsyncIterator[str | FunctionCalls]:
        """Yield text pieces as they are generated, then at most one `FunctionCalls` (only when `functions` are
        given: each call names one of them, with arguments that fit its schema). Closing the iterator (or
        cancelling the task that iterates it) stops generation promptly; no work keeps running for an abandoned
        stream."""
        ...


@runtime_checkable
class Prefills(Protocol):
    """An LLM that can read a prompt ahead (its KV cache), so that a later `stream` on a prompt that begins the same
    way evaluates only the rest (session/foresight.py reads the user's words while they speak)."""

    @property
    def idle(self) -> bool:
        """Nothing is running or waiting on the model: reading ahead now delays nobody."""
        ...

    async def prefill(self, messages: list[ChatMessage], functions: Sequence[FunctionSpec] = ()) -> int:
        """Read the prompt of `messages` up to the end of the last message's text (what follows it depends on
        nothing); returns the tokens evaluated (0: all were cached already)."""
        ...
