"""The user's speech on its way into the history: its transcriptions (tasks of the session's group), taken in order
by the model turn, and what the last utterance told of the user — how they sounded (affective dialog), the
language they spoke, whether the newest user message was spoken at all (proactive audio judges only speech)."""

from __future__ import annotations

import asyncio
from collections import deque

from localive.engines.asr.base import ASR, Busy
from localive.engines.speech_remote import ASR_STAGE
from localive.engines.voice import VOICE_HINT
from localive.protocol import server_messages as out
from localive.protocol.errors import Unimplemented
from localive.session.activity import SpeechEnded
from localive.session.affect import Affect
from localive.session.config import SessionConfig
from localive.session.hearing import AffectTracker, Heard, Recognition, hear
from localive.session.history import History
from localive.session.outbox import Outbox
from localive.session.tasks import Outcome, SessionTasks
from localive.session.timings import TurnTimings
from localive.session.watchdog import Watchdog

MAX_PENDING_UTTERANCES = 8


class Transcripts:
    def __init__(self, asr: ASR | None, tasks: SessionTasks) -> None:
        self._asr = asr
        self._tasks = tasks
        self._pending: deque[asyncio.Task[Outcome[Heard]]] = deque()  # transcriptions not yet in history
        self._tracker: AffectTracker | None = None  # with enableAffectiveDialog
        self.affect: Affect | None = None  # how the user sounded in their last utterance
        self.spoken_last = False  # the newest user message was spoken
        self.language: str | None = None  # the language the recogniser heard it in

    def start(self, event: SpeechEnded, config: SessionConfig | None,
              expect: str | None = None) -> asyncio.Task[Outcome[Heard]]:
        """Transcribe an utterance (`expect`: what typically precedes it, as a hint)."""
        if self._asr is None:
            raise Unimplemented(f"Speech recognition is not installed on this server ({VOICE_HINT}).")
        if len(self._pending) >= MAX_PENDING_UTTERANCES:
            raise Unimplemented("Too many utterances are waiting for transcription.")
        recognition = config.recognition if config else Recognition()
        if config and config.affective and self._tracker is None:
            self._tracker = AffectTracker()
        return self._tasks.start_outcome(hear(self._asr, event.audio, recognition, self._tracker, expect), "asr")

    @property
    def idle(self) -> bool:
        """The recogniser says it is working for nobody now (engines that cannot tell are never idle)."""
        return isinstance(self._asr, Busy) and self._asr.idle

    @property
    def busy(self) -> bool:
        """The recogniser says it is working for someone now (engines that cannot tell never are)."""
        return isinstance(self._asr, Busy) and not self._asr.idle

    def queue(self, heard: asyncio.Task[Outcome[Heard]]) -> None:
        """An utterance the next model turn takes into the history."""
        self._pending.append(heard)

    def add_typed(self, history: History, text: str) -> None:
        if history.add_text("user", text):
            self.spoken_last = False

    async def take(self, history: History, config: SessionConfig, outbox: Outbox, watchdog: Watchdog,
                   timings: TurnTimings) -> float:
        """Wait for pending transcriptions, in order, and add them to history. Returns seconds of speech."""
        speech_s = 0.0
        while self._pending:
            with watchdog.stage(ASR_STAGE):
                heard = (await asyncio.shield(self._pending[0])).get()  # survives the turn's cancellation
            self._pending.popleft()
            transcript = heard.transcript
            if heard.affect is not None:
                self.affect = heard.affect
            speech_s += transcript.audio_s
            timings.asr_compute_s += transcript.compute_s
            timings.asr_audio_s += transcript.audio_s
            if transcript.text:
                if config.input_transcription:
                    # the language the recogniser detected, where the session asked it to detect one
                    detected = transcript.language if config.recognition.detect_among is not None else None
                    await outbox.put(out.input_transcription(transcript.text, language_code=detected))
                history.add_text("user", transcript.text)
                self.spoken_last = True
                self.language = transcript.language
        return speech_s
