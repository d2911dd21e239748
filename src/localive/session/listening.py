"""What the session hears (`Listening`): ``realtimeInput`` — audio through voice activity detection, activity
signals, video frames, typed text — turned into what the event loop acts on: the user's speech starting (a barge-in
unless the model may go on), a pause that holds the turn, an utterance ended (transcribed; the user's turn), and,
with semantic turn-taking, a short utterance while the model talks, judged by its words (a backchannel is let pass).

The backchannel judge is a task of the session's group; its verdict comes back as a `BackchannelHeard` event, so
that the judgement is applied by the event loop like any input, never beside it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Protocol

from localive.engines.speech_remote import ASR_STAGE
from localive.engines.vision.base import Vision
from localive.engines.vision.loader import VISION_HINT
from localive.engines.voice import VOICE_HINT
from localive.protocol import messages as wire
from localive.protocol import server_messages as out
from localive.protocol.errors import InvalidArgument, LiveError, Unimplemented, close_for
from localive.session.activity import (
    ActivityEvent,
    PauseHeld,
    PauseStarted,
    SpeechEnded,
    SpeechGoingOn,
    SpeechResumed,
    SpeechStarted,
)
from localive.session.backchannel import BARGE_IN_AFTER_S, LISTENER_WORDS, lets_the_model_go_on
from localive.session.config import SessionConfig
from localive.session.events import BackchannelHeard, EventQueue
from localive.session.foresight import Foresight, Prepared
from localive.session.history import History
from localive.session.lifecycle import Lifecycle, Trigger
from localive.session.outbox import Outbox
from localive.session.tasks import SessionTasks
from localive.session.transcripts import Transcripts
from localive.session.video_in import VideoInput
from localive.session.watchdog import Watchdog

if TYPE_CHECKING:  # imported at setup where the server hears audio: text sessions never load numpy or soxr
    from localive.session.audio_in import AudioInput

log = logging.getLogger("localive.session")


class Turns(Protocol):
    """What listening asks of the session's turns."""

    @property
    def generating(self) -> bool: ...

    async def interrupt(self) -> bool: ...

    async def user_input(self, add: Callable[[], None]) -> None: ...


class Listening:
    def __init__(self, session_id: str, config: Callable[[], SessionConfig], audio: AudioInput | None,
                 vision: Vision | None,
                 *, turns: Turns, transcripts: Transcripts, history: History, outbox: Outbox, watchdog: Watchdog,
                 lifecycle: Lifecycle, tasks: SessionTasks, events: EventQueue,
                 foresight: Foresight | None = None) -> None:
        self.session_id = session_id
        self._config = config  # the session's, as in force now (contextUpdate replaces it)
        self._audio = audio
        self._vision = vision
        self.video: VideoInput | None = None
        self._turns = turns
        self._transcripts = transcripts
        self._history = history
        self._outbox = outbox
        self._watchdog = watchdog
        self._lifecycle = lifecycle
        self._tasks = tasks
        self._events = events
        self._maybe_backchannel: float | None = None  # when speech began while the model was talking (semantic)
        self._judge: asyncio.Task[None] | None = None  # judging a short utterance's words
        self._foresight = foresight  # working ahead in the user's pauses (session/foresight.py)
        self.prepared: Prepared | None = None  # what was worked ahead for the turn about to start

    def video_input(self) -> VideoInput:
        if self.video is None:
            if self._vision is None:
                raise Unimplemented(f"Video input is not available on this server ({VISION_HINT}).")
            self.video = VideoInput(self._vision, self._config().media_resolution)
        return self.video

    def close(self) -> None:
        """The session ends: release what the audio input holds (its VAD stream). Safe to call twice."""
        if self._audio is not None:
            self._audio.close()

    async def realtime_input(self, realtime: wire.RealtimeInput) -> None:
        if realtime.video is not None:
            self.video_input().push(realtime.video.data, realtime.video.mime_type)
        if (realtime.activity_start or realtime.activity_end) and not self._config().manual_activity:
            raise InvalidArgument(
                "activityStart/activityEnd require realtimeInputConfig.automaticActivityDetection.disabled."
            )
        audio = self._audio
        blobs = [realtime.audio] if realtime.audio is not None else (realtime.media_chunks or [])[:1]
        if blobs and blobs[0].mime_type.lower().startswith("image/"):  # deprecated mediaChunks with a frame
            self.video_input().push(blobs[0].data, blobs[0].mime_type)
            blobs = []
        if blobs and audio is None:
            raise Unimplemented(f"Audio input is not installed on this server ({VOICE_HINT}).")
        if realtime.activity_start and audio is not None:
            await self._on_activity(audio.activity_start())
        for blob in blobs:
            assert audio is not None
            await self._on_activity(await audio.push(blob.data, blob.mime_type))
            await self._barge_in_if_long(audio)
        if realtime.audio_stream_end and audio is not None:
            await self._on_activity(audio.stream_end())
        if realtime.activity_end and audio is not None:
            await self._on_activity(audio.activity_end())
        if realtime.text is not None:
            await self._turns.user_input(partial(self._transcripts.add_typed, self._history, realtime.text))

    async def _on_activity(self, events: list[ActivityEvent]) -> None:
        config, turns = self._config(), self._turns
        automatic = not config.manual_activity
        for event in events:
            if isinstance(event, PauseStarted | SpeechResumed | SpeechStarted | SpeechGoingOn):
                self._foresee(event)
            if automatic and isinstance(event, SpeechStarted):  # what the VAD heard (none with manual activity)
                await self._outbox.put(out.voice_activity("ACTIVITY_START", event.at_s))
            elif automatic and isinstance(event, SpeechEnded):
                await self._outbox.put(out.voice_activity("ACTIVITY_END", event.stopped_s))
            if isinstance(event, PauseHeld):
                if not turns.generating:  # a pause judged mid-sentence holds the turn: the model waits for more
                    await self._outbox.put(out.waiting_for_input())
            elif isinstance(event, SpeechStarted):
                if config.activity_interrupts:
                    if config.activity.semantic and turns.generating:
                        self._maybe_backchannel = event.at_s  # barge-in, or only "mm-hm"? (backchannel.py)
                    else:
                        await turns.interrupt()  # barge-in
                self._lifecycle.move(Trigger.SPEECH_STARTED)
            elif isinstance(event, SpeechEnded):
                self._lifecycle.move(Trigger.SPEECH_ENDED)
                if self._maybe_backchannel is not None and turns.generating:
                    self._maybe_backchannel = None
                    self._judge_short_utterance(event)
                else:
                    self._maybe_backchannel = None
                    await turns.user_input(partial(self._transcribe_later, event))

    async def _barge_in_if_long(self, audio: AudioInput) -> None:
        """Speech that goes on while the model talks is a barge-in, whatever it turns out to say (a pause in it
        waits for the end-of-turn judgement instead)."""
        started = self._maybe_backchannel
        if (started is not None and audio.speaking and not audio.paused
                and audio.received_s - started >= BARGE_IN_AFTER_S):
            self._maybe_backchannel = None
            await self._turns.interrupt()

    def _foresee(self, event: PauseStarted | SpeechResumed | SpeechStarted | SpeechGoingOn) -> None:
        """Work ahead while the user speaks and in their pauses, unless the model is talking (a barge-in or a
        backchannel is being judged then); stop when the user goes on after a pause."""
        foresight, audio = self._foresight, self._audio
        if foresight is None or audio is None:
            return
        quiet = not self._turns.generating and self.video is None
        if isinstance(event, SpeechGoingOn):
            if quiet:
                foresight.listen(audio.utterance, self._config(), self._history)
        elif isinstance(event, PauseStarted) and quiet:
            foresight.pause(event, self._config(), self._history)
        else:
            foresight.cancel()

    def _transcribe_later(self, event: SpeechEnded) -> None:
        prepared = None
        if self._foresight is not None and self._turns.generating:  # the turn waits (NO_INTERRUPTION): no use
            self._foresight.cancel()
        elif self._foresight is not None:
            prepared = self._foresight.take(event)
        self.prepared = prepared
        self._transcripts.queue(prepared.heard if prepared is not None else self._transcripts.start(event,
                                                                                                    self._config()))

    def take_prepared(self) -> Prepared | None:
        """For the turn that starts now: what was worked ahead for it."""
        prepared, self.prepared = self.prepared, None
        return prepared

    def _judge_short_utterance(self, event: SpeechEnded) -> None:
        """A short utterance while the model talks: a backchannel is let pass; anything else interrupts."""
        if self._judge is not None:
            self._judge.cancel()  # the latest one decides
        heard = self._transcripts.start(event, self._config(), expect=LISTENER_WORDS)

        async def judge() -> None:
            try:
                with self._watchdog.stage(ASR_STAGE):
                    words = (await asyncio.shield(heard)).get().transcript.text
            except LiveError as exc:  # the recogniser failed: the session ends, saying so (not a lost task)
                await self._outbox.put(close_for(exc))
                return
            self._events.post(BackchannelHeard(words, task, heard))

        task = self._judge = self._tasks.start(judge(), "backchannel")
        task.add_done_callback(lambda done: heard.cancel() if done.cancelled() else None)

    async def on_backchannel(self, verdict: BackchannelHeard) -> None:
        """The event loop applies a judge's verdict: the latest judge's only."""
        if verdict.judge is not self._judge:
            verdict.heard.cancel()
            return
        self._judge = None
        if lets_the_model_go_on(verdict.words) and self._turns.generating:
            log.info("session %s: backchannel %r while the model talks: not an interruption", self.session_id,
                     verdict.words[:40])
            return
        await self._turns.user_input(lambda: self._transcripts.queue(verdict.heard))

