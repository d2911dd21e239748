"""Semantic end of turn: from the audio of the user's utterance so far, the probability that they have finished.

A VAD hears silence; an end-of-turn engine hears whether the words *sound* finished ("What is the capital of
France?" vs "What is the capital of…"), so a mid-sentence pause need not end the turn and a finished question
need not wait out the whole silence window. Inference is blocking: callers run `probability` off the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeAlias

if TYPE_CHECKING:  # an interface: numpy is imported where audio is processed (to_float32, the engines)
    import numpy as np
    import numpy.typing as npt

SAMPLE_RATE_HZ = 16000  # every engine here takes 16 kHz mono audio

Samples: TypeAlias = "npt.NDArray[np.float32]"
Pcm: TypeAlias = "npt.NDArray[np.int16] | npt.NDArray[np.float32]"


class EndOfTurn(Protocol):
    """One instance can serve many sessions: `probability` keeps no state between calls (thread-safe)."""

    sample_rate_hz: int

    def load(self) -> None:
        """Load the model (blocking; idempotent). `probability` loads lazily if this was skipped."""
        ...

    def probability(self, pcm: Pcm) -> float:
        """16 kHz mono audio of the user's current turn so far — int16 samples, or float32 in [-1, 1] — ending
        where the VAD heard silence start (a short pause, ~200 ms, after the last word). Returns the probability,
        in [0, 1], that the turn is complete. Empty audio → 0.0 (nothing said, nothing finished). Blocking."""
        ...

    def close(self) -> None: ...


def to_float32(pcm: Pcm) -> Samples:
    """Mono samples as float32 in [-1, 1): int16 is scaled by 1/32768, floats are taken as they are."""
    import numpy as np

    samples = np.asarray(pcm)
    if samples.ndim != 1:
        raise ValueError(f"expected mono audio (a 1-D array), got shape {samples.shape}")
    if samples.dtype == np.int16:
        return samples.astype(np.float32) / np.float32(32768.0)
    if samples.dtype in (np.float32, np.float64):
        return samples.astype(np.float32, copy=False)
    raise TypeError(f"expected int16 or float32 samples, got {samples.dtype}")


Answer = Callable[[Samples], float]


class FakeEndOfTurn:
    """A deterministic stand-in for tests of session logic: no model, instant.

    `answer` is either a fixed probability (default 1.0: every pause ends the turn, like a plain VAD) or a
    function of the float32 samples, e.g. `lambda s: 0.0 if len(s) < 16000 else 1.0` ("a turn needs a second of
    audio"). Every call's sample count is recorded in `calls`, so a test can check when the session asked."""

    sample_rate_hz = SAMPLE_RATE_HZ

    def __init__(self, answer: float | Answer = 1.0) -> None:
        if not callable(answer):
            _check_probability(answer)
        self._answer = answer
        self.calls: list[int] = []
        self.loaded = False

    def load(self) -> None:
        self.loaded = True

    def probability(self, pcm: Pcm) -> float:
        samples = to_float32(pcm)
        self.calls.append(int(samples.size))
        if samples.size == 0:
            return 0.0
        value = float(self._answer(samples)) if callable(self._answer) else float(self._answer)
        _check_probability(value)
        return value

    def close(self) -> None:
        self.loaded = False


def _check_probability(value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"a probability must be in [0, 1], got {value}")
