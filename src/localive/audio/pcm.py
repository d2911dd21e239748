"""16-bit little-endian mono PCM with its sample rate attached: never a bare `bytes`.

A value that text-only sessions pass around too (as a type): numpy is imported only by the conversions, which
only audio processing calls, so a server without the speech extras never loads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

SAMPLE_WIDTH_BYTES = 2


@dataclass(frozen=True)
class Pcm16:
    """Mono, 16-bit little-endian PCM."""

    data: bytes
    sample_rate_hz: int

    def __post_init__(self) -> None:
        if len(self.data) % SAMPLE_WIDTH_BYTES:
            raise ValueError("16-bit PCM must have an even number of bytes")

    @property
    def samples(self) -> int:
        return len(self.data) // SAMPLE_WIDTH_BYTES

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate_hz

    def to_float32(self) -> npt.NDArray[np.float32]:
        """Samples scaled to [-1, 1)."""
        import numpy as np

        return np.frombuffer(self.data, dtype="<i2").astype(np.float32) / 32768.0

    @classmethod
    def from_float32(cls, samples: npt.NDArray[np.floating], sample_rate_hz: int) -> Pcm16:
        import numpy as np

        clipped = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 32767 / 32768)
        return cls((clipped * 32768.0).astype("<i2").tobytes(), sample_rate_hz)

    @classmethod
    def from_float32_frames(cls, frames: Sequence[npt.NDArray[np.float32]], sample_rate_hz: int) -> Pcm16:
        """Consecutive frames of samples in [-1, 1), joined into one clip."""
        import numpy as np

        if not len(frames):
            return cls(b"", sample_rate_hz)
        return cls.from_float32(np.concatenate(frames), sample_rate_hz)

    @classmethod
    def silence(cls, duration_s: float, sample_rate_hz: int) -> Pcm16:
        return cls(bytes(SAMPLE_WIDTH_BYTES * round(duration_s * sample_rate_hz)), sample_rate_hz)

    def __add__(self, other: Pcm16) -> Pcm16:
        if other.sample_rate_hz != self.sample_rate_hz:
            raise ValueError("cannot join PCM of different sample rates")
        return Pcm16(self.data + other.data, self.sample_rate_hz)
