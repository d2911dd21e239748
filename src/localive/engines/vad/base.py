"""Voice activity detection: a speech probability per fixed-size frame of 16 kHz audio."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # an interface: only its implementations import numpy
    import numpy as np
    import numpy.typing as npt


class VAD(Protocol):
    """Stateful (one per audio stream). `speech_probability` is cheap but blocking: callers batch frames and
    run it off the event loop — unless `inline` says it costs less than the hand-off to a thread (a few
    microseconds a frame: the energy VAD), when the caller runs it in place."""

    sample_rate_hz: int
    frame_samples: int
    inline: bool

    def speech_probability(self, frame: npt.NDArray[np.float32]) -> float: ...

    def reset(self) -> None: ...


VADFactory = Callable[[], VAD]
