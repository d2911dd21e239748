"""A deterministic stand-in for speech synthesis, for fast tests (and users' own CI): tones, no models.

Same catalog and voice resolution as the real engine. The audio is a tone whose pitch follows the voice (its
base voice's register × the variant's pitch shift; brighter variants get a stronger second harmonic) and whose
duration is proportional to the text (60 ms per character by default, divided by the variant's rate, capped).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from localive.audio.pcm import Pcm16
from localive.clock import SYSTEM_CLOCK, Clock
from localive.engines.tts.base import NEUTRAL, OUTPUT_SAMPLE_RATE_HZ, Delivery, UnsupportedLanguage
from localive.engines.tts.voices import BaseVoice, VoiceSpec, resolve_voice, voice_names, voice_spec

_BASE_HZ = {BaseVoice.HEART: 220.0, BaseVoice.JOE: 120.0}
_FADE_S = 0.005
# tones up to this long are kept once made (32 of them, at most 32 × 240 KB): `--voice emulator` says the same
# clauses again and again, and making them was 7 % of a 200-session soak's server CPU (benchmarks/soak.py)
_CACHED_SAMPLES = 5 * OUTPUT_SAMPLE_RATE_HZ


def _tone(n: int, hz: float, second: float, gain: float) -> bytes:
    t = np.arange(n) / OUTPUT_SAMPLE_RATE_HZ
    wave = 0.3 * np.sin(2 * np.pi * hz * t) + second * np.sin(4 * np.pi * hz * t)
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / _FADE_S)
    return Pcm16.from_float32(wave * fade * gain, OUTPUT_SAMPLE_RATE_HZ).data


_cached_tone = functools.lru_cache(maxsize=32)(_tone)


@dataclass(frozen=True)
class SynthesisRequest:
    text: str
    voice: str  # canonical name
    language: str | None
    delivery: Delivery = NEUTRAL


class ToneTTS:
    """Implements the TTS interface with tones. `delay_s` simulates compute time: a sleep on `clock` (cancel-safe;
    give it a `VirtualClock` to keep tests fast).
    `keep_requests=False` keeps no record of what was asked (a long-running server: `--voice emulator`)."""

    name = "tone"

    def __init__(self, *, ms_per_char: float = 60.0, max_duration_s: float = 10.0, delay_s: float = 0.0,
                 languages: Iterable[str] | None = None, clock: Clock = SYSTEM_CLOCK,
                 keep_requests: bool = True) -> None:
        self.ms_per_char = ms_per_char
        # primary language subtags it "speaks" (None: every language), to test refusals of other languages
        self.languages = None if languages is None else frozenset(lang.lower() for lang in languages)
        self.max_duration_s = max_duration_s
        self.delay_s = delay_s
        self._clock = clock
        self.keep_requests = keep_requests
        self.requests: list[SynthesisRequest] = []  # what was asked, in order (a test fake: kept in full)

    def voices(self) -> list[str]:
        return voice_names()

    def resolve_voice(self, name: str | None) -> str:
        return resolve_voice(name)

    def speaks(self, language: str | None) -> bool:
        if self.languages is None or language is None:
            return True
        return language.strip().replace("_", "-").split("-")[0].lower() in self.languages

    def load(self) -> None:
        """Nothing to load; present so the fake can stand wherever EmbeddedTTS does."""

    async def synthesize(self, text: str, voice: str, language: str | None = None,
                         delivery: Delivery = NEUTRAL) -> Pcm16:
        spec = voice_spec(voice)
        if not self.speaks(language):
            raise UnsupportedLanguage(f"the tone voices do not speak {language!r:.24}")
        if self.keep_requests:
            self.requests.append(SynthesisRequest(text, spec.name, language, delivery))
        if self.delay_s > 0:
            await self._clock.sleep(self.delay_s)  # simulated inference time, not synchronisation
        return self.tone(text, spec, delivery)

    def tone(self, text: str, spec: VoiceSpec, delivery: Delivery = NEUTRAL) -> Pcm16:
        """The audio `synthesize` returns for this text, voice and delivery (pure)."""
        rate = spec.variant.rate * delivery.rate
        duration_s = min(len(text.strip()) * self.ms_per_char / 1000.0 / rate, self.max_duration_s)
        n = round(duration_s * OUTPUT_SAMPLE_RATE_HZ)
        if n == 0:
            return Pcm16(b"", OUTPUT_SAMPLE_RATE_HZ)
        hz = _BASE_HZ[spec.base] * spec.variant.pitch_ratio * 2.0 ** (delivery.pitch_semitones / 12.0)
        second = 0.1 * 10.0 ** (spec.variant.tilt_db_per_octave / 20.0)  # tilt: one octave up, in dB
        gain = 10.0 ** (delivery.gain_db / 20.0)
        if n <= _CACHED_SAMPLES:  # the same clause again (an emulator's replies repeat): made once
            return Pcm16(_cached_tone(n, hz, second, gain), OUTPUT_SAMPLE_RATE_HZ)
        return Pcm16(_tone(n, hz, second, gain), OUTPUT_SAMPLE_RATE_HZ)

    def close(self) -> None:
        pass
