"""Errors of the Live protocol and the one place that maps them to WebSocket close codes.

The real service reports errors by closing the socket with a code and a short reason
(docs/protocol-notes.md#errors-close-codes-and-reasons);
it never sends a JSON error message. Reasons must fit a close frame (123 bytes) and never carry secrets or
exception details.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_REASON_BYTES = 123

NORMAL = 1000
INVALID_ARGUMENT = 1007
POLICY = 1008  # policy violation, not found, unauthenticated, unimplemented
MESSAGE_TOO_BIG = 1009
INTERNAL = 1011
OVERLOADED = 1013


class LiveError(Exception):
    """A failure that ends a Live session with a specific close code and a short, safe reason."""

    close_code: int = INTERNAL
    default_reason: str = "Internal error encountered."

    def __init__(self, reason: str | None = None) -> None:
        self.reason = reason or self.default_reason
        super().__init__(self.reason)


class InvalidArgument(LiveError):
    """The client sent something malformed: bad JSON, unknown field, wrong type, wrong order (1007)."""

    close_code = INVALID_ARGUMENT
    default_reason = "Request contains an invalid argument."


class NotFound(LiveError):
    """A model or resource that does not exist (1008, as Gemini reports NOT_FOUND)."""

    close_code = POLICY


class Unimplemented(LiveError):
    """A valid request for something this server or this model does not do (1008)."""

    close_code = POLICY
    default_reason = "Operation is not implemented, or supported, or enabled."


class PolicyViolation(LiveError):
    close_code = POLICY
    default_reason = "The operation was aborted."


class MessageTooBig(LiveError):
    close_code = MESSAGE_TOO_BIG
    default_reason = "Message too big."


class Overloaded(LiveError):
    """The server is at capacity; the client may retry later (1013)."""

    close_code = OVERLOADED
    default_reason = "The service is currently overloaded. Please try again later."


class ContextFull(LiveError):
    """The conversation no longer fits the model's context and no contextWindowCompression was asked for."""

    close_code = INTERNAL
    default_reason = "The session's context window is full; use contextWindowCompression to continue longer."


class InternalError(LiveError):
    close_code = INTERNAL


@dataclass(frozen=True)
class Close:
    code: int
    reason: str


def truncate_reason(reason: str, limit: int = MAX_REASON_BYTES) -> str:
    """Cut a reason to `limit` UTF-8 bytes without splitting a character."""
    encoded = reason.encode("utf-8")
    if len(encoded) <= limit:
        return reason
    return encoded[:limit].decode("utf-8", errors="ignore")


def close_for(exc: BaseException) -> Close:
    """Map any exception to the close frame the client sees. The only place that does this. An exception group
    (a task group's failure) closes as the first LiveError in it."""
    if isinstance(exc, BaseExceptionGroup):
        for leaf in _leaves(exc):
            if isinstance(leaf, LiveError):
                return Close(leaf.close_code, truncate_reason(leaf.reason))
    if isinstance(exc, LiveError):
        return Close(exc.close_code, truncate_reason(exc.reason))
    return Close(INTERNAL, InternalError.default_reason)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found
