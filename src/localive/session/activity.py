"""Automatic activity detection: VAD probabilities per frame → start and end of the user's speech.

Pure and deterministic: the session runs the VAD model (off the event loop) and feeds each frame with its
speech probability; the detector says when speech starts (after `min_speech_ms` of likely speech, the
`prefixPaddingMs` of the Live API) and ends (after `silence_ms` of likely silence, `silenceDurationMs`), and
hands back the utterance audio, including a little audio from before the start so no word is clipped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from localive.audio.pcm import Pcm16
from localive.protocol import messages as wire

if TYPE_CHECKING:  # numpy is needed only once audio is processed (pcm.py)
    import numpy as np
    import numpy.typing as npt

# Start sensitivity → (probability threshold, speech needed before the start is committed, ms)
_START = {"START_SENSITIVITY_HIGH": (0.5, 64), "START_SENSITIVITY_LOW": (0.7, 192)}
# End sensitivity → silence that ends the turn, ms
_END = {"END_SENSITIVITY_HIGH": 500, "END_SENSITIVITY_LOW": 1000}
PREROLL_MS = 300
TRAILING_KEEP_MS = 200
MAX_UTTERANCE_S = 30.0
# Semantic turn-taking: the end-of-turn model is asked once, after this much silence; an utterance it does not
# judge complete ends after INCOMPLETE_SILENCE_MS (or the session's silence window if longer). Asking again later
# would not help: the longer the silence, the more any cut-off sounds finished to it (docs/turn-taking.md).
PAUSE_MS = 200
INCOMPLETE_SILENCE_MS = 2000
# Work ahead (session/foresight.py): this much silence after speech and the session starts answering what it has
# heard so far, ahead of the end-of-turn decision (and semantic turn-taking asks its model then, on the audio padded
# to the pause it judges, audio_in.py). One 32 ms frame: Silero's probability falls below the end threshold ~60-90 ms
# after the last word, and on the turn-taking benchmark's 32 utterances one frame found exactly the pauses that two
# did (no gap between words counted); the judgement made then agreed with the one at PAUSE_MS in 48 of 48 pauses.
FORESEE_AFTER_MS = 32
# ...and while they speak, this often the session may transcribe what they said so far and have the LLM read it.
LISTEN_AHEAD_EVERY_MS = 500


@dataclass(frozen=True)
class ActivitySettings:
    start_threshold: float = 0.5
    min_speech_ms: int = 64
    silence_ms: int = 500
    include_all_input: bool = False  # turnCoverage TURN_INCLUDES_ALL_INPUT: the turn holds all audio since the last
    max_utterance_s: float = MAX_UTTERANCE_S
    semantic: bool = False  # semantic turn-taking: pauses are judged by an end-of-turn model (docs/turn-taking.md)

    @property
    def end_silence_ms(self) -> int:
        """Silence that ends a turn on its own: the silence window, or with semantic turn-taking the longer wait
        for an utterance the end-of-turn model did not judge complete."""
        return max(self.silence_ms, INCOMPLETE_SILENCE_MS) if self.semantic else self.silence_ms

    @property
    def end_threshold(self) -> float:
        return max(0.05, self.start_threshold - 0.15)  # hysteresis

    @classmethod
    def from_setup(cls, config: wire.RealtimeInputConfig | None, *, semantic: bool = False) -> ActivitySettings:
        aad = (config.automatic_activity_detection if config else None) or wire.AutomaticActivityDetection()
        threshold, min_speech = _START.get(aad.start_of_speech_sensitivity or "", _START["START_SENSITIVITY_HIGH"])
        silence = _END.get(aad.end_of_speech_sensitivity or "", _END["END_SENSITIVITY_HIGH"])
        coverage = config.turn_coverage if config else None
        return cls(
            start_threshold=threshold,
            min_speech_ms=aad.prefix_padding_ms if aad.prefix_padding_ms is not None else min_speech,
            silence_ms=aad.silence_duration_ms if aad.silence_duration_ms is not None else silence,
            include_all_input=coverage == "TURN_INCLUDES_ALL_INPUT",
            semantic=semantic,
        )


@dataclass(frozen=True)
class SpeechStarted:
    at_s: float  # offset in the stream


@dataclass(frozen=True)
class SpeechEnded:
    audio: Pcm16
    at_s: float  # where the end was decided (after the silence that ended the speech)
    forced: bool = False  # by audioStreamEnd or the length limit rather than silence
    speech_end_s: float | None = None  # where the speech itself stopped, before that silence (None: at at_s)
    heard_frames: int | None = None  # frames of the utterance up to its last speech frame (None: not tracked)

    @property
    def stopped_s(self) -> float:
        """Where the speech stopped in the stream."""
        return self.at_s if self.speech_end_s is None else self.speech_end_s


@dataclass(frozen=True)
class PauseHeard:
    """Semantic turn-taking: the user paused; is the utterance so far finished? If the end-of-turn model says so,
    the caller ends the turn with `end_at_pause()` (while the pause lasts)."""

    audio: Pcm16
    silence_ms: float
    heard_frames: int | None = None  # frames up to the last speech frame: the `PauseStarted` of the same pause


@dataclass(frozen=True)
class PauseHeld:
    """Semantic turn-taking: the end-of-turn model judged a pause unfinished, so the user's turn stays open and
    waits for them to go on (it ends when they finish, or after the longer silence window)."""

    at_s: float


@dataclass(frozen=True)
class PauseStarted:
    """The user has been silent for FORESEE_AFTER_MS after speech: the utterance so far (`audio`), which the turn
    will hear if they say no more — `heard_frames` is then the same in the `SpeechEnded` that ends it."""

    audio: Pcm16
    heard_frames: int


@dataclass(frozen=True)
class SpeechResumed:
    """The user spoke again after a `PauseStarted`: what was foreseen from it is out of date."""

    at_s: float


@dataclass(frozen=True)
class SpeechGoingOn:
    """Another LISTEN_AHEAD_EVERY_MS of the user's speech: a moment to read what they have said so far."""


ActivityEvent = SpeechStarted | SpeechEnded | PauseHeard | PauseHeld | PauseStarted | SpeechResumed | SpeechGoingOn


class ActivityDetector:
    def __init__(self, settings: ActivitySettings, frame_samples: int, sample_rate_hz: int = 16000, *,
                 foresee: bool = False) -> None:
        self.settings = settings
        self.frame_samples = frame_samples
        self.sample_rate_hz = sample_rate_hz
        frame_ms = 1000 * frame_samples / sample_rate_hz
        self._frame_ms = frame_ms
        self._min_speech_frames = max(1, round(settings.min_speech_ms / frame_ms))
        self._silence_frames = max(1, round(settings.end_silence_ms / frame_ms))
        self._pause_frames = max(1, round(PAUSE_MS / frame_ms))
        self._foresee_frames = max(1, round(FORESEE_AFTER_MS / frame_ms)) if foresee else 0
        self._listen_frames = max(1, round(LISTEN_AHEAD_EVERY_MS / frame_ms))
        self._keep_trailing = round(TRAILING_KEEP_MS / frame_ms)
        max_frames = round(settings.max_utterance_s * 1000 / frame_ms)
        history = max_frames if settings.include_all_input else round(PREROLL_MS / frame_ms)
        self._max_frames = max_frames
        self._before: deque[npt.NDArray[np.float32]] = deque(maxlen=max(1, history))  # audio before speech
        self._utterance: list[npt.NDArray[np.float32]] = []
        self._speech_run = 0  # consecutive likely-speech frames while not yet speaking
        self._silence_run = 0  # consecutive likely-silence frames while speaking
        self.speaking = False
        self._frames_seen = 0

    @property
    def position_s(self) -> float:
        return self._frames_seen * self._frame_ms / 1000

    def push(self, frame: npt.NDArray[np.float32], probability: float) -> list[ActivityEvent]:
        self._frames_seen += 1
        if not self.speaking:
            self._before.append(frame)
            if probability >= self.settings.start_threshold:
                self._speech_run += 1
            elif probability < self.settings.end_threshold:
                self._speech_run = 0
            if self._speech_run >= self._min_speech_frames:
                self.speaking = True
                self._silence_run = 0
                self._utterance = list(self._before)
                self._before.clear()
                return [SpeechStarted(self.position_s - self._speech_run * self._frame_ms / 1000)]
            return []
        self._utterance.append(frame)
        was_silent = self._silence_run
        self._silence_run = self._silence_run + 1 if probability < self.settings.end_threshold else 0
        events: list[ActivityEvent] = []
        if self._foresee_frames and was_silent >= self._foresee_frames and not self._silence_run:
            events.append(SpeechResumed(self.position_s))
        if self._silence_run >= self._silence_frames:
            drop = max(0, self._silence_run - self._keep_trailing)
            return [*events, self._end(drop, forced=False)]
        if len(self._utterance) >= self._max_frames:
            return [*events, self._end(0, forced=True)]
        if self.settings.semantic and self._silence_run == self._pause_frames:
            audio = Pcm16.from_float32_frames(self._utterance, self.sample_rate_hz)
            events.append(PauseHeard(audio, self._silence_run * self._frame_ms,
                                     len(self._utterance) - self._silence_run))
        if self._foresee_frames and self._silence_run == self._foresee_frames:
            audio = padded(self.utterance(), (self._keep_trailing - self._silence_run) * self._frame_ms)
            events.append(PauseStarted(audio, len(self._utterance) - self._silence_run))
        elif self._foresee_frames and not self._silence_run and len(self._utterance) % self._listen_frames == 0:
            events.append(SpeechGoingOn())
        return events

    def utterance(self) -> Pcm16:
        """The current utterance so far."""
        return Pcm16.from_float32_frames(self._utterance, self.sample_rate_hz)

    @property
    def paused(self) -> bool:
        """Speaking, but in a pause (the last frames were silence)."""
        return self.speaking and self._silence_run > 0

    def end_at_pause(self) -> list[ActivityEvent]:
        """The end-of-turn model judged the utterance finished: end it now if the user is still pausing."""
        if not self.paused:
            return []  # they went on speaking meanwhile
        return [self._end(max(0, self._silence_run - self._keep_trailing), forced=False)]

    def flush(self) -> list[ActivityEvent]:
        """End the current speech now (audioStreamEnd)."""
        if not self.speaking:
            self._speech_run = 0
            return []
        return [self._end(0, forced=True)]

    def _end(self, drop_frames: int, forced: bool) -> SpeechEnded:
        frames = self._utterance[: len(self._utterance) - drop_frames] if drop_frames else self._utterance
        audio = Pcm16.from_float32_frames(frames, self.sample_rate_hz)
        speech_end_s = self.position_s - self._silence_run * self._frame_ms / 1000  # before the trailing silence
        heard_frames = len(self._utterance) - self._silence_run
        self._utterance = []
        self.speaking = False
        self._speech_run = 0
        self._silence_run = 0
        return SpeechEnded(audio, self.position_s, forced, speech_end_s, heard_frames)


class PauseTracker:
    """With manual activity (the client says where speech starts and ends): where the user pauses within it, from
    the VAD's probabilities, so that the session can work ahead (`PauseStarted`) before `activityEnd` arrives."""

    def __init__(self, settings: ActivitySettings, frame_samples: int, sample_rate_hz: int = 16000) -> None:
        self._threshold = settings.start_threshold
        self._end_threshold = settings.end_threshold
        self._foresee_frames = max(1, round(FORESEE_AFTER_MS * sample_rate_hz / 1000 / frame_samples))
        self._listen_frames = max(1, round(LISTEN_AHEAD_EVERY_MS * sample_rate_hz / 1000 / frame_samples))
        self.frames = 0  # scored since activityStart
        self.heard_frames = 0  # up to the last speech frame
        self._silence_run = 0
        self._heard = False

    def push(self, probability: float, audio: Callable[[], Pcm16]) -> list[ActivityEvent]:
        """One frame's probability; `audio` makes the utterance so far (only called for a `PauseStarted`)."""
        self.frames += 1
        if probability >= self._threshold or (self._heard and probability >= self._end_threshold):
            resumed = self._silence_run >= self._foresee_frames
            self._heard, self._silence_run, self.heard_frames = True, 0, self.frames
            if resumed:
                return [SpeechResumed(0.0)]
            return [SpeechGoingOn()] if self.frames % self._listen_frames == 0 else []
        if not self._heard:
            return []
        self._silence_run += 1
        if self._silence_run != self._foresee_frames:
            return []
        return [PauseStarted(padded(audio(), TRAILING_KEEP_MS - FORESEE_AFTER_MS), self.heard_frames)]


def padded(audio: Pcm16, silence_ms: float) -> Pcm16:
    """`audio` with `silence_ms` of digital silence after it: an utterance cut early in a pause, given the trailing
    silence the utterance will have when it ends (Whisper mishears a last word that the audio ends right after:
    "capital of France" heard as "capital of friends" 64 ms into the pause, rightly with 200 ms after it)."""
    samples = round(audio.sample_rate_hz * max(0.0, silence_ms) / 1000)
    return Pcm16(audio.data + bytes(2 * samples), audio.sample_rate_hz) if samples else audio
