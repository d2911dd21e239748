"""How an utterance was spoken, as values: pitch, loudness and tempo (`Prosody`), and semitone distances.

`measure` (audio/prosody_measure.py) computes them from 16-bit PCM; this module needs no numpy, so that the
session's affect logic (session/affect.py) loads without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Prosody:
    """Pitch, loudness and tempo of one utterance; None where the audio has too little speech to say."""

    duration_s: float  # the whole clip
    speech_s: float  # articulation time: speech frames, pauses under 0.25 s included
    voiced_s: float  # frames with a pitch
    pitch_median_hz: float | None = None
    pitch_range_st: float | None = None  # 10th to 90th percentile of voiced frames, in semitones
    pitch_sd_st: float | None = None  # standard deviation of voiced frames, in semitones
    energy_dbfs: float | None = None  # RMS of the speech frames, dB re full scale
    energy_sd_db: float | None = None  # standard deviation of the speech frames' levels
    words_per_s: float | None = None  # words / speech_s, when the word count is known
    syllables_per_s: float | None = None  # intensity peaks (syllable nuclei) / speech_s

    @property
    def has_speech(self) -> bool:
        return self.energy_dbfs is not None


def semitones(hz: float, reference_hz: float) -> float:
    """`hz` above `reference_hz` in semitones (negative below)."""
    return 12.0 * math.log2(hz / reference_hz)
