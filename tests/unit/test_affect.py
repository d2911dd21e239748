"""Affective dialog: prosody measured on espeak-ng speech, and the affect, note and delivery decided from it."""

from __future__ import annotations

import numpy as np
import pytest

from localive.audio.pcm import Pcm16
from localive.audio.prosody import Prosody
from localive.audio.prosody_measure import measure
from localive.audio.resample import resample
from localive.session.affect import (
    GAIN_BOUND_DB,
    PITCH_BOUND_ST,
    RATE_BOUNDS,
    Affect,
    Delivery,
    context_note,
    delivery,
    estimate,
    update_baseline,
)
from localive.testing.speech import expressive_pcm as say
from localive.testing.speech import room_noise

RATE_HZ = 16000
TEXT = "I just got the results back and we actually won the whole competition today"
CALM = {"words_per_minute": 120, "pitch": 30, "amplitude": 60}
EXCITED = {"words_per_minute": 200, "pitch": 80, "amplitude": 180}
VOICES = ["en-us", "en-us+f3"]  # espeak's male voice and a female variant




def prosody_of(text: str = TEXT, **kwargs: int | str) -> Prosody:
    return measure(say(text, **kwargs), RATE_HZ, len(text.split()))


# --- measuring --------------------------------------------------------------------------------------------------


def test_pitch_follows_espeaks_pitch_setting() -> None:
    low, high = prosody_of(pitch=30), prosody_of(pitch=80)
    assert low.pitch_median_hz is not None and high.pitch_median_hz is not None
    assert 70 < low.pitch_median_hz < high.pitch_median_hz < 200
    assert high.pitch_median_hz / low.pitch_median_hz > 1.4  # ~85 Hz vs ~138 Hz
    assert low.pitch_range_st is not None and low.pitch_sd_st is not None


def test_speaking_rate_follows_espeaks_speed() -> None:
    slow, fast = prosody_of(words_per_minute=120), prosody_of(words_per_minute=200)
    assert slow.words_per_s is not None and fast.words_per_s is not None
    assert fast.words_per_s / slow.words_per_s == pytest.approx(200 / 120, rel=0.15)
    assert slow.syllables_per_s is not None and fast.syllables_per_s is not None
    assert fast.syllables_per_s / slow.syllables_per_s > 1.3
    assert fast.speech_s < slow.speech_s


def test_loudness_is_rms_of_the_speech_and_does_not_change_pitch() -> None:
    pcm = say(TEXT)
    quieter = (np.frombuffer(pcm, dtype="<i2") // 2).astype(np.int16)  # -6.02 dB, as an int16 array
    full, half = measure(pcm, RATE_HZ), measure(quieter, RATE_HZ)
    assert full.energy_dbfs is not None and half.energy_dbfs is not None
    assert full.energy_dbfs - half.energy_dbfs == pytest.approx(6.02, abs=0.1)
    assert half.pitch_median_hz == pytest.approx(full.pitch_median_hz, rel=0.02)
    assert full.words_per_s is None  # no word count given
    assert measure(pcm, RATE_HZ, 12).speech_s == full.speech_s
    assert prosody_of(amplitude=180).energy_dbfs > prosody_of(amplitude=60).energy_dbfs + 8  # type: ignore[operator]


@pytest.mark.parametrize("pcm", [b"", bytes(200), bytes(2 * RATE_HZ * 2), room_noise(2.0, dbfs=-60.0)],
                         ids=["empty", "100-samples", "2s-silence", "2s-room-noise"])
def test_silence_has_no_speech_and_gives_an_unknown_affect(pcm: bytes) -> None:
    prosody = measure(pcm, RATE_HZ, 0)
    assert not prosody.has_speech
    assert prosody.speech_s == 0 and prosody.pitch_median_hz is None and prosody.words_per_s is None
    affect = estimate(prosody, "")
    assert affect.label == "unknown" and affect.arousal == 0 and affect.cues == ()
    assert context_note(affect) == ""
    assert delivery(affect) == Delivery() and delivery(affect).is_neutral


def test_other_rates_short_clips_and_wrong_samples() -> None:
    at_16k = measure(say(TEXT), RATE_HZ)
    at_24k = measure(resample(Pcm16(say(TEXT), RATE_HZ), 24000).data, 24000)
    assert at_24k.pitch_median_hz == pytest.approx(at_16k.pitch_median_hz, rel=0.03)
    assert at_24k.energy_dbfs == pytest.approx(at_16k.energy_dbfs, abs=0.5)
    tone = (np.sin(np.arange(400) * 2 * np.pi * 150 / RATE_HZ) * 10000).astype(np.int16)  # 25 ms: no pitch yet
    short = measure(tone, RATE_HZ, 1)
    assert short.has_speech and short.pitch_median_hz is None and short.words_per_s is None
    with pytest.raises(ValueError, match="16-bit"):
        measure(tone.astype(np.float32), RATE_HZ)


# --- estimating -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("voice", VOICES)
def test_the_same_words_said_calmly_and_excitedly_differ(voice: str) -> None:
    calm, excited = prosody_of(voice=voice, **CALM), prosody_of(voice=voice, **EXCITED)  # type: ignore[arg-type]
    a, b = estimate(calm, TEXT), estimate(excited, TEXT)
    assert (a.label, b.label) == ("calm", "excited")
    assert a.arousal < -0.35 < 0.35 < b.arousal
    assert b.arousal - a.arousal > 0.9
    slow, lively = delivery(a), delivery(b)
    assert slow.rate < 1.0 < lively.rate
    assert slow.pitch_semitones < 0 < lively.pitch_semitones
    assert slow.gain_db < 0 < lively.gain_db
    assert "excited" in context_note(b) and "energy" in context_note(b)
    assert "calm" in context_note(a)


@pytest.mark.parametrize("voice", VOICES)
def test_against_the_users_own_baseline(voice: str) -> None:
    usual = prosody_of(voice=voice)
    assert estimate(usual, TEXT, usual).arousal == 0.0
    assert estimate(usual, TEXT, usual).label == "neutral"
    calm = estimate(prosody_of(voice=voice, **CALM), TEXT, usual)  # type: ignore[arg-type]
    excited = estimate(prosody_of(voice=voice, **EXCITED), TEXT, usual)  # type: ignore[arg-type]
    assert calm.relative and excited.relative
    assert (calm.label, excited.label) == ("calm", "excited")
    assert calm.arousal < -0.5 and excited.arousal > 0.5
    pitch = {c.name: c for c in excited.cues}["pitch"]
    assert pitch.reference == usual.pitch_median_hz and pitch.score > 0.5


def test_negative_words_push_valence_negative() -> None:
    text = "this is terrible, I am so annoyed"
    prosody = prosody_of(text)
    affect = estimate(prosody, text)
    assert affect.valence < -0.5
    assert affect.negative_words == ("terrible", "annoyed")
    assert affect.label == "upset"
    assert "empathy" in context_note(affect) and "terrible" in context_note(affect)
    calm_reply = delivery(affect)
    assert calm_reply.rate < 1.0 and calm_reply.gain_db < 0  # steady, not matching the agitation
    assert estimate(prosody, "this is great, I am so happy").valence > 0.5
    assert estimate(prosody, "the meeting is at three").valence == 0.0


@pytest.mark.parametrize(("text", "sign"), [
    ("this is not good", -1), ("that's not bad at all", 1), ("I don't love it", -1), ("I'm really happy", 1),
    ("It is broken and I hate it", -1),
])
def test_negation_and_intensifiers(text: str, sign: int) -> None:
    affect = estimate(prosody_of("hello there"), text)
    assert affect.valence * sign > 0


def _prosody(**overrides: float) -> Prosody:
    values: dict[str, float] = {"duration_s": 3.0, "speech_s": 2.5, "voiced_s": 1.5, "pitch_median_hz": 115.0,
                                "pitch_range_st": 6.0, "pitch_sd_st": 2.0, "energy_dbfs": -22.0,
                                "energy_sd_db": 7.0, "words_per_s": 3.2, "syllables_per_s": 4.8}
    return Prosody(**{**values, **overrides})


def test_typical_speech_is_neutral_and_extremes_stay_in_bounds() -> None:
    assert estimate(_prosody(), "what time is it").label == "neutral"
    assert estimate(_prosody(), "what time is it").arousal == 0.0
    wild = _prosody(pitch_median_hz=400.0, pitch_range_st=30.0, energy_dbfs=0.0, words_per_s=9.0,
                    syllables_per_s=14.0)
    affect = estimate(wild, "yes")
    assert affect.arousal == 1.0
    d = delivery(affect)
    assert RATE_BOUNDS[0] <= d.rate <= RATE_BOUNDS[1]
    assert abs(d.pitch_semitones) <= PITCH_BOUND_ST and abs(d.gain_db) <= GAIN_BOUND_DB
    for label in ("calm", "sad", "upset", "excited"):
        d = delivery(Affect(label, arousal=-1.0, valence=-1.0))
        assert RATE_BOUNDS[0] <= d.rate <= RATE_BOUNDS[1]
        assert abs(d.pitch_semitones) <= PITCH_BOUND_ST and abs(d.gain_db) <= GAIN_BOUND_DB


def test_words_decide_between_sad_and_upset() -> None:
    subdued = _prosody(words_per_s=2.3, syllables_per_s=3.6, energy_dbfs=-28.0, pitch_median_hz=95.0)
    aroused = _prosody(words_per_s=4.2, syllables_per_s=6.0, energy_dbfs=-14.0, pitch_median_hz=150.0)
    assert estimate(subdued, "I feel so lonely and tired").label == "sad"
    assert estimate(subdued, "this stupid thing is broken").label == "upset"  # angry words, said quietly
    assert estimate(subdued, "this is terrible").label == "sad"  # neither sad nor angry words: low arousal decides
    assert estimate(_prosody(), "I feel so lonely and tired").label == "sad"
    assert estimate(_prosody(), "this stupid thing is broken").label == "upset"
    assert estimate(aroused, "I feel so lonely and tired").label == "upset"
    assert estimate(aroused, "we won, this is amazing").label == "excited"
    assert estimate(subdued, "that sounds nice").label == "calm"
    sad = estimate(subdued, "I miss her so much, I am sad")
    assert "gently" in context_note(sad) and delivery(sad).rate < 1.0


def test_a_short_utterance_moves_arousal_less() -> None:
    loud = {"energy_dbfs": -12.0, "pitch_median_hz": 150.0, "words_per_s": 4.5, "syllables_per_s": 6.5}
    long, short = _prosody(**loud), _prosody(**loud, speech_s=0.4)
    assert 0 < estimate(short, "").arousal < estimate(long, "").arousal


def test_the_baseline_follows_the_user() -> None:
    first, second = _prosody(), _prosody(energy_dbfs=-12.0, pitch_median_hz=None)  # type: ignore[arg-type]
    assert update_baseline(None, first) == first
    silence = measure(bytes(RATE_HZ * 2), RATE_HZ)
    assert update_baseline(first, silence) == first and update_baseline(None, silence) is None
    mixed = update_baseline(first, second, weight=0.25)
    assert mixed is not None
    assert mixed.energy_dbfs == pytest.approx(-19.5)
    assert mixed.pitch_median_hz == first.pitch_median_hz  # unknown in the new utterance: kept
