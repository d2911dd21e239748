"""Speech recognition: the interface the session uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from localive.audio.pcm import Pcm16


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str | None = None
    audio_s: float = 0.0  # seconds of audio transcribed
    compute_s: float = 0.0  # wall time the engine spent


class ASR(Protocol):
    """Transcribes one utterance. Implementations run inference off the event loop (their own worker thread)."""

    name: str
    sample_rate_hz: int  # the rate `transcribe` expects (16000 for Whisper)

    async def transcribe(self, audio: Pcm16, language: str | None = None, expect: str | None = None, *,
                         detect_among: tuple[str, ...] | None = None) -> Transcript:
        """Text of the utterance (empty if nothing was said). `language` is a BCP-47 hint such as 'en-US';
        `expect` is text that typically precedes such an utterance (a prior for the spelling of short words,
        e.g. the backchannels a listener says, or a client's vocabulary). `detect_among`, when given, overrides
        `language`: the engine detects the utterance's language among these tags (among all it knows when the
        tuple is empty) and reports it in `Transcript.language`. Cancelling the awaiting task abandons the
        result; the engine finishes the current pass."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Busy(Protocol):
    """An engine that can tell whether it is working for anyone now (the embedded ones, each on one worker thread):
    work done only to be ready sooner (session/foresight.py) is started only while it is idle, so that it never
    delays another session's request."""

    @property
    def idle(self) -> bool: ...
