"""Voice activity detection: a speech probability per fixed-size frame of 16 kHz audio."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # an interface: only its implementations import numpy
    import numpy as np
    import numpy.typing as npt


class VAD(Protocol):
    """One per audio stream (it keeps the stream's state). The session awaits one `probabilities` call per
    chunk of audio, with the chunk's whole frames in order; the VAD decides where the work runs: in place (the
    energy VAD: an RMS a frame costs less than any hand-off) or on a shared worker that scores the frames of all
    streams together (Silero, engines/vad/silero.py). `close` releases the stream's state; calling it twice, or
    never (the stream is then released when it is garbage-collected), is fine."""

    sample_rate_hz: int
    frame_samples: int

    async def probabilities(self, frames: npt.NDArray[np.float32]) -> list[float]:
        """`frames`: shape (n, frame_samples), consecutive audio of this stream. One speech probability (0..1)
        a frame. Cancelling it is safe (the frames are still scored: the stream's state stays continuous)."""
        ...

    def close(self) -> None: ...


VADFactory = Callable[[], VAD]


@dataclass(frozen=True)
class VADLoad:
    """How busy a shared VAD is now (the server's load estimate, server/load.py, and its metrics)."""

    pending_frames: int  # frames of all streams waiting to be scored
    oldest_wait_s: float  # how long the longest-waiting of them has waited (0: none waits)
    worker_cpu_s: float  # CPU time of the VAD's worker thread so far
