"""The user's audio: realtime chunks → 16 kHz frames → VAD → activity events (or client-driven activity).

One per session. Chunks are validated (rate from the MIME type, even byte count), resampled with a streaming
resampler, cut into VAD frames, scored by the VAD (one awaited call a chunk: the VAD runs it in place or on its
shared worker) and fed to the ActivityDetector. With automatic activity detection disabled, the client brackets
speech with activityStart/activityEnd and audio outside those brackets is ignored.

Semantic turn-taking asks the end-of-turn model about a pause as soon as the pause starts (`PauseStarted`, one
silent frame in), on the utterance padded with the silence it will have when judged (`PAUSE_MS`): the answer is
ready when the pause reaches `PAUSE_MS`, and the model's work is done while the recogniser transcribes the same
words, before the LLM needs both cores. The user going on throws it away; a pause without one is judged then.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor

import numpy as np
import numpy.typing as npt

from localive.audio.mime import pcm_rate
from localive.audio.pcm import Pcm16
from localive.audio.resample import StreamResampler
from localive.engines.turn.base import EndOfTurn
from localive.engines.vad.base import VAD, VADFactory
from localive.protocol.errors import InvalidArgument
from localive.session.activity import (
    ActivityDetector,
    ActivityEvent,
    ActivitySettings,
    PauseHeard,
    PauseHeld,
    PauseStarted,
    PauseTracker,
    SpeechEnded,
    SpeechResumed,
    SpeechStarted,
)

INPUT_RATE_HZ = 16000


class AudioInput:
    def __init__(self, settings: ActivitySettings, *, manual: bool, vad_factory: VADFactory | None,
                 executor: Executor | None = None, end_of_turn: EndOfTurn | None = None,
                 end_of_turn_threshold: float = 0.5, foresee: bool = False) -> None:
        self.manual = manual
        self._foresee = foresee  # say where the user pauses (PauseStarted), also with manual activity
        self._end_of_turn = end_of_turn if settings.semantic else None
        self._threshold = end_of_turn_threshold
        self.pauses_judged: list[tuple[float, float]] = []  # (silence ms, probability) of the current utterance
        self._early: tuple[int, asyncio.Future[float]] | None = None  # the judgement asked when the pause started
        self._settings = settings
        self._vad_factory = vad_factory
        self._vad: VAD | None = None  # made on the first audio, off the event loop
        self._executor = executor
        self._resampler: StreamResampler | None = None
        self._mime_type, self._rate = "", 0  # the last chunk's MIME type and its rate: parsed once, not per chunk
        self._detector: ActivityDetector | None = None
        self._frame_samples = 0
        self._carry: npt.NDArray[np.float32] = np.zeros(0, dtype=np.float32)
        self._manual_audio: list[Pcm16] = []
        self._manual_samples = 0
        self._pauses: PauseTracker | None = None  # manual activity with `foresee`: pauses within the activity
        self.in_activity = False  # manual mode: between activityStart and activityEnd
        self.received_s = 0.0  # seconds of audio received, at 16 kHz

    @property
    def speaking(self) -> bool:
        return self.in_activity if self.manual else bool(self._detector and self._detector.speaking)

    @property
    def paused(self) -> bool:
        """Automatic mode: speaking, but the last frames were silence (a pause the end of turn may follow)."""
        return not self.manual and bool(self._detector and self._detector.paused)

    async def _ready_vad(self) -> tuple[VAD, ActivityDetector]:
        if self._vad is None or self._detector is None:
            if self._vad_factory is None:
                raise InvalidArgument("Audio input is not available on this server.")
            loop = asyncio.get_running_loop()
            self._vad = await loop.run_in_executor(self._executor, self._vad_factory)
            self._frame_samples = self._vad.frame_samples
            self._detector = ActivityDetector(self._settings, self._frame_samples, INPUT_RATE_HZ,
                                              foresee=self._foresee or self._end_of_turn is not None)
        return self._vad, self._detector

    async def push(self, data: bytes, mime_type: str) -> list[ActivityEvent]:
        if mime_type != self._mime_type:
            self._rate, self._mime_type = pcm_rate(mime_type), mime_type
        rate = self._rate
        if len(data) % 2:
            raise InvalidArgument("Audio data must be 16-bit PCM: an even number of bytes.")
        if self._resampler is None or self._resampler.from_hz != rate:
            self._resampler = StreamResampler(rate, INPUT_RATE_HZ)
        audio = self._resampler.push(Pcm16(data, rate))
        self.received_s += audio.duration_s
        if self.manual:
            if not self.in_activity:
                return []
            self._keep_manual(audio)
            if not self._foresee or self._vad_factory is None:
                return []
            if self._pauses is None:
                await self._ready_vad()
                self._pauses = PauseTracker(self._settings, self._frame_samples, INPUT_RATE_HZ)
            pauses = self._pauses
            _, probabilities = await self._score(audio)
            return [event for p in probabilities for event in pauses.push(p, self._manual_pcm)]
        _, detector = await self._ready_vad()
        frames, probabilities = await self._score(audio)
        events: list[ActivityEvent] = []
        for frame, probability in zip(frames, probabilities, strict=True):
            for event in detector.push(frame, probability):
                if isinstance(event, PauseStarted):
                    self._judge_early(event)
                elif isinstance(event, SpeechResumed | SpeechEnded):
                    self._drop_early()
                if isinstance(event, PauseHeard):
                    if await self._finished(event):
                        events += detector.end_at_pause()
                    elif detector.paused:  # judged unfinished, and the user has not gone on meanwhile
                        events.append(PauseHeld(detector.position_s))
                else:
                    if isinstance(event, SpeechStarted):
                        self.pauses_judged = []
                    events.append(event)
        return events

    async def _score(self, audio: Pcm16) -> tuple[npt.NDArray[np.float32], list[float]]:
        """The complete VAD frames of the audio so far (the rest waits for the next chunk), and their speech
        probabilities."""
        vad, _ = await self._ready_vad()
        fresh = np.frombuffer(audio.data, dtype="<i2").astype(np.float32)  # Pcm16.to_float32, in place:
        fresh *= 1 / 32768  # one array a chunk, not two (a power of two: the same values as dividing)
        samples = np.concatenate([self._carry, fresh]) if len(self._carry) else fresh
        count = len(samples) // self._frame_samples
        self._carry = samples[count * self._frame_samples:].copy()
        frames = samples[:count * self._frame_samples].reshape(count, self._frame_samples)
        if not count:
            return frames, []
        return frames, await vad.probabilities(frames)  # the VAD decides where it runs (engines/vad/base.py)

    async def _finished(self, pause: PauseHeard) -> bool:
        """Semantic turn-taking: does the utterance so far sound finished? (The model runs off the event loop.)"""
        if self._end_of_turn is None:
            return False
        early = self._early
        if early is not None and early[0] == pause.heard_frames:  # asked when this pause started
            self._early = None
            probability = await early[1]
        else:
            self._drop_early()
            probability = await self._judge(pause.audio)
        self.pauses_judged.append((pause.silence_ms, probability))
        return probability > self._threshold

    def _judge(self, audio: Pcm16) -> asyncio.Future[float]:
        assert self._end_of_turn is not None
        samples = np.frombuffer(audio.data, dtype="<i2")
        return asyncio.get_running_loop().run_in_executor(self._executor, self._end_of_turn.probability, samples)

    def _judge_early(self, pause: PauseStarted) -> None:
        """A pause started: ask the end-of-turn model now about the utterance as it will be judged (its audio
        padded with the silence `PauseHeard` will have), so that the answer is ready when the pause is long enough."""
        if self._end_of_turn is None:
            return
        self._drop_early()
        future = self._judge(pause.audio)
        future.add_done_callback(_retrieved)  # nobody may await it: the user may go on
        self._early = (pause.heard_frames, future)

    def _drop_early(self) -> None:
        if self._early is not None:
            self._early[1].cancel()  # if it has not started yet, it never does
            self._early = None

    def close(self) -> None:
        """Release the VAD stream now (else it is released when this object is collected)."""
        self._drop_early()
        if self._vad is not None:
            self._vad.close()

    def stream_end(self) -> list[ActivityEvent]:
        """audioStreamEnd: the microphone paused; finish the user's speech now (automatic mode only)."""
        if self.manual:
            return []
        self._carry = np.zeros(0, dtype=np.float32)
        self._resampler = None
        return self._detector.flush() if self._detector else []

    def activity_start(self) -> list[ActivityEvent]:
        if self.in_activity:
            return []
        self.in_activity = True
        self._manual_audio, self._manual_samples = [], 0
        self._pauses, self._carry = None, np.zeros(0, dtype=np.float32)
        return [SpeechStarted(self.received_s)]

    def activity_end(self) -> list[ActivityEvent]:
        if not self.in_activity:
            return []
        self.in_activity = False
        audio = self._manual_pcm()
        heard = self._pauses.heard_frames if self._pauses is not None else None
        self._manual_audio, self._manual_samples, self._pauses = [], 0, None
        return [SpeechEnded(audio, self.received_s, forced=True, heard_frames=heard)]

    def utterance(self) -> Pcm16:
        """What the user has said so far in the current utterance (empty between utterances)."""
        if self.manual:
            return self._manual_pcm()
        return self._detector.utterance() if self._detector is not None else Pcm16(b"", INPUT_RATE_HZ)

    def _manual_pcm(self) -> Pcm16:
        """The audio since activityStart."""
        return Pcm16(b"".join(a.data for a in self._manual_audio), INPUT_RATE_HZ)

    def _keep_manual(self, audio: Pcm16) -> None:
        """Bounded: beyond the utterance limit the oldest audio is dropped."""
        self._manual_audio.append(audio)
        self._manual_samples += audio.samples
        limit = int(self._settings.max_utterance_s * INPUT_RATE_HZ)
        while self._manual_samples > limit and len(self._manual_audio) > 1:
            self._manual_samples -= self._manual_audio.pop(0).samples


def _retrieved(future: asyncio.Future[float]) -> None:
    """Mark a judgement's failure as seen: one that nobody awaited (the user went on) is not an error."""
    if not future.cancelled():
        future.exception()
