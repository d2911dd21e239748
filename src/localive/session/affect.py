"""Affective dialog (`enableAffectiveDialog`): how the user sounds, and how the reply should be spoken.

Pure logic, no model: `estimate()` scores arousal from prosodic cues (speaking rate, loudness, pitch height,
pitch range) against typical adult speech, or against the same user's earlier utterances (`baseline`) when
there are some, and valence from a small built-in word list. The label follows from the two:

    no speech                                       → unknown
    negative words (valence ≤ −0.3), mostly sad     → sad, or upset if arousal ≥ +0.35
    negative words, mostly angry                    → upset
    negative words, neither                         → sad if arousal ≤ −0.35, else upset
    arousal ≥ +0.35                                 → excited
    arousal ≤ −0.35                                 → calm
    otherwise                                       → neutral

Prosody alone cannot tell joy from anger or calm from sadness; the words decide that, so "sad" and "upset"
need negative words. `context_note()` is the sentence for the LLM, `delivery()` the reply's TTS adjustment.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from localive.audio.prosody import Prosody, semitones
from localive.engines.tts.base import Delivery

Label = Literal["unknown", "neutral", "calm", "excited", "upset", "sad"]
CueName = Literal["rate", "loudness", "pitch", "pitch_range"]

HIGH_AROUSAL = 0.35
LOW_AROUSAL = -0.35
NEGATIVE_VALENCE = -0.3

# Typical adult conversational speech, the reference when there is no baseline. Rates are articulation rates
# (pauses over 0.25 s excluded), as `measure()` reports them; espeak-ng at its 160-175 wpm lands near them.
TYPICAL_WORDS_PER_S = 3.2
TYPICAL_SYLLABLES_PER_S = 4.8
TYPICAL_ENERGY_DBFS = -22.0  # speech frames of a browser microphone with automatic gain control
TYPICAL_PITCH_RANGE_ST = 6.0
TYPICAL_PITCH_HZ = (115.0, 205.0)  # lower and higher adult voices; the split is at `_PITCH_SPLIT_HZ`
_PITCH_SPLIT_HZ = 160.0

# How far from the reference a cue must be to score ±1 (scores are clipped to [-1, 1]).
_RATE_FULL_RATIO = 1.3  # 30 % faster (slower: 1/1.3)
_LOUDNESS_FULL_DB = 8.0
_PITCH_FULL_ST = 3.0
_RANGE_FULL_ST = 4.0
_FULL_SPEECH_S = 1.0  # shorter utterances have their arousal scaled down in proportion

# Cue weights without and with a baseline: absolute pitch height says little until we know the speaker's voice,
# and absolute loudness depends on the microphone.
_WEIGHTS: dict[bool, dict[CueName, float]] = {
    False: {"rate": 0.35, "loudness": 0.3, "pitch": 0.2, "pitch_range": 0.15},
    True: {"rate": 0.3, "loudness": 0.25, "pitch": 0.3, "pitch_range": 0.15},
}
_PHRASES: dict[CueName, tuple[str, str]] = {  # (low, high)
    "rate": ("speaking slowly", "speaking fast"),
    "loudness": ("quietly", "loudly"),
    "pitch": ("low pitch", "high pitch"),
    "pitch_range": ("flat intonation", "lively intonation"),
}


@dataclass(frozen=True)
class Cue:
    """One piece of evidence: a measured value, what it was compared with, and its score in [-1, 1]."""

    name: CueName
    value: float  # rate: words per second where the word count is known, else syllables per second
    reference: float  # the typical value, or the user's baseline
    score: float  # > 0: more aroused than the reference

    @property
    def phrase(self) -> str:
        return _PHRASES[self.name][self.score > 0]


@dataclass(frozen=True)
class Affect:
    """How the user sounded in one utterance, and why."""

    label: Label
    arousal: float  # -1 (subdued) … 1 (aroused), from the voice
    valence: float  # -1 (negative) … 1 (positive), from the words
    cues: tuple[Cue, ...] = ()  # strongest first
    positive_words: tuple[str, ...] = ()
    negative_words: tuple[str, ...] = ()
    relative: bool = False  # judged against the user's own baseline


RATE_BOUNDS = (0.85, 1.15)
PITCH_BOUND_ST = 2.0
GAIN_BOUND_DB = 4.0
_DELIVERY: dict[Label, Delivery] = {  # at full strength
    "excited": Delivery(1.12, 1.5, 3.0),  # match the energy
    "calm": Delivery(0.92, -0.5, -2.0),  # unhurried
    "sad": Delivery(0.9, -1.0, -3.0),  # gentle and soft
    "upset": Delivery(0.93, -0.5, -2.0),  # calm and steady, not matching the agitation
}
_NOTES: dict[Label, str] = {
    "excited": "Match their energy and keep the reply upbeat.",
    "calm": "Keep a calm, unhurried tone.",
    "sad": "Respond gently and warmly; acknowledge how they feel.",
    "upset": "Respond calmly and with empathy; acknowledge the problem before solving it.",
}
_DESCRIPTIONS: dict[Label, str] = {
    "excited": "excited",
    "calm": "calm and relaxed",
    "sad": "sad or low",
    "upset": "upset or frustrated",
}


def estimate(prosody: Prosody, text: str, baseline: Prosody | None = None) -> Affect:
    """The affect of one utterance: `prosody` of its audio, `text` its transcript, `baseline` the user's usual."""
    positive, negative, leaning, valence = _valence(text)
    if not prosody.has_speech:  # typed text, or no speech heard: only the words can tell
        label: Label = _label(0.0, valence, leaning) if valence <= NEGATIVE_VALENCE else "unknown"
        return Affect(label, 0.0, valence, (), positive, negative)
    relative = baseline is not None and baseline.has_speech
    cues = _cues(prosody, baseline if relative else None)
    weights = _WEIGHTS[relative]
    total = sum(weights[c.name] for c in cues)
    arousal = sum(weights[c.name] * c.score for c in cues) / total if total else 0.0
    arousal *= min(1.0, prosody.speech_s / _FULL_SPEECH_S)
    arousal = round(_clip(arousal, 1.0), 3)
    label = _label(arousal, valence, leaning)
    strongest = tuple(sorted(cues, key=lambda c: -abs(c.score)))
    return Affect(label, arousal, valence, strongest, positive, negative, relative)


def context_note(affect: Affect) -> str:
    """One or two sentences for the LLM about how the user sounds; empty for "neutral" and "unknown"."""
    if affect.label in ("neutral", "unknown"):
        return ""
    aroused = affect.label in ("excited", "upset")
    evidence = [c.phrase for c in affect.cues if (c.score >= 0.3 if aroused else c.score <= -0.3)][:3]
    if affect.negative_words and affect.label in ("upset", "sad"):
        evidence.append("saying " + ", ".join(f"“{w}”" for w in affect.negative_words[:3]))
    because = f" ({', '.join(evidence)})" if evidence else ""
    return f"The user sounds {_DESCRIPTIONS[affect.label]}{because}. {_NOTES[affect.label]}"


def delivery(affect: Affect) -> Delivery:
    """The reply's TTS adjustment: stronger affect moves further from neutral, within modest bounds."""
    target = _DELIVERY.get(affect.label)
    if target is None:
        return Delivery()
    strength = _clip(max(abs(affect.arousal), abs(affect.valence)) / 0.6, 1.0)
    strength = max(0.5, strength)
    rate = 1.0 + (target.rate - 1.0) * strength
    return Delivery(
        rate=round(min(max(rate, RATE_BOUNDS[0]), RATE_BOUNDS[1]), 3),
        pitch_semitones=round(_clip(target.pitch_semitones * strength, PITCH_BOUND_ST), 2),
        gain_db=round(_clip(target.gain_db * strength, GAIN_BOUND_DB), 2),
    )


def update_baseline(baseline: Prosody | None, prosody: Prosody, weight: float = 0.3) -> Prosody | None:
    """The user's usual delivery after one more utterance: an exponential average, `weight` for the new one.

    Call it after `estimate()` for the utterance, so an utterance is never judged against itself. Utterances
    without speech leave the baseline as it was.
    """
    if not prosody.has_speech:
        return baseline
    if baseline is None or not baseline.has_speech:
        return prosody
    def mix(old: float | None, new: float | None) -> float | None:
        return new if old is None else old if new is None else (1 - weight) * old + weight * new

    return Prosody(
        duration_s=(1 - weight) * baseline.duration_s + weight * prosody.duration_s,
        speech_s=(1 - weight) * baseline.speech_s + weight * prosody.speech_s,
        voiced_s=(1 - weight) * baseline.voiced_s + weight * prosody.voiced_s,
        pitch_median_hz=mix(baseline.pitch_median_hz, prosody.pitch_median_hz),
        pitch_range_st=mix(baseline.pitch_range_st, prosody.pitch_range_st),
        pitch_sd_st=mix(baseline.pitch_sd_st, prosody.pitch_sd_st),
        energy_dbfs=mix(baseline.energy_dbfs, prosody.energy_dbfs),
        energy_sd_db=mix(baseline.energy_sd_db, prosody.energy_sd_db),
        words_per_s=mix(baseline.words_per_s, prosody.words_per_s),
        syllables_per_s=mix(baseline.syllables_per_s, prosody.syllables_per_s),
    )


def _cues(prosody: Prosody, baseline: Prosody | None) -> list[Cue]:
    cues: list[Cue] = []
    rate = _rate_cue(prosody, baseline)
    if rate is not None:
        cues.append(rate)
    if prosody.energy_dbfs is not None:
        ref = TYPICAL_ENERGY_DBFS if baseline is None or baseline.energy_dbfs is None else baseline.energy_dbfs
        cues.append(Cue("loudness", prosody.energy_dbfs, ref, _score(prosody.energy_dbfs - ref, _LOUDNESS_FULL_DB)))
    if prosody.pitch_median_hz is not None:
        hz = prosody.pitch_median_hz
        if baseline is not None and baseline.pitch_median_hz is not None:
            ref = baseline.pitch_median_hz
        else:
            ref = TYPICAL_PITCH_HZ[hz >= _PITCH_SPLIT_HZ]
        cues.append(Cue("pitch", hz, ref, _score(semitones(hz, ref), _PITCH_FULL_ST)))
    if prosody.pitch_range_st is not None:
        span = prosody.pitch_range_st
        ref = TYPICAL_PITCH_RANGE_ST
        if baseline is not None and baseline.pitch_range_st is not None:
            ref = baseline.pitch_range_st
        cues.append(Cue("pitch_range", span, ref, _score(span - ref, _RANGE_FULL_ST)))
    return cues


def _rate_cue(prosody: Prosody, baseline: Prosody | None) -> Cue | None:
    """Words per second where known, syllables per second otherwise; the mean score when both are."""
    pairs: list[tuple[float, float]] = []
    for value, typical, usual in (
        (prosody.words_per_s, TYPICAL_WORDS_PER_S, baseline.words_per_s if baseline else None),
        (prosody.syllables_per_s, TYPICAL_SYLLABLES_PER_S, baseline.syllables_per_s if baseline else None),
    ):
        if value is not None and value > 0:
            pairs.append((value, usual if usual else typical))
    if not pairs:
        return None
    scores = [_score(math.log(v / r), math.log(_RATE_FULL_RATIO)) for v, r in pairs]
    value, ref = pairs[0]
    return Cue("rate", round(value, 3), round(ref, 3), round(sum(scores) / len(scores), 3))


def _label(arousal: float, valence: float, leaning: int) -> Label:
    """`leaning`: sad words minus angry words among the negative ones."""
    if valence <= NEGATIVE_VALENCE:
        if (leaning > 0 and arousal < HIGH_AROUSAL) or (leaning == 0 and arousal <= LOW_AROUSAL):
            return "sad"
        return "upset"
    if arousal >= HIGH_AROUSAL:
        return "excited"
    if arousal <= LOW_AROUSAL:
        return "calm"
    return "neutral"


def _score(deviation: float, full: float) -> float:
    return round(_clip(deviation / full, 1.0), 3)


def _clip(value: float, bound: float) -> float:
    return min(max(value, -bound), bound)


# --- valence from words -------------------------------------------------------------------------------------

_POSITIVE = frozenset("""
    amazing awesome beautiful best brilliant cool delighted enjoy enjoyed excellent excited exciting fantastic fun
    glad good grateful great happy helpful incredible joy love loved lovely nice perfect pleased proud relieved
    superb terrific thank thanks thrilled win won wonderful wow yay
""".split())
_SAD = frozenset("""
    afraid alone anxious cry crying depressed died disappointed exhausted gloomy grief heartbroken hopeless hurt
    lonely lost miserable miss missed sad scared tired unhappy worried
""".split())
_ANGRY = frozenset("""
    angry annoyed annoying crap damn disgusting frustrated frustrating furious hate hated mad pathetic ridiculous
    stupid ugh unacceptable useless
""".split())
_NEGATIVE = _SAD | _ANGRY | frozenset("""
    awful bad bored boring broken confused confusing error fail failed failing horrible problem problems sick slow
    stuck terrible upset waste wasted worst wrong
""".split())
_NEGATORS = frozenset("not no never nothing hardly barely without isnt dont doesnt didnt cant wont wasnt arent".split())
_INTENSIFIERS = frozenset("so very really extremely totally absolutely completely incredibly super too".split())
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def _valence(text: str) -> tuple[tuple[str, ...], tuple[str, ...], int, float]:
    """(positive words, negative words, sad minus angry words among those, valence in [-1, 1])."""
    words = [w.replace("'", "") for w in _WORD.findall(text.lower())]
    positive: list[str] = []
    negative: list[str] = []
    leaning = 0
    total = 0.0
    for i, word in enumerate(words):
        polarity = 1.0 if word in _POSITIVE else -1.0 if word in _NEGATIVE else 0.0
        if not polarity:
            continue
        before = words[max(0, i - 3) : i]
        negated = any(w in _NEGATORS for w in before)
        if negated:
            polarity *= -0.5  # "not good" is negative; "not bad" only mildly positive
        if before and before[-1] in _INTENSIFIERS:
            polarity *= 1.5
        (positive if polarity > 0 else negative).append(f"not {word}" if negated else word)
        if polarity < 0:
            leaning += (word in _SAD) - (word in _ANGRY)
        total += polarity
    return tuple(positive), tuple(negative), leaning, round(math.tanh(total / 2.0), 3)
