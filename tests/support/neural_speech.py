"""Test speech in the project's own neural voice: Erinome (hibari "heart" as it ships), 16 kHz int16.

The semantic end-of-turn model reads intonation, which espeak-ng renders flatly; this voice sounds natural enough
for it (docs/turn-taking.md). Deterministic: the same text renders the same samples.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt

from localive.audio.resample import resample
from localive.testing.speech import speech_bounds

RATE_HZ = 16000
Int16 = npt.NDArray[np.int16]

# The same recordings cut at the word boundary after the prefix: a mid-sentence pause. Cut points were found with
# Whisper word timestamps (then the quietest 10 ms nearby); these four stayed below 0.25 with the cut moved ±30 ms
# and 0.1-0.3 s of pause. (Others, e.g. "What is the capital of", did not: see docs/turn-taking.md.)
# text, the render's length in seconds (a guard: another render needs new cut points), cut point in seconds.
# (Since the engine trims its padding to 30 ms before the speech, each render starts 0.26-0.29 s earlier and the
# cut points moved by exactly that: the same samples, cut at the same place.)
CUT_MID_SENTENCE = [
    ("Please turn off the lights in the kitchen.", 2.180, 1.415),
    ("So the thing is that I forgot my keys.", 2.250, 0.865),
    ("And then we went to the beach with our friends.", 2.230, 0.875),
    ("Do you know where the nearest pharmacy is?", 2.140, 0.655),
]


@functools.cache
def _tts():  # type: ignore[no-untyped-def]  # -> EmbeddedTTS (loaded once per test process)
    from localive.engines.tts.embedded import EmbeddedTTS

    tts = EmbeddedTTS()
    tts.load()
    return tts


@functools.cache
def erinome(text: str) -> Int16:
    """`text` spoken by Erinome, 16 kHz int16 (no silence added)."""
    tts = _tts()
    with ThreadPoolExecutor(max_workers=1) as thread:  # works from async tests too (their loop is running)
        audio = resample(thread.submit(asyncio.run, tts.synthesize(text, "Erinome")).result(), RATE_HZ)
    return np.frombuffer(audio.data, dtype="<i2").astype(np.int16)


def silence(seconds: float) -> Int16:
    return np.zeros(round(seconds * RATE_HZ), np.int16)


def spoken(audio: Int16) -> Int16:
    """The audio up to the end of its last word (the end of the last 10 ms frame within 40 dB of the loudest)."""
    _, end_s = speech_bounds(audio.tobytes(), RATE_HZ)
    return audio[: round(end_s * RATE_HZ)]
