"""Audio MIME types as the Live API uses them: ``audio/pcm;rate=16000``.

A bare ``audio/pcm`` (no rate) is the Live API's native 16 kHz, as Gemini takes it: Google's own cookbook and the
SDKs' ``send(input=…)`` / ``start_stream(mime_type="audio/pcm")`` send exactly that.
"""

from __future__ import annotations

import re

from localive.protocol.errors import InvalidArgument

_PCM = re.compile(r"^audio/(?:pcm|l16)$", re.IGNORECASE)
MIN_RATE_HZ = 8000
MAX_RATE_HZ = 96000
DEFAULT_RATE_HZ = 16000  # the Live API's native input rate


def pcm_rate(mime_type: str) -> int:
    """The sample rate of a raw 16-bit PCM MIME type (16 kHz when it names none); anything else is an invalid
    argument (1007)."""
    kind, *params = [p.strip() for p in mime_type.split(";")]
    if not _PCM.match(kind):
        raise InvalidArgument(f"Unsupported audio mime type '{mime_type[:40]}': send audio/pcm;rate=<Hz>.")
    rates = [p.split("=", 1)[1].strip() for p in params if p.lower().startswith("rate=")]
    if not rates:
        return DEFAULT_RATE_HZ
    if not rates[0].isdigit() or not MIN_RATE_HZ <= int(rates[0]) <= MAX_RATE_HZ:
        raise InvalidArgument(f"Invalid audio sample rate '{rates[0][:20]}' (8000 to 96000 Hz).")
    return int(rates[0])


def pcm_mime(sample_rate_hz: int) -> str:
    return f"audio/pcm;rate={sample_rate_hz}"
