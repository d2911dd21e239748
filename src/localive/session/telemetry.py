"""What a session reports about itself for the server's metrics (server/metrics.py), without knowing the server.

`Telemetry`'s methods do nothing: a session built without one (tests, the session harness) reports nowhere. The
server passes its own subclass. Every argument is low-cardinality by design: a model's registry name, a fixed
outcome or stage, a count, and a turn's `TurnTimings` (durations only). Never a key, a token, a handle, a session
id or anything the user said. Each method is called on the event loop and must return at once (no I/O).
"""

from __future__ import annotations

from typing import Literal

from localive.session.timings import TurnTimings

TurnOutcome = Literal["answered", "unanswered", "interrupted", "failed", "cancelled"]
ToolKind = Literal["function", "code_execution"]


class Telemetry:
    def turn_ended(self, model: str, outcome: TurnOutcome) -> None:
        """A model turn ended: answered in full; nothing to answer (no words, side talk); interrupted by the
        client; failed (its session ends); cancelled (the session was closing or its watchdog expired)."""

    def turn_timed(self, model: str, timings: TurnTimings) -> None:
        """A turn produced its answer; its stage times, from the end of the user's turn (logged as well)."""

    def barge_in(self, model: str) -> None:
        """A model turn was interrupted by the client's input (speech, text, clientContent, or a function result
        with scheduling INTERRUPT)."""

    def tool_called(self, model: str, kind: ToolKind, count: int = 1) -> None:
        """The model called functions (sent to the client as a toolCall) or ran code."""

    def resumed(self, model: str) -> None:
        """A session was restored from a resumption handle at its setup."""

    def backend_failed(self, stage: str) -> None:
        """A remote backend's failure ended a turn (`stage`: the backend's fixed stage name)."""


NO_TELEMETRY = Telemetry()
