"""Speech synthesis: the interface the session uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from localive.audio.pcm import Pcm16

OUTPUT_SAMPLE_RATE_HZ = 24000  # the Live API's output format: audio/pcm;rate=24000


@dataclass(frozen=True)
class Delivery:
    """How one reply's speech departs from the voice's normal delivery (affective dialog adapts it to the user)."""

    rate: float = 1.0  # speed factor, 0.85 … 1.15
    pitch_semitones: float = 0.0  # ±2, on top of the voice's own pitch
    gain_db: float = 0.0  # ±4, after level normalisation

    @property
    def is_neutral(self) -> bool:
        return self == Delivery()


NEUTRAL = Delivery()


class UnknownVoice(ValueError):
    """A voice name this server does not have."""


class UnsupportedLanguage(ValueError):
    """Speech in a language no voice of this engine can speak."""


def is_english(language: str | None) -> bool:
    """True for None and any English tag (en, en-US, en_GB, eng…)."""
    if language is None:
        return True
    primary = language.strip().replace("_", "-").split("-")[0].lower()
    return primary in ("", "en", "eng")


class TTS(Protocol):
    """Speaks text in a named Live voice. Implementations run inference off the event loop."""

    def voices(self) -> list[str]:
        """The Live voice names offered (e.g. 'Puck', 'Kore', …), in canonical spelling."""
        ...

    def resolve_voice(self, name: str | None) -> str:
        """Canonical voice name for a client's (case-insensitive) name; None → the default voice.
        Raises UnknownVoice."""
        ...

    def speaks(self, language: str | None) -> bool:
        """Whether `synthesize` can speak text in this language (a BCP-47 tag; None: the default, English)
        with a voice of that language, rather than reading it with another language's pronunciation."""
        ...

    async def synthesize(self, text: str, voice: str, language: str | None = None,
                         delivery: Delivery = NEUTRAL) -> Pcm16:
        """One clause or sentence → 24 kHz mono PCM, spoken with `delivery`. Cancelling abandons the result.
        Raises UnsupportedLanguage for a language it does not speak (see `speaks`)."""
        ...

    def close(self) -> None: ...
