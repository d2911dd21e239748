"""Speech synthesis: the interface the session uses."""

from __future__ import annotations

from typing import Protocol

from localive.audio.pcm import Pcm16

OUTPUT_SAMPLE_RATE_HZ = 24000  # the Live API's output format: audio/pcm;rate=24000


class UnknownVoice(ValueError):
    """A voice name this server does not have."""


class TTS(Protocol):
    """Speaks text in a named Live voice. Implementations run inference off the event loop."""

    def voices(self) -> list[str]:
        """The Live voice names offered (e.g. 'Puck', 'Kore', …), in canonical spelling."""
        ...

    def resolve_voice(self, name: str | None) -> str:
        """Canonical voice name for a client's (case-insensitive) name; None → the default voice.
        Raises UnknownVoice."""
        ...

    async def synthesize(self, text: str, voice: str, language: str | None = None) -> Pcm16:
        """One clause or sentence → 24 kHz mono PCM. Cancelling abandons the result."""
        ...

    def close(self) -> None: ...
