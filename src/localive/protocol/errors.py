"""Errors of the Live protocol and the one place that maps them to WebSocket close codes.

The real service reports errors by closing the socket with a code and a short reason
(docs/protocol-notes.md#errors-close-codes-and-reasons);
it never sends a JSON error message. Reasons must fit a close frame (123 bytes) and never carry secrets or
exception details.

Every close the server sends is made by `close_for`, from an error or from None (a normal end). Each error says
who is to blame for it, which chooses the level its close is logged at (`log_close`): the client (a malformed or
refused request: INFO), the server or one of its backends (WARNING; an unexpected exception also has its
traceback logged, at ERROR, where it is caught), or nobody (a normal or planned end: DEBUG).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import ClassVar, Literal

MAX_REASON_BYTES = 123

NORMAL = 1000
GOING_AWAY = 1001  # the server is shutting down (a drain's end): resume on a new connection
INVALID_ARGUMENT = 1007
POLICY = 1008  # policy violation, not found, unauthenticated, unimplemented
MESSAGE_TOO_BIG = 1009
INTERNAL = 1011
OVERLOADED = 1013

Blame = Literal["client", "server", "nobody"]
LOG_LEVELS: dict[Blame, int] = {"client": logging.INFO, "server": logging.WARNING, "nobody": logging.DEBUG}


class LiveError(Exception):
    """A failure that ends a Live session with a specific close code and a short, safe reason."""

    close_code: int = INTERNAL
    default_reason: str = "Internal error encountered."
    blame: ClassVar[Blame] = "server"

    def __init__(self, reason: str | None = None) -> None:
        self.reason = reason or self.default_reason
        super().__init__(self.reason)


class InvalidArgument(LiveError):
    """The client sent something malformed: bad JSON, unknown field, wrong type, wrong order (1007)."""

    close_code = INVALID_ARGUMENT
    default_reason = "Request contains an invalid argument."
    blame = "client"


class NotFound(LiveError):
    """A model or resource that does not exist (1008, as Gemini reports NOT_FOUND)."""

    close_code = POLICY
    blame = "client"


class Unimplemented(LiveError):
    """A valid request for something this server or this model does not do (1008)."""

    close_code = POLICY
    default_reason = "Operation is not implemented, or supported, or enabled."
    blame = "client"


class PolicyViolation(LiveError):
    close_code = POLICY
    default_reason = "The operation was aborted."
    blame = "client"


class MessageTooBig(LiveError):
    close_code = MESSAGE_TOO_BIG
    default_reason = "Message too big."
    blame = "client"


class Overloaded(LiveError):
    """The server is at capacity; the client may retry later (1013)."""

    close_code = OVERLOADED
    default_reason = "The service is currently overloaded. Please try again later."


class ShuttingDown(LiveError):
    """The server is draining (SIGTERM): new sessions are refused with 1013 and open ones, after a `goAway`, end with
    1001 at the drain's end, resumable elsewhere (server/drain.py)."""

    close_code = GOING_AWAY
    default_reason = "The server is shutting down: resume the session on a new connection."
    blame = "nobody"


class ContextFull(LiveError):
    """The conversation no longer fits the model's context and no contextWindowCompression was asked for."""

    close_code = INTERNAL
    default_reason = "The session's context window is full; use contextWindowCompression to continue longer."
    blame = "client"


class UpstreamUnavailable(LiveError):
    """`localive relay` could not open the session upstream (1011; the log says why)."""

    close_code = INTERNAL
    default_reason = "The service is currently unavailable."


class ReplayMismatch(LiveError):
    """`localive serve --replay`: the client's message is not the one the cassette recorded (1007, naming the
    first difference)."""

    close_code = INVALID_ARGUMENT
    blame = "client"


class InternalError(LiveError):
    close_code = INTERNAL


class StageFailed(InternalError):
    """A stage of a turn (speech recognition, the language model, speech synthesis, code execution, the session
    store) failed unexpectedly: 1011 with a reason that names the stage, never the exception's details (those are
    logged where it is caught). Remote backends raise their own, more precise errors (BackendFailed, BackendError),
    which name their stage too."""

    def __init__(self, stage: str, what: str = "internal error") -> None:
        self.stage = stage
        super().__init__(f"The {stage} stage failed: {what}.")


class ScriptedFault(LiveError):
    """A close the emulator script's `[faults]` table asked for (protocol/faults.py): a setup error, a resumption
    refused while the old connection is open, a close during a tool call. Its code and reason are the real
    service's (or the script's own); planned, so nobody is to blame."""

    blame = "nobody"

    def __init__(self, code: int = INTERNAL, reason: str | None = None) -> None:
        self.close_code = code
        super().__init__(reason)


class Relayed(ScriptedFault):
    """The session was answered elsewhere, and that side closed it: an upstream Live API (`localive relay`) or a
    recorded close (`localive serve --replay`). Its code and reason are passed on as they are (an empty reason
    stays empty); codes that cannot be sent in a close frame (1005, 1006, 1015: no close frame came) become 1011."""

    UNSENDABLE = (1005, 1006, 1015)

    def __init__(self, code: int, reason: str) -> None:
        if code in self.UNSENDABLE or not 1000 <= code <= 4999:
            code, reason = INTERNAL, "The upstream connection was lost."
        super().__init__(code, reason)
        self.reason = reason


@dataclass(frozen=True)
class Close:
    """A close frame: its code and reason, and who is to blame (never sent; not part of equality)."""

    code: int
    reason: str
    blame: Blame = field(default="nobody", compare=False)


def truncate_reason(reason: str, limit: int = MAX_REASON_BYTES) -> str:
    """Cut a reason to `limit` UTF-8 bytes without splitting a character."""
    encoded = reason.encode("utf-8")
    if len(encoded) <= limit:
        return reason
    return encoded[:limit].decode("utf-8", errors="ignore")


def close_for(exc: BaseException | None) -> Close:
    """The close frame the client sees for an exception, or for None: a normal end (1000, no reason). The only
    place that makes one. An exception group (a task group's failure) closes as the first LiveError in it; any
    other exception as an internal error, with none of its details."""
    if exc is None:
        return Close(NORMAL, "", "nobody")
    if isinstance(exc, BaseExceptionGroup):
        for leaf in _leaves(exc):
            if isinstance(leaf, LiveError):
                return _close_of(leaf)
    if isinstance(exc, LiveError):
        return _close_of(exc)
    return Close(INTERNAL, InternalError.default_reason, "server")


def log_close(logger: logging.Logger, session_id: str, close: Close) -> None:
    """Say why a session ends, at the level its blame calls for (LOG_LEVELS)."""
    logger.log(LOG_LEVELS[close.blame], "session %s closed %d: %s", session_id, close.code, close.reason or "-")


def _close_of(error: LiveError) -> Close:
    return Close(error.close_code, truncate_reason(error.reason), error.blame)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found
