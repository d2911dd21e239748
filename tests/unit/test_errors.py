"""`close_for`, the one place that makes a close frame, and the log level each close's blame chooses."""

from __future__ import annotations

import logging

import pytest

import localive.server.live_ws  # noqa: F401  # every LiveError subclass of the server, for the walk below
from localive.engines.llm.base import BackendError
from localive.engines.speech_remote import BackendFailed
from localive.protocol.errors import (
    LOG_LEVELS,
    MAX_REASON_BYTES,
    Close,
    ContextFull,
    InternalError,
    InvalidArgument,
    LiveError,
    MessageTooBig,
    NotFound,
    Overloaded,
    PolicyViolation,
    Unimplemented,
    close_for,
    log_close,
)
from localive.server.auth import INVALID_KEY, TOKEN_EXPIRED, TokenExpired, TokenUsedUp, Unauthenticated
from localive.server.live_ws import SlowReader
from localive.session.lifetime import DEADLINE_REASON, DeadlineExpired

ALLOWED_CODES = {1000, 1001, 1007, 1008, 1009, 1011, 1013}  # Gemini's (protocol-notes.md), 1009, 1013, 1001 (drain)


@pytest.mark.parametrize(("error", "expected"), [
    (None, (1000, "", "nobody")),
    (InvalidArgument(), (1007, "Request contains an invalid argument.", "client")),
    (NotFound("API version v9 is not supported."), (1008, "API version v9 is not supported.", "client")),
    (Unimplemented(), (1008, "Operation is not implemented, or supported, or enabled.", "client")),
    (PolicyViolation("No setup message was received in time."),
     (1008, "No setup message was received in time.", "client")),
    (Unauthenticated(), (1008, INVALID_KEY, "client")),
    (MessageTooBig(), (1009, "Message too big.", "client")),
    (ContextFull(), (1011, ContextFull.default_reason, "client")),
    (TokenUsedUp(), (1011, "Token has been used too many times", "client")),
    (SlowReader("The client did not read for 30 s."), (1011, "The client did not read for 30 s.", "client")),
    (TokenExpired(), (1011, TOKEN_EXPIRED, "nobody")),
    (DeadlineExpired(), (1011, "Deadline expired before operation could complete.", "nobody")),
    (InternalError(), (1011, "Internal error encountered.", "server")),
    (BackendError("LLM", "timed out"), (1011, "LLM failed: timed out", "server")),
    (BackendFailed("speech synthesis", "HTTP 500"), (1011, "The speech synthesis backend failed: HTTP 500.", "server")),
    (Overloaded(), (1013, "The service is currently overloaded. Please try again later.", "server")),
    (KeyError("secret-api-key"), (1011, "Internal error encountered.", "server")),
])
def test_each_error_closes_with_its_code_reason_and_blame(error: BaseException | None,
                                                         expected: tuple[int, str, str]) -> None:
    close = close_for(error)
    assert (close.code, close.reason, close.blame) == expected


def test_the_deadline_keeps_geminis_words() -> None:
    assert close_for(DeadlineExpired()).reason == DEADLINE_REASON


def test_a_task_groups_failure_closes_as_the_first_live_error_in_it() -> None:
    group = BaseExceptionGroup("turn", [RuntimeError("boom"),
                                        ExceptionGroup("inner", [ValueError("x"), BackendError("ASR", "HTTP 502")])])
    assert close_for(group) == Close(1011, "ASR failed: HTTP 502")
    assert close_for(group).blame == "server"
    assert close_for(ExceptionGroup("g", [ValueError("secret")])) == Close(1011, "Internal error encountered.")


def test_reasons_fit_a_close_frame_on_a_character_boundary() -> None:
    close = close_for(NotFound("models/" + "é" * 200))
    assert len(close.reason.encode()) <= MAX_REASON_BYTES
    assert close.reason.startswith("models/éé") and "\ufffd" not in close.reason


def test_blame_is_not_part_of_the_frame() -> None:
    assert Close(1011, "x", "server") == Close(1011, "x", "client") == Close(1011, "x")


@pytest.mark.parametrize(("blame", "level"), [("client", logging.INFO), ("server", logging.WARNING),
                                              ("nobody", logging.DEBUG)])
def test_the_blame_chooses_the_log_level(blame: str, level: int, caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("localive.test_errors")
    close = next(c for c in (close_for(e) for e in (InvalidArgument("bad"), Overloaded(), None)) if c.blame == blame)
    with caplog.at_level(logging.DEBUG, logger=logger.name):
        log_close(logger, "abc123", close)
    [record] = caplog.records
    assert record.levelno == level == LOG_LEVELS[close.blame]
    assert f"session abc123 closed {close.code}" in record.getMessage()
    assert (close.reason or "-") in record.getMessage()


def _subclasses(cls: type[LiveError]) -> list[type[LiveError]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def test_every_live_error_closes_with_an_allowed_code_and_a_blame() -> None:
    errors = _subclasses(LiveError)
    assert len(errors) >= 15  # the walk saw the server's, the session's and the engines' errors
    for error in errors:
        assert error.close_code in ALLOWED_CODES - {1000}, error
        assert error.blame in LOG_LEVELS, error
