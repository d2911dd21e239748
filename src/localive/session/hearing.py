"""What the session hears in one utterance: its words, and — with affective dialog — how the user sounds.

The prosody measure (Praat's pitch tracker, energy, speaking rate) runs off the event loop; each utterance is
judged against the same user's earlier ones (their baseline), then joins it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from localive.audio.pcm import Pcm16
from localive.audio.prosody import Prosody
from localive.engines.asr.base import ASR, Transcript
from localive.session.affect import Affect, estimate, update_baseline

MAX_VOCABULARY_CHARS = 1000  # of customVocabulary in Whisper's prompt (it keeps its last ~220 tokens anyway)


@dataclass(frozen=True)
class Heard:
    transcript: Transcript
    affect: Affect | None = None  # only with enableAffectiveDialog


class AffectTracker:
    """One session's running estimate of how its user sounds."""

    def __init__(self) -> None:
        self.baseline: Prosody | None = None

    async def listen(self, audio: Pcm16, text: str) -> Affect:
        from localive.audio.prosody_measure import measure  # numpy: only where audio is measured

        words = len(text.split())
        loop = asyncio.get_running_loop()
        prosody = await loop.run_in_executor(None, measure, audio.data, audio.sample_rate_hz, words)
        affect = estimate(prosody, text, self.baseline)
        self.baseline = update_baseline(self.baseline, prosody)
        return affect

    def read(self, text: str) -> Affect:
        """A typed message: only the words tell."""
        return estimate(Prosody(duration_s=0.0, speech_s=0.0, voiced_s=0.0), text, None)


@dataclass(frozen=True)
class Recognition:
    """What the recogniser listens for in a session (session/languages.py builds it from the setup)."""

    language: str | None = None  # the language hint (BCP-47); None: the recogniser's default
    detect_among: tuple[str, ...] | None = None  # not None: detect each utterance's language among these (() any)
    vocabulary: tuple[str, ...] = ()  # customVocabulary: terms to be recognised as written

    def prompt(self, expect: str | None = None) -> str | None:
        """Whisper's previous text: the vocabulary (comma-separated, within MAX_VOCABULARY_CHARS), then
        `expect` (what typically precedes this utterance)."""
        text = ""
        for phrase in self.vocabulary:
            candidate = f"{text}, {phrase}" if text else phrase
            if len(candidate) > MAX_VOCABULARY_CHARS:
                break
            text = candidate
        parts = [f"{text}." if text else "", (expect or "").strip()]
        return " ".join(p for p in parts if p) or None


async def hear(asr: ASR, audio: Pcm16, recognition: Recognition, tracker: AffectTracker | None,
               expect: str | None = None) -> Heard:
    """Transcribe one utterance as `recognition` says (and, with a tracker, measure how the user sounds)."""
    prompt = recognition.prompt(expect)
    if recognition.detect_among is None:
        transcript = await asr.transcribe(audio, recognition.language, prompt)
    else:
        transcript = await asr.transcribe(audio, None, prompt, detect_among=recognition.detect_among)
    if tracker is None or not transcript.text.strip():
        return Heard(transcript)
    return Heard(transcript, await tracker.listen(audio, transcript.text))
