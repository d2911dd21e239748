"""A deterministic energy-based VAD: the shipped fake for tests (and a fallback nobody should rely on)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt


class EnergyVAD:
    """Speech probability from the frame's RMS level: 0 below `floor_dbfs`, 1 above `floor_dbfs + 12`. Computed
    in place, on the event loop: an RMS a frame costs less than handing the frames to a thread (the soak
    benchmark's hot spot before it ran in place)."""

    sample_rate_hz = 16000
    frame_samples = 512

    def __init__(self, floor_dbfs: float = -45.0) -> None:
        self.floor_dbfs = floor_dbfs

    def speech_probability(self, frame: npt.NDArray[np.float32]) -> float:
        rms = math.sqrt(float(np.dot(frame, frame)) / len(frame)) if len(frame) else 0.0
        dbfs = 20 * math.log10(max(rms, 1e-9))
        return min(max((dbfs - self.floor_dbfs) / 12.0, 0.0), 1.0)

    async def probabilities(self, frames: npt.NDArray[np.float32]) -> list[float]:
        return [self.speech_probability(frame) for frame in frames]

    def close(self) -> None:
        pass
