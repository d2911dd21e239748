"""The Live voice catalog: every Gemini Live voice name as a variant of one of two real local voices.

Pure data, no model loading. Google's male voices map to piper's "joe" (US English, male), the female ones to
hibari's "heart" (US English, female) — except the default voice, Puck: it is "heart" four semitones down (a low,
androgynous register, not a male speaker), because the first words of every answer in the default voice must be
cheap to synthesise and piper costs ~6× hibari (docs/voices.md, "Why Puck is heart"). Each name gets its own
`Variant` — speaking rate, pitch shift and spectral tilt — chosen to echo Google's style label ("Upbeat" → faster,
"Soft" → slower and darker).
They are variants of two voices, not 30 different speakers; docs/voices.md says what each knob does.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

from localive.engines.tts.base import UnknownVoice

Gender = Literal["female", "male"]


class BaseVoice(enum.StrEnum):
    """The real voices shipped on PyPI."""

    HEART = "heart"  # hibari-tts (Kokoro-distilled), American English, female, 24 kHz
    JOE = "joe"  # piper-tts en_US-joe-medium, American English, male, 22.05 kHz


@dataclass(frozen=True)
class Variant:
    """How a Live voice departs from its base voice.

    rate: speaking rate, 1.0 = the base voice's own pace (the engine's duration control).
    pitch_semitones: pitch shift; done by resampling, so the formants move with it (a smaller or larger-sounding
        speaker), with the engine's duration control compensating so the rate stays `rate`.
    tilt_db_per_octave: brightness, a spectral tilt pivoting at 1 kHz (+ brighter, − darker/softer).
    """

    rate: float = 1.0
    pitch_semitones: float = 0.0
    tilt_db_per_octave: float = 0.0

    def __post_init__(self) -> None:
        if not 0.75 <= self.rate <= 1.33:
            raise ValueError(f"rate {self.rate} is outside 0.75–1.33")
        if not -4.0 <= self.pitch_semitones <= 4.0:
            raise ValueError(f"pitch shift {self.pitch_semitones} is outside ±4 semitones")
        if not -6.0 <= self.tilt_db_per_octave <= 6.0:
            raise ValueError(f"tilt {self.tilt_db_per_octave} is outside ±6 dB/octave")

    @property
    def pitch_ratio(self) -> float:
        return float(2.0 ** (self.pitch_semitones / 12.0))


@dataclass(frozen=True)
class VoiceSpec:
    name: str  # canonical spelling, as Google writes it
    style: str  # Google's style label
    gender: Gender  # Google's voice's gender
    base: BaseVoice
    variant: Variant
    original: bool = False  # one of the 8 voices of the first (half-cascade) Live models


def _voice(name: str, style: str, gender: Gender, rate: float, pitch: float, tilt: float,
           original: bool = False, base: BaseVoice | None = None) -> VoiceSpec:
    if base is None:
        base = BaseVoice.JOE if gender == "male" else BaseVoice.HEART
    return VoiceSpec(name, style, gender, base, Variant(rate, pitch, tilt), original)


# name, style, gender, rate, pitch (semitones), tilt (dB/octave), original 8
CATALOG: tuple[VoiceSpec, ...] = (
    # --- heart (female) -------------------------------------------------------------------------------
    _voice("Zephyr", "Bright", "female", 1.00, +2.0, +3.0, original=True),
    _voice("Kore", "Firm", "female", 0.95, -2.0, 0.0, original=True),
    _voice("Leda", "Youthful", "female", 1.05, +3.0, +1.5, original=True),
    _voice("Aoede", "Breezy", "female", 1.10, +1.0, -1.0, original=True),
    _voice("Callirrhoe", "Easy-going", "female", 0.92, -1.0, -1.5),
    _voice("Autonoe", "Bright", "female", 1.05, +1.0, +4.0),
    _voice("Despina", "Smooth", "female", 0.95, 0.0, -2.0),
    _voice("Erinome", "Clear", "female", 1.00, 0.0, 0.0),  # heart exactly as it ships
    _voice("Laomedeia", "Upbeat", "female", 1.12, +2.0, +1.0),
    _voice("Achernar", "Soft", "female", 0.90, 0.0, -3.5),
    _voice("Pulcherrima", "Forward", "female", 1.08, 0.0, +2.5),
    _voice("Vindemiatrix", "Gentle", "female", 0.90, +1.0, -2.0),
    _voice("Sulafat", "Warm", "female", 0.97, -1.5, -1.5),
    # Google's male default voice, on heart for speed: the lowest heart variant, 2 semitones below Kore
    _voice("Puck", "Upbeat", "male", 1.03, -4.0, 0.0, original=True, base=BaseVoice.HEART),
    # --- joe (male) -----------------------------------------------------------------------------------
    _voice("Charon", "Informative", "male", 1.00, 0.0, 0.0, original=True),  # joe exactly as it ships
    _voice("Fenrir", "Excitable", "male", 1.15, +2.5, +2.0, original=True),
    _voice("Orus", "Firm", "male", 0.95, -2.0, 0.0, original=True),
    _voice("Iapetus", "Clear", "male", 0.95, 0.0, +2.5),
    _voice("Umbriel", "Easy-going", "male", 0.92, -1.0, -1.5),
    _voice("Algieba", "Smooth", "male", 0.95, -1.0, -3.0),
    _voice("Algenib", "Gravelly", "male", 0.95, -3.0, +1.5),
    _voice("Rasalgethi", "Informative", "male", 0.97, +1.0, 0.0),
    _voice("Alnilam", "Firm", "male", 1.00, -1.5, +1.0),
    _voice("Schedar", "Even", "male", 1.00, -0.5, -1.0),
    _voice("Gacrux", "Mature", "male", 0.90, -2.5, -1.5),
    _voice("Achird", "Friendly", "male", 1.05, +1.0, +0.5),
    _voice("Zubenelgenubi", "Casual", "male", 1.05, -0.5, -0.5),
    _voice("Sadachbia", "Lively", "male", 1.12, +1.5, +1.0),
    _voice("Sadaltager", "Knowledgeable", "male", 0.93, -1.0, +0.5),
    _voice("Enceladus", "Breathy", "male", 0.90, -1.0, -4.0),  # joe cannot breathe: rendered soft and dark
)

DEFAULT_VOICE = "Puck"  # Gemini's default voice for Live

_BY_KEY: dict[str, VoiceSpec] = {spec.name.casefold(): spec for spec in CATALOG}


def voice_names() -> list[str]:
    """All Live voice names, in canonical spelling (catalog order)."""
    return [spec.name for spec in CATALOG]


def resolve_voice(name: str | None) -> str:
    """Canonical spelling of a client's voice name (any case, surrounding blanks ignored); None or "" → default.
    Raises UnknownVoice."""
    if name is None or not name.strip():
        return DEFAULT_VOICE
    spec = _BY_KEY.get(name.strip().casefold())
    if spec is None:
        raise UnknownVoice(f"unknown voice '{name[:40]}'")
    return spec.name


def voice_spec(name: str | None) -> VoiceSpec:
    """The catalog entry for a (case-insensitive) voice name; None → default. Raises UnknownVoice."""
    return _BY_KEY[resolve_voice(name).casefold()]
