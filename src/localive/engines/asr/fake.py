"""A deterministic speech recognizer for tests and emulation: scripted texts instead of a model."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from localive.audio.pcm import Pcm16
from localive.clock import SYSTEM_CLOCK, Clock
from localive.engines.asr.base import Transcript

Script = Iterable[str] | Callable[[Pcm16, str | None], str]


@dataclass(frozen=True)
class ASRCall:
    """What one `transcribe` call received."""

    audio_s: float
    sample_rate_hz: int
    language: str | None
    expect: str | None = None
    detect_among: tuple[str, ...] | None = None


def _primary(tag: str | None) -> str:
    return (tag or "").strip().lower().replace("_", "-").split("-")[0]


class ScriptedASR:
    """Implements the ASR interface by returning scripted texts in order, or what a callable returns.

    A list script returns its texts one per call and "" once exhausted (assert on `calls` to catch extra
    calls). A callable gets the audio and the language hint. `delay_s` simulates compute time, a sleep on
    `clock` (give it a `VirtualClock` to keep tests fast). Every call is recorded in `calls`, including
    ones cancelled during the delay, unless `keep_calls=False` (a long-running server: `--voice emulator`).
    """

    sample_rate_hz = 16000

    def __init__(self, script: Script = (), *, name: str = "scripted-asr", delay_s: float = 0.0,
                 language: str | None = "en",
                 clock: Clock = SYSTEM_CLOCK, keep_calls: bool = True) -> None:
        if isinstance(script, str):
            raise TypeError("script must be a list of texts or a callable, not one string")
        self.name = name
        self.delay_s = delay_s
        self.language = language
        self._clock = clock
        self._respond = script if callable(script) else None
        self._texts = [] if callable(script) else list(script)
        self._next = 0
        self.keep_calls = keep_calls
        self.calls: list[ASRCall] = []
        self.closed = False

    @property
    def audio_durations_s(self) -> list[float]:
        return [call.audio_s for call in self.calls]

    @property
    def remaining(self) -> int:
        """Scripted texts not handed out yet (0 for a callable script)."""
        return len(self._texts) - self._next

    async def transcribe(self, audio: Pcm16, language: str | None = None, expect: str | None = None, *,
                         detect_among: tuple[str, ...] | None = None) -> Transcript:
        """The next scripted text. Cancelling during the delay abandons the call; the script still advances.
        With `detect_among` the "detected" language is `self.language` when it is allowed, else the first
        allowed tag."""
        if self.closed:
            raise RuntimeError(f"ASR '{self.name}' is closed")
        if self.keep_calls:
            self.calls.append(ASRCall(audio.duration_s, audio.sample_rate_hz, language, expect, detect_among))
        if detect_among is not None:
            allowed = not detect_among or any(_primary(t) == _primary(self.language) for t in detect_among)
            language = self.language if allowed else detect_among[0]
        if self._respond is not None:
            text = self._respond(audio, language)
        elif self._next < len(self._texts):
            text = self._texts[self._next]
            self._next += 1
        else:
            text = ""
        if self.delay_s > 0:
            await self._clock.sleep(self.delay_s)
        return Transcript(text=text, language=language or self.language, audio_s=audio.duration_s,
                          compute_s=self.delay_s)

    def close(self) -> None:
        self.closed = True
