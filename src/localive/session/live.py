"""`LiveSession`: the Live semantics of one connection, driven by parsed client messages.

Inputs arrive through `handle()`; everything the client should receive goes into `outbox`, which the transport
drains. The session owns its tasks (the model turn, pending transcriptions) and cancels them on interruption and
on `aclose()`. No sockets here.

States: AWAITING_SETUP --setup--> ACTIVE --aclose()/failure--> CLOSED. A model turn runs as one task:
the pending user speech is transcribed (``inputTranscription``), then the answer streams as text parts or as
audio (with ``outputTranscription``) → ``generationComplete`` → (audio: once the client has played it)
``turnComplete`` + ``usageMetadata``. An interruption (barge-in, new content) cancels the turn and sends
``interrupted`` → ``turnComplete``, keeping in history only what the user was given (text) or heard (audio).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

from localive.engines.asr.base import Transcript
from localive.engines.llm.base import LLM, ChatMessage
from localive.engines.voice import VOICE_HINT
from localive.models.registry import ModelRegistry
from localive.protocol import messages as wire
from localive.protocol import server_messages as out
from localive.protocol.errors import InvalidArgument, Unimplemented, close_for
from localive.session.activity import ActivityEvent, SpeechEnded, SpeechStarted
from localive.session.audio_in import AudioInput
from localive.session.config import SessionConfig, content_text, session_config
from localive.session.engines import Engines
from localive.session.outbox import Outbox
from localive.session.speech_out import Playback, speak
from localive.session.timings import TurnTimings
from localive.session.usage import turn_usage

log = logging.getLogger("localive.session")

INTERRUPT_TIMEOUT_S = 5.0
MAX_PENDING_UTTERANCES = 8


class State(enum.Enum):
    AWAITING_SETUP = "awaiting_setup"
    ACTIVE = "active"
    CLOSED = "closed"


@dataclass
class Turn:
    role: str  # "user" | "model"
    text: str


class LiveSession:
    def __init__(self, *, registry: ModelRegistry, engines: Engines, session_id: str,
                 api_version: str = "v1beta", outbox_size: int = 256) -> None:
        self.session_id = session_id
        self.api_version = api_version
        self.outbox = Outbox(outbox_size)
        self.state = State.AWAITING_SETUP
        self.config: SessionConfig | None = None
        self.history: list[Turn] = []
        self._registry = registry
        self._engines = engines
        self._llm: LLM | None = None
        self._audio: AudioInput | None = None
        self._turn_task: asyncio.Task[None] | None = None
        self._turn_id = 0
        self._started_turn = 0  # the last turn whose task began to run
        self._respond_after_turn = False
        self._utterances: deque[asyncio.Task[Transcript]] = deque()  # transcriptions not yet in history

    # --- input -------------------------------------------------------------------------------------------

    async def handle(self, message: wire.ClientMessage) -> None:
        """Apply one client message. Raises a LiveError for input that must end the session."""
        if self.state is State.CLOSED:
            return
        if self.state is State.AWAITING_SETUP:
            if not isinstance(message, wire.Setup):
                raise InvalidArgument("The first message must be setup.")
            await self._setup(message)
            return
        match message:
            case wire.Setup():
                raise InvalidArgument("setup may only be sent once, as the first message.")
            case wire.ClientContent():
                await self._client_content(message)
            case wire.RealtimeInput():
                await self._realtime_input(message)
            case wire.ToolResponse():
                ids = ", ".join(str(r.id) for r in message.function_responses) or "none"
                raise InvalidArgument(f"toolResponse for unknown function call id(s): {ids}."[:120])
            case wire.ContextUpdate():
                self._context_update(message)

    async def _setup(self, setup: wire.Setup) -> None:
        config = session_config(setup, self._registry, self.api_version, self._engines)
        self._llm = self._engines.llm_for(config.model)
        if self._engines.hears or config.manual_activity:
            self._audio = AudioInput(config.activity, manual=config.manual_activity,
                                     vad_factory=self._engines.vad_factory, executor=self._engines.vad_executor)
        self.config = config
        self.state = State.ACTIVE
        await self.outbox.put(out.setup_complete(self.session_id))

    async def _client_content(self, content: wire.ClientContent) -> None:
        await self.interrupt()  # any clientContent interrupts the model's current answer (proto semantics)
        for turn in content.turns or []:
            role = turn.role or "user"
            if role not in ("user", "model"):
                raise InvalidArgument(f"Content role must be 'user' or 'model', not '{role}'.")
            self._append(role, content_text(turn, "clientContent.turns"))
        if content.turn_complete:
            self._start_turn()

    async def _realtime_input(self, realtime: wire.RealtimeInput) -> None:
        assert self.config is not None
        if realtime.video is not None:
            raise Unimplemented("Video input is not available in this localive version yet.")
        manual = self.config.manual_activity
        if (realtime.activity_start or realtime.activity_end) and not manual:
            raise InvalidArgument(
                "activityStart/activityEnd require realtimeInputConfig.automaticActivityDetection.disabled."
            )
        audio = self._audio
        blobs = [realtime.audio] if realtime.audio is not None else (realtime.media_chunks or [])[:1]
        if blobs and audio is None:
            raise Unimplemented(f"Audio input is not installed on this server ({VOICE_HINT}).")
        if realtime.activity_start and audio is not None:
            await self._on_activity(audio.activity_start())
        for blob in blobs:
            if blob.mime_type.lower().startswith("image/"):
                raise Unimplemented("Video input is not available in this localive version yet.")
            assert audio is not None
            await self._on_activity(await audio.push(blob.data, blob.mime_type))
        if realtime.audio_stream_end and audio is not None:
            await self._on_activity(audio.stream_end())
        if realtime.activity_end and audio is not None:
            await self._on_activity(audio.activity_end())
        if realtime.text is not None:
            await self._user_input(partial(self._append, "user", realtime.text))

    async def _on_activity(self, events: list[ActivityEvent]) -> None:
        for event in events:
            if isinstance(event, SpeechStarted):
                if self.config and self.config.activity_interrupts:
                    await self.interrupt()  # barge-in
            elif isinstance(event, SpeechEnded):
                await self._user_input(partial(self._transcribe_later, event))

    async def _user_input(self, add: Callable[[], None]) -> None:
        """New user input ends in a model turn: now, or (NO_INTERRUPTION) after the current one."""
        assert self.config is not None
        if self.generating and not self.config.activity_interrupts:
            add()
            self._respond_after_turn = True
            return
        await self.interrupt()
        add()
        self._start_turn()

    def _transcribe_later(self, event: SpeechEnded) -> None:
        asr = self._engines.asr
        if asr is None:
            raise Unimplemented(f"Speech recognition is not installed on this server ({VOICE_HINT}).")
        if len(self._utterances) >= MAX_PENDING_UTTERANCES:
            raise Unimplemented("Too many utterances are waiting for transcription.")
        language = self.config.language if self.config else None
        self._utterances.append(asyncio.create_task(asr.transcribe(event.audio, language),
                                                    name=f"asr-{self.session_id}"))

    def _context_update(self, update: wire.ContextUpdate) -> None:
        assert self.config is not None
        if update.tools is not None and update.tools.tools:
            raise Unimplemented("Tools are not supported by localive yet.")
        if update.system_instruction is not None:
            text = content_text(update.system_instruction, "contextUpdate.systemInstruction")
            self.config = replace(self.config, system_instruction=text or None)

    def _append(self, role: str, text: str) -> None:
        if text:
            self.history.append(Turn(role, text))

    # --- turns -------------------------------------------------------------------------------------------

    @property
    def generating(self) -> bool:
        """A model turn is in progress (including audio the client is still playing)."""
        return self._turn_task is not None and not self._turn_task.done()

    def _start_turn(self) -> None:
        self._turn_id += 1
        self._turn_task = asyncio.create_task(self._run_turn(self._turn_id), name=f"turn-{self._turn_id}")

    def chat_messages(self) -> list[ChatMessage]:
        assert self.config is not None
        messages = []
        if self.config.system_instruction:
            messages.append(ChatMessage("system", self.config.system_instruction))
        messages.extend(ChatMessage("user" if t.role == "user" else "assistant", t.text) for t in self.history)
        return messages

    async def _take_utterances(self, timings: TurnTimings) -> float:
        """Wait for pending transcriptions, in order, and add them to history. Returns seconds of speech."""
        assert self.config is not None
        speech_s = 0.0
        while self._utterances:
            transcript = await asyncio.shield(self._utterances[0])  # survives the turn's cancellation
            self._utterances.popleft()
            speech_s += transcript.audio_s
            timings.asr_compute_s += transcript.compute_s
            timings.asr_audio_s += transcript.audio_s
            if transcript.text:
                if self.config.input_transcription:
                    await self.outbox.put(out.input_transcription(transcript.text))
                self._append("user", transcript.text)
        return speech_s

    async def _run_turn(self, turn_id: int) -> None:
        assert self.config is not None and self._llm is not None
        self._started_turn = turn_id
        config, llm = self.config, self._llm
        playback = Playback()
        timings = TurnTimings()
        pieces: list[str] = []
        prompt_tokens, speech_s, answered = 0, 0.0, False
        try:
            speech_s = await self._take_utterances(timings)
            timings.transcribed = time.monotonic()
            if not self.history or self.history[-1].role != "user":
                return  # nothing new to answer (e.g. the user made a sound but said no words)
            messages = self.chat_messages()
            prompt_tokens = llm.count_prompt_tokens(messages)
            stream = timings.timed(llm.stream(messages, config.sampling))
            if config.response_modality == "AUDIO":
                assert self._engines.tts is not None and config.voice is not None
                await speak(stream, tts=self._engines.tts, voice=config.voice, language=config.language,
                            outbox=self.outbox, turn=turn_id, playback=playback,
                            transcribe=config.output_transcription, timings=timings)
                reply = playback.text
            else:
                async for piece in stream:
                    pieces.append(piece)
                    timings.mark_output()
                    await self.outbox.put(out.model_text(piece), turn=turn_id)
                reply = "".join(pieces)
            log.info("turn timings session=%s turn=%d %s", self.session_id, turn_id, timings.log_fields())
            self._append("model", reply)
            answered = True
            await self.outbox.put(out.generation_complete())
            await asyncio.sleep(playback.remaining_s())  # the client is still playing: the turn is not over
            await self.outbox.put(out.turn_complete(turn_usage(llm, prompt_tokens, speech_s, reply, playback,
                                                               config.response_modality)))
        except asyncio.CancelledError:
            if self.state is State.CLOSED:  # the session is ending: nobody will read the outbox
                raise
            dropped = await self.outbox.drop_turn(turn_id)
            if answered:  # the whole answer was generated, but not all of it reached the user
                self.history.pop()
            if config.response_modality == "AUDIO":
                heard = playback.heard_text()
            else:
                heard = "".join(pieces[: len(pieces) - len(dropped)])
            self._append("model", heard)
            await self._end_interrupted_turn(turn_usage(llm, prompt_tokens, speech_s, heard, playback,
                                                        config.response_modality))
            raise
        except Exception as exc:  # any engine failure ends the session with 1011, logged here
            log.exception("session %s: turn failed", self.session_id)
            await self.outbox.put(close_for(exc))
            return
        if self._respond_after_turn:
            self._respond_after_turn = False
            self._start_turn()

    async def _end_interrupted_turn(self, usage: out.Usage | None) -> None:
        await self.outbox.put(out.interrupted())
        await self.outbox.put(out.turn_complete(usage))

    async def interrupt(self) -> bool:
        """Stop the current model turn, if any (sends interrupted → turnComplete). Returns whether it did."""
        task = self._turn_task
        if task is None or task.done():
            return False
        task.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(task), INTERRUPT_TIMEOUT_S)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
        except TimeoutError:
            log.error("session %s: turn did not stop within %.0f s", self.session_id, INTERRUPT_TIMEOUT_S)
        if self._started_turn != self._turn_id:  # cancelled before it ran: it could not report itself
            await self._end_interrupted_turn(None)
        return True

    async def aclose(self) -> None:
        """End the session: cancel the turn and transcriptions in progress. Safe to call twice."""
        self.state = State.CLOSED
        tasks = [t for t in (self._turn_task, *self._utterances) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._utterances.clear()
