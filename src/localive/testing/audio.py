"""Test audio made without any audio library: silence and sine tones as 16-bit mono PCM, and the client message
that carries PCM (`realtimeInput.audio`)."""

from __future__ import annotations

import base64
import math
from typing import Any

__all__ = ["RATE_HZ", "audio_frame", "silence", "tone", "tone_frame"]

RATE_HZ = 16000


def silence(seconds: float, rate_hz: int = RATE_HZ) -> bytes:
    return bytes(2 * round(seconds * rate_hz))


def tone(seconds: float, *, hz: float = 220.0, amplitude: float = 0.3, rate_hz: int = RATE_HZ) -> bytes:
    """A sine tone (amplitude 0..1 of full scale). Voice activity detection by energy (`EnergyVAD`) hears it as
    speech; `ScriptedASR` returns its script whatever it hears."""
    peak = max(0.0, min(1.0, amplitude)) * 32767
    step = 2 * math.pi * hz / rate_hz
    return b"".join(round(peak * math.sin(step * i)).to_bytes(2, "little", signed=True)
                    for i in range(round(seconds * rate_hz)))


def audio_frame(pcm: bytes, rate_hz: int = RATE_HZ) -> dict[str, Any]:
    """A `realtimeInput` client message carrying this PCM."""
    return {"realtimeInput": {"audio": {"data": base64.b64encode(pcm).decode(),
                                        "mimeType": f"audio/pcm;rate={rate_hz}"}}}


def tone_frame(seconds: float, loud: bool = True, rate_hz: int = RATE_HZ) -> dict[str, Any]:
    """A `realtimeInput` message of `seconds` of a 220 Hz tone (loud: speech to `EnergyVAD`) or of silence."""
    return audio_frame(tone(seconds, rate_hz=rate_hz) if loud else silence(seconds, rate_hz), rate_hz)
