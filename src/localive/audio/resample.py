"""Sample-rate conversion with libsoxr (python-soxr): high quality, fast, and streaming-capable."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import soxr

from localive.audio.pcm import Pcm16


def resample(audio: Pcm16, sample_rate_hz: int) -> Pcm16:
    """One-shot conversion of a whole clip."""
    if audio.sample_rate_hz == sample_rate_hz or not audio.data:
        return Pcm16(audio.data, sample_rate_hz) if not audio.data else audio
    out = soxr.resample(audio.to_float32(), audio.sample_rate_hz, sample_rate_hz, quality="HQ")
    return Pcm16.from_float32(out, sample_rate_hz)


def resample_float(samples: npt.NDArray[np.float32], from_hz: int, to_hz: int) -> npt.NDArray[np.float32]:
    if from_hz == to_hz:
        return samples
    return np.asarray(soxr.resample(samples, from_hz, to_hz, quality="HQ"), dtype=np.float32)


class StreamResampler:
    """Converts a stream of chunks at one rate to another without clicks at chunk borders (one per session)."""

    def __init__(self, from_hz: int, to_hz: int) -> None:
        self.from_hz = from_hz
        self.to_hz = to_hz
        self._stream = None if from_hz == to_hz else soxr.ResampleStream(from_hz, to_hz, 1, dtype="float32")

    def push(self, audio: Pcm16, last: bool = False) -> Pcm16:
        if audio.sample_rate_hz != self.from_hz:
            raise ValueError(f"expected {self.from_hz} Hz audio, got {audio.sample_rate_hz} Hz")
        if self._stream is None:
            return audio
        out = self._stream.resample_chunk(audio.to_float32(), last=last)
        return Pcm16.from_float32(out, self.to_hz)
