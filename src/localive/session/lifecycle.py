"""The turn lifecycle: the phases a session goes through between the user's words and the model's answer, and the
only transitions between them (`TRANSITIONS`, states × triggers → next state). docs/architecture.md's diagram is
`mermaid()` of this table (tests/unit/test_lifecycle.py checks that they are the same).

idle → listening (the user speaks) → transcribing (a model turn has started: pending speech is transcribed) →
judging (proactive audio: is it meant for the model?) → generating (the model answers: text or speech, tool calls)
→ playing out (generationComplete sent: the client still plays the answer's audio) → complete; or interrupted
(barge-in, new content, an INTERRUPT tool result), or failed (the session ends with a close). A new turn starts only
from a phase outside a turn, so two turns can never run at once. Speech that starts or ends while a turn is in
progress leaves the turn's phase as it is (NO_INTERRUPTION, or a short utterance judged as a backchannel); speech
that interrupts first interrupts the turn.

`Lifecycle.move` is called by the session's event loop (speech, turn starts, interruptions) and by the model turn
for its own progress; a move the table does not allow is logged at ERROR (the fuzz test fails on it) and ignored.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger("localive.session")


class Phase(enum.Enum):
    IDLE = "idle"
    LISTENING = "listening"
    TRANSCRIBING = "transcribing"
    JUDGING = "judging"
    GENERATING = "generating"
    PLAYING_OUT = "playing_out"
    COMPLETE = "complete"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


class Trigger(enum.Enum):
    SPEECH_STARTED = "speech started"
    SPEECH_ENDED = "speech ended"
    TURN_STARTED = "turn started"
    JUDGE = "judge"
    TRANSCRIBED = "transcribed"
    ADDRESSED = "addressed"
    NOT_ANSWERED = "nothing to answer"
    GENERATION_COMPLETE = "generation complete"
    PLAYED_OUT = "played out"
    INTERRUPT = "interrupt"
    FAIL = "fail"


IN_TURN = (Phase.TRANSCRIBING, Phase.JUDGING, Phase.GENERATING, Phase.PLAYING_OUT)
BETWEEN_TURNS = (Phase.IDLE, Phase.LISTENING, Phase.COMPLETE, Phase.INTERRUPTED, Phase.FAILED)

TRANSITIONS: dict[tuple[Phase, Trigger], Phase] = {
    **{(p, Trigger.SPEECH_STARTED): Phase.LISTENING for p in BETWEEN_TURNS},
    **{(p, Trigger.SPEECH_STARTED): p for p in IN_TURN},
    (Phase.LISTENING, Trigger.SPEECH_ENDED): Phase.IDLE,
    **{(p, Trigger.SPEECH_ENDED): p for p in Phase if p is not Phase.LISTENING},
    **{(p, Trigger.TURN_STARTED): Phase.TRANSCRIBING for p in BETWEEN_TURNS},
    (Phase.TRANSCRIBING, Trigger.JUDGE): Phase.JUDGING,
    (Phase.TRANSCRIBING, Trigger.TRANSCRIBED): Phase.GENERATING,
    (Phase.JUDGING, Trigger.ADDRESSED): Phase.GENERATING,
    (Phase.TRANSCRIBING, Trigger.NOT_ANSWERED): Phase.COMPLETE,
    (Phase.JUDGING, Trigger.NOT_ANSWERED): Phase.COMPLETE,
    (Phase.GENERATING, Trigger.GENERATION_COMPLETE): Phase.PLAYING_OUT,
    (Phase.PLAYING_OUT, Trigger.PLAYED_OUT): Phase.COMPLETE,
    **{(p, Trigger.INTERRUPT): Phase.INTERRUPTED for p in IN_TURN},
    # the watchdog or a failing stage ends the turn (and the session); also as it is being interrupted
    **{(p, Trigger.FAIL): Phase.FAILED for p in (*IN_TURN, Phase.INTERRUPTED)},
}

Observer = Callable[[Phase, Trigger, "Phase | None"], None]
_observers: list[Observer] = []


@contextmanager
def observing(observer: Observer) -> Iterator[None]:
    """Have `observer` called with every move any session makes (from, trigger, to; to is None if not allowed)."""
    _observers.append(observer)
    try:
        yield
    finally:
        _observers.remove(observer)


class Lifecycle:
    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.phase = Phase.IDLE

    def move(self, trigger: Trigger) -> None:
        to = TRANSITIONS.get((self.phase, trigger))
        for observer in _observers:
            observer(self.phase, trigger, to)
        if to is None:
            log.error("session %s: '%s' in phase %s is not a transition of the turn lifecycle", self.session_id,
                      trigger.value, self.phase.value)
            return
        self.phase = to


def mermaid() -> str:
    """The table as a Mermaid state diagram. Self-loops (speech in a turn, speech ending outside LISTENING) are
    left out: they change nothing."""
    edges: dict[tuple[Phase, Phase], list[str]] = {}
    for (start, trigger), end in TRANSITIONS.items():
        if start is not end:
            edges.setdefault((start, end), []).append(trigger.value)
    lines = ["stateDiagram-v2", f"    [*] --> {Phase.IDLE.value}"]
    lines += [f"    {start.value} --> {end.value}: {', '.join(labels)}" for (start, end), labels in edges.items()]
    return "\n".join(lines) + "\n"
