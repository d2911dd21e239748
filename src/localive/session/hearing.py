"""What the session hears in one utterance: its words, and — with affective dialog — how the user sounds.

The prosody measure (Praat's pitch tracker, energy, speaking rate) runs off the event loop; each utterance is
judged against the same user's earlier ones (their baseline), then joins it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from localive.audio.pcm import Pcm16
from localive.audio.prosody import Prosody, measure
from localive.engines.asr.base import ASR, Transcript
from localive.session.affect import Affect, estimate, update_baseline


@dataclass(frozen=True)
class Heard:
    transcript: Transcript
    affect: Affect | None = None  # only with enableAffectiveDialog


class AffectTracker:
    """One session's running estimate of how its user sounds."""

    def __init__(self) -> None:
        self.baseline: Prosody | None = None

    async def listen(self, audio: Pcm16, text: str) -> Affect:
        words = len(text.split())
        loop = asyncio.get_running_loop()
        prosody = await loop.run_in_executor(None, measure, audio.data, audio.sample_rate_hz, words)
        affect = estimate(prosody, text, self.baseline)
        self.baseline = update_baseline(self.baseline, prosody)
        return affect

    def read(self, text: str) -> Affect:
        """A typed message: only the words tell."""
        return estimate(measure(b"", 16000, len(text.split())), text, None)


async def hear(asr: ASR, audio: Pcm16, language: str | None, tracker: AffectTracker | None,
               expect: str | None = None) -> Heard:
    transcript = await asr.transcribe(audio, language, expect)
    if tracker is None or not transcript.text.strip():
        return Heard(transcript)
    return Heard(transcript, await tracker.listen(audio, transcript.text))
