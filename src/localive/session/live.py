"""`LiveSession`: the Live semantics of one connection, driven by parsed client messages.

Inputs arrive through `handle()`; everything the client should receive goes into `outbox`, which the transport
drains. The session owns its tasks (the model turn, pending transcriptions) and cancels them on interruption and
on `aclose()`. No sockets here.

States: AWAITING_SETUP --setup--> ACTIVE --aclose()/failure--> CLOSED. A model turn runs as one task:
the pending user speech is transcribed (``inputTranscription``), then the answer streams as text parts or as
audio (with ``outputTranscription``, closed by ``finished``) → ``generationComplete`` → (audio: once the client
has played it) ``turnComplete`` + ``usageMetadata``. An interruption (barge-in, new content) cancels the turn and sends
``interrupted`` → ``turnComplete``, keeping in history only what the user was given (text) or heard (audio).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Protocol

from localive.clock import Clock, SystemClock
from localive.engines.llm.base import (
    LLM,
    PENDING_RESULT,
    REPORTED_PROMPT_TOKENS,
    SESSION_ID,
    CalledFunction,
    ChatMessage,
    FunctionCalls,
    SessionSlots,
)
from localive.engines.llm.scoring import Scorer
from localive.engines.speech_remote import ASR_STAGE, TTS_STAGE
from localive.engines.tts.base import NEUTRAL, Delivery
from localive.engines.vision.loader import VISION_HINT
from localive.engines.voice import VOICE_HINT
from localive.models.registry import ModelRegistry
from localive.protocol import messages as wire
from localive.protocol import server_messages as out
from localive.protocol.errors import (
    InvalidArgument,
    LiveError,
    Overloaded,
    PolicyViolation,
    Unimplemented,
    close_for,
)
from localive.session import snapshot
from localive.session.activity import ActivityEvent, PauseHeld, SpeechEnded, SpeechStarted
from localive.session.affect import Affect, context_note, delivery
from localive.session.backchannel import BARGE_IN_AFTER_S, LISTENER_WORDS, lets_the_model_go_on
from localive.session.code_blocks import CodeBlocks
from localive.session.config import SessionConfig, content_text, session_config, session_tools
from localive.session.content_history import history_of
from localive.session.context import TurnContext
from localive.session.engines import Engines
from localive.session.hearing import AffectTracker, Heard, Recognition, hear
from localive.session.history import HISTORY_BYTES_PER_TOKEN, Entry, History
from localive.session.lifetime import LOCAL_LIMITS, Limits, deadline_s, run_out
from localive.session.outbox import Outbox
from localive.session.proactive import ProactiveJudge
from localive.session.prompt import chat_messages, fit_context, function_specs
from localive.session.speech_out import Playback, finish_transcription, speak
from localive.session.thinking import Thinking, answer_messages, reasoning_messages
from localive.session.timings import TurnTimings
from localive.session.tool_calls import ToolCalls, response_text, scheduling_of
from localive.session.translation import Echo, target_speech
from localive.session.usage import turn_usage
from localive.session.video_in import VideoInput
from localive.session.watchdog import CODE_STAGE, DEFAULT_TURN_WATCHDOG_S, LLM_STAGE, STORE_STAGE, Watchdog
from localive.stores.base import SessionStore, new_handle
from localive.tools.grounding import grounding_metadata
from localive.tools.search import SearchError
from localive.tools.url_context import find_urls, url_context_metadata
from localive.tools.url_text import ParseLane

if TYPE_CHECKING:  # imported at setup where the server hears audio: text sessions never load numpy or soxr
    from localive.session.audio_in import AudioInput

log = logging.getLogger("localive.session")

INTERRUPT_TIMEOUT_S = 5.0
MAX_PENDING_UTTERANCES = 8
MAX_TOOL_ROUNDS = 6  # generations in one turn (code runs, function calls); the last may only answer
THOUGHT_CHUNK_CHARS = 80  # thought parts are sent a line (or this many characters) at a time
SEARCH_RESULTS = 3


class SetupGate(Protocol):
    """What a credential (an ephemeral token) enforces on its session; each method raises a LiveError to refuse."""

    async def __call__(self, setup: wire.Setup) -> wire.Setup:
        """Admit the session: check (and may rewrite) its setup before it is applied."""
        ...

    def constrain(self, setup: wire.Setup) -> wire.Setup:
        """Apply the locks again to a setup restored from a resumed session."""
        ...

    def check_update(self, update: wire.ContextUpdate) -> None:
        """Refuse a contextUpdate that changes a locked field."""
        ...


class State(enum.Enum):
    AWAITING_SETUP = "awaiting_setup"
    ACTIVE = "active"
    CLOSED = "closed"


@dataclass
class RoundResult:
    """One generation of a model turn: what it said, and the code or calls it asks to run next."""

    text: str
    calls: tuple[CalledFunction, ...] = ()
    code: str | None = None


class TurnDidNotStop(LiveError):
    """An interrupted model turn still running INTERRUPT_TIMEOUT_S later (an engine that does not let go)."""

    default_reason = "The answer in progress did not stop in time."


class ClientNotReading(LiveError):
    """An interrupted model turn cannot send its end: the client reads nothing (1011, as the transport's write
    timeout closes)."""

    blame = "client"


class MalformedCall(Exception):
    """The model called a function with arguments that do not fit its declaration."""


class LiveSession:
    def __init__(self, *, registry: ModelRegistry, engines: Engines, session_id: str,
                 api_version: str = "v1beta", outbox_size: int = 256, principal: str = "anonymous",
                 setup_gate: SetupGate | None = None, store: SessionStore | None = None,
                 limits: Limits = LOCAL_LIMITS, clock: Clock | None = None, owner: str | None = None,
                 charge_work: Callable[[float], object] | None = None,
                 turn_watchdog_s: float | None = DEFAULT_TURN_WATCHDOG_S,
                 on_stall: Callable[[], None] | None = None) -> None:
        self.session_id = session_id
        self.api_version = api_version
        self.principal = principal  # who connected (a hash of the API key): resumption handles are bound to it
        self.owner = owner or principal  # whose share of rationed work (code runs) this session uses
        self._charge_work = charge_work  # CPU seconds of work done for the client off its messages (URL pages)
        self._setup_gate = setup_gate
        self._store = store
        self._resumption: wire.SessionResumptionConfig | None = None
        self._session_key = session_id  # stays the same across resumptions (names the snapshot chain)
        self._slots: list[SessionSlots] = []  # those taken on remote backends (LLM, speech), given back at the end
        self._setup_dump: dict[str, object] = {}  # the setup in force, as saved with each snapshot
        self._consumed = -1  # index of the last client message handled (setup is 0)
        self._limits = limits
        self._clock = clock or SystemClock()
        self._connected_at = self._clock.time()
        self._started_at = self._connected_at  # the session's first connection (restored on resumption)
        self._lifetime: asyncio.Task[None] | None = None
        self._video: VideoInput | None = None
        self.outbox = Outbox(outbox_size)
        # a turn that produces nothing for turn_watchdog_s ends the session (1011), counted by on_stall
        self._watchdog = Watchdog(session_id, self.outbox, self._clock, turn_watchdog_s, on_stall)
        self.state = State.AWAITING_SETUP
        self.config: SessionConfig | None = None
        self.history = History()
        self._registry = registry
        self._engines = engines
        self._llm: LLM | None = None
        self._audio: AudioInput | None = None
        self._turn_task: asyncio.Task[None] | None = None
        self._turn_id = 0
        self._started_turn = 0  # the last turn whose task began to run
        self._respond_after_turn = False
        self._utterances: deque[asyncio.Task[Heard]] = deque()  # transcriptions not yet in history
        self._affect_tracker: AffectTracker | None = None  # with enableAffectiveDialog
        self._heard_affect: Affect | None = None  # how the user sounded in their last utterance
        self._delivery: Delivery = NEUTRAL  # how this turn's answer is spoken
        self._heard_last = False  # the newest user message was spoken (proactive audio judges only speech)
        self._heard_language: str | None = None  # the language the recogniser heard it in
        self._maybe_backchannel: float | None = None  # when speech began while the model was talking (semantic)
        self._backchannel_task: asyncio.Task[None] | None = None  # judging a short utterance's words
        self._hearing: set[asyncio.Task[Heard]] = set()  # transcriptions of short utterances, for their judges
        # held while a client message or a backchannel verdict is applied: the two tasks that start and interrupt
        # turns do it one at a time (else one turn was started twice, one interruption sent twice)
        self._transitions = asyncio.Lock()
        self._judge: ProactiveJudge | None = None  # with proactive audio
        self._tool_calls = ToolCalls()
        # the session's pages take one URL-parsing thread at a time: one session cannot starve the others' URLs
        self._url_lane = ParseLane()
        self._seeding = False  # historyConfig.initialHistoryInClientContent: clientContent is history until complete

    # --- input -------------------------------------------------------------------------------------------

    async def handle(self, message: wire.ClientMessage) -> None:
        """Apply one client message. Raises a LiveError for input that must end the session."""
        if self.state is State.CLOSED:
            return
        self._consumed += 1
        if self.state is State.AWAITING_SETUP:
            if not isinstance(message, wire.Setup):
                raise InvalidArgument("The first message must be setup.")
            await self._setup(message)
            return
        async with self._transitions:
            match message:
                case wire.Setup():
                    raise InvalidArgument("setup may only be sent once, as the first message.")
                case wire.ClientContent():
                    await self._client_content(message)
                    self._bound_history()
                case wire.RealtimeInput():
                    await self._realtime_input(message)
                case wire.ToolResponse():
                    await self._tool_response(message)
                    self._bound_history()
                case wire.ContextUpdate():
                    self._context_update(message)

    async def _setup(self, setup: wire.Setup) -> None:
        if self._setup_gate is not None:  # e.g. an ephemeral token: redeemed here, its locked fields applied
            setup = await self._setup_gate(setup)
        if setup.session_resumption is not None:
            if self._store is None:
                raise Unimplemented("sessionResumption is not enabled on this server.")
            self._resumption = setup.session_resumption
            if setup.session_resumption.handle:
                setup = await self._resume(setup, setup.session_resumption.handle)
                if self._setup_gate is not None:  # the saved setup may hold fields the token locks out
                    setup = self._setup_gate.constrain(setup)
        # a resumed session has its history already: only a new one takes a seeded history
        seeded = setup.history_config and setup.history_config.initial_history_in_client_content
        self._seeding = bool(seeded and not (setup.session_resumption and setup.session_resumption.handle))
        self._setup_dump = setup.model_dump(by_alias=True, exclude_none=True, mode="json")
        config = session_config(setup, self._registry, self.api_version, self._engines)
        self._llm = self._llm_for(config)
        await self._admit(self._llm, "model's LLM")
        # every session may send audio, so every one needs speech recognition; only spoken answers need synthesis
        await self._admit(self._engines.asr, ASR_STAGE)
        if config.response_modality == "AUDIO":
            await self._admit(self._engines.tts, TTS_STAGE)
        if self._engines.hears or (config.manual_activity and self._engines.asr is not None):
            from localive.session.audio_in import AudioInput  # numpy, soxr: only where audio is processed

            self._audio = AudioInput(config.activity, manual=config.manual_activity,
                                     vad_factory=self._engines.vad_factory, executor=self._engines.vad_executor,
                                     end_of_turn=self._engines.end_of_turn)
        self.config = config
        self.state = State.ACTIVE
        await self.outbox.put(out.setup_complete(self.session_id))
        if config.proactive_audio:
            self._judge = ProactiveJudge(self._judge_scorer(config), config.system_instruction, self.session_id)
            self._judge.prepare(self.history)
        await self._checkpoint()
        deadline = deadline_s(self._limits, connected_at=self._connected_at, session_started_at=self._started_at,
                              compressed=config.compression is not None)
        if deadline is not None:
            self._lifetime = asyncio.create_task(run_out(deadline, self._limits, self._clock, self.outbox),
                                                 name=f"lifetime-{self.session_id}")

    async def _admit(self, engine: object, stage: str) -> None:
        """A remote backend the session will use (engines/remote_backend.py): refused with 1013 (try again later)
        while it is known to be down or serves as many sessions as it may; otherwise a slot on it is taken until
        the session ends (aclose). Embedded engines have neither and always admit."""
        reachable = getattr(engine, "reachable", None)
        if reachable is not None and not await reachable():
            raise Overloaded(f"The {stage} backend is not reachable now; try again later.")
        slots = getattr(engine, "slots", None)
        if isinstance(slots, SessionSlots) and slots not in self._slots:
            if not slots.take():
                raise Overloaded(f"The {stage} backend is serving as many sessions as it may; try again later.")
            self._slots.append(slots)

    async def _resume(self, setup: wire.Setup, handle: str) -> wire.Setup:
        """Restore a saved conversation; the new setup's fields override the saved setup's."""
        assert self._store is not None
        saved = await self._watchdog.bounded(STORE_STAGE, self._store.load(handle, self.principal))
        if saved is None:
            raise PolicyViolation("Session resumption handle is invalid or has expired.")
        state = snapshot.loads(saved)
        self.history = History(state.history, state.deferred)
        self._session_key = state.session_key
        self._started_at = state.started_at
        fresh = setup.model_dump(by_alias=True, exclude_none=True, mode="json")
        return wire.Setup.model_validate({**state.setup, **fresh})

    async def _checkpoint(self) -> None:
        """At a resumable point: save the conversation and send its handle (only with sessionResumption)."""
        if self._resumption is None or self._store is None:
            return
        handle = new_handle()
        state = snapshot.State(self._setup_dump, list(self.history), self.history.deferred, self._session_key,
                               self._consumed, self._started_at)
        save = self._store.save(handle, session_key=self._session_key, principal=self.principal,
                                state=snapshot.dumps(state))
        if self.generating:  # in a turn, which the watchdog bounds
            with self._watchdog.stage(STORE_STAGE):
                await save
        else:
            await self._watchdog.bounded(STORE_STAGE, save)
        consumed = self._consumed if self._resumption.transparent else None
        await self.outbox.put(out.resumption_update(handle, True, consumed))

    async def _client_content(self, content: wire.ClientContent) -> None:
        await self.interrupt()  # any clientContent interrupts the model's current answer (proto semantics)
        for turn in content.turns or []:
            role = turn.role or "user"
            if role not in ("user", "model"):
                raise InvalidArgument(f"Content role must be 'user' or 'model', not '{role}'.")
            images = [p for p in turn.parts if p.inline_data and p.inline_data.mime_type.startswith("image/")]
            for part in images:  # an image in the conversation is shown like a video frame
                assert part.inline_data is not None
                self._video_input().push(part.inline_data.data, part.inline_data.mime_type)
            rest = wire.Content(role=turn.role, parts=[p for p in turn.parts if p not in images])
            for entry in history_of(rest, role, "clientContent.turns"):  # text, and tool exchanges replayed
                if entry.role == "user" and not entry.calls:
                    self._append("user", entry.text)
                else:
                    self.history.add(entry)
        if content.turn_complete and self._seeding:  # the seeded history is complete: it is not answered
            self._seeding = False
            if not self.generating:
                await self._checkpoint()
        elif content.turn_complete:
            self._start_turn()

    async def _realtime_input(self, realtime: wire.RealtimeInput) -> None:
        assert self.config is not None
        if realtime.video is not None:
            self._video_input().push(realtime.video.data, realtime.video.mime_type)
        manual = self.config.manual_activity
        if (realtime.activity_start or realtime.activity_end) and not manual:
            raise InvalidArgument(
                "activityStart/activityEnd require realtimeInputConfig.automaticActivityDetection.disabled."
            )
        audio = self._audio
        blobs = [realtime.audio] if realtime.audio is not None else (realtime.media_chunks or [])[:1]
        if blobs and blobs[0].mime_type.lower().startswith("image/"):  # deprecated mediaChunks with a frame
            self._video_input().push(blobs[0].data, blobs[0].mime_type)
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
            await self._user_input(partial(self._append, "user", realtime.text))

    def _video_input(self) -> VideoInput:
        if self._video is None:
            vision = self._engines.vision
            if vision is None:
                raise Unimplemented(f"Video input is not available on this server ({VISION_HINT}).")
            media_resolution = self.config.media_resolution if self.config else None
            self._video = VideoInput(vision, media_resolution)
        return self._video

    async def _on_activity(self, events: list[ActivityEvent]) -> None:
        automatic = self.config is not None and not self.config.manual_activity
        for event in events:
            if automatic and isinstance(event, SpeechStarted):  # what the VAD heard (none with manual activity)
                await self.outbox.put(out.voice_activity("ACTIVITY_START", event.at_s))
            elif automatic and isinstance(event, SpeechEnded):
                await self.outbox.put(out.voice_activity("ACTIVITY_END", event.stopped_s))
            if isinstance(event, PauseHeld):
                if not self.generating:  # a pause judged mid-sentence holds the turn: the model waits for more
                    await self.outbox.put(out.waiting_for_input())
            elif isinstance(event, SpeechStarted):
                if self.config and self.config.activity_interrupts:
                    if self.config.activity.semantic and self.generating:
                        self._maybe_backchannel = event.at_s  # barge-in, or only "mm-hm"? (backchannel.py)
                    else:
                        await self.interrupt()  # barge-in
            elif isinstance(event, SpeechEnded):
                if self._maybe_backchannel is not None and self.generating:
                    self._maybe_backchannel = None
                    self._judge_short_utterance(event)
                else:
                    self._maybe_backchannel = None
                    await self._user_input(partial(self._transcribe_later, event))

    async def _barge_in_if_long(self, audio: AudioInput) -> None:
        """Speech that goes on while the model talks is a barge-in, whatever it turns out to say (a pause in it
        waits for the end-of-turn judgement instead)."""
        started = self._maybe_backchannel
        if (started is not None and audio.speaking and not audio.paused
                and audio.received_s - started >= BARGE_IN_AFTER_S):
            self._maybe_backchannel = None
            await self.interrupt()

    def _judge_short_utterance(self, event: SpeechEnded) -> None:
        """A short utterance while the model talks: a backchannel is let pass; anything else interrupts."""
        if self._backchannel_task is not None and not self._backchannel_task.done():
            self._backchannel_task.cancel()  # the latest one decides
        heard = self._hear_task(event, expect=LISTENER_WORDS)
        self._hearing.add(heard)  # until it is done: aclose() cancels it even if its judge never ran
        heard.add_done_callback(self._hearing.discard)

        async def judge() -> None:
            try:
                with self._watchdog.stage(ASR_STAGE):
                    words = (await asyncio.shield(heard)).transcript.text
            except LiveError as exc:  # the recogniser failed: the session ends, saying so (not a lost task)
                await self.outbox.put(close_for(exc))
                return
            async with self._transitions:  # not while handle() is starting or interrupting a turn
                if lets_the_model_go_on(words) and self.generating:
                    log.info("session %s: backchannel %r while the model talks: not an interruption",
                             self.session_id, words[:40])
                    return
                try:
                    await self._user_input(lambda: self._utterances.append(heard))
                except LiveError as exc:  # as from handle(): the session ends with its close
                    await self.outbox.put(close_for(exc))

        self._backchannel_task = asyncio.create_task(judge(), name=f"backchannel-{self.session_id}")
        self._backchannel_task.add_done_callback(lambda task: heard.cancel() if task.cancelled() else None)

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
        self._utterances.append(self._hear_task(event))

    def _hear_task(self, event: SpeechEnded, expect: str | None = None) -> asyncio.Task[Heard]:
        asr = self._engines.asr
        if asr is None:
            raise Unimplemented(f"Speech recognition is not installed on this server ({VOICE_HINT}).")
        if len(self._utterances) >= MAX_PENDING_UTTERANCES:
            raise Unimplemented("Too many utterances are waiting for transcription.")
        recognition = self.config.recognition if self.config else Recognition()
        if self.config and self.config.affective and self._affect_tracker is None:
            self._affect_tracker = AffectTracker()
        return asyncio.create_task(hear(asr, event.audio, recognition, self._affect_tracker, expect),
                                   name=f"asr-{self.session_id}")

    async def _tool_response(self, message: wire.ToolResponse) -> None:
        """Answers to function calls: a BLOCKING call's turn continues by itself; a NON_BLOCKING result is added
        to the context and reported as its `scheduling` asks."""
        for response in message.function_responses:
            pending = self._tool_calls.resolve(response)
            if pending is None:
                log.info("session %s: ignored a response to cancelled call %s", self.session_id, response.id)
                continue
            if not pending.non_blocking:
                continue
            result = Entry("tool", response_text(response), name=pending.call.name)
            scheduling = scheduling_of(response)
            if scheduling == "INTERRUPT":
                await self.interrupt()
                self.history.add(result)
                self._start_turn()
            elif self.generating:  # joins the context once the current answer is over (and is reported then)
                self.history.defer(result)
                self._respond_after_turn = self._respond_after_turn or scheduling == "WHEN_IDLE"
            else:
                self.history.add(result)
                if scheduling == "WHEN_IDLE":
                    self._start_turn()

    def _context_update(self, update: wire.ContextUpdate) -> None:
        assert self.config is not None
        if self._setup_gate is not None:  # a token's locks hold for the whole session, not only its setup
            self._setup_gate.check_update(update)
        if update.tools is not None:  # present, even empty: replaces the tool list
            tools = session_tools(update.tools.tools or [], self.config.model, self._engines)
            if self.config.translation is not None and tools.enabled:
                raise Unimplemented("translationConfig cannot be combined with tools in localive.")
            self.config = replace(self.config, tools=tools)
            self._llm = self._llm_for(self.config)
        if update.system_instruction is not None:
            text = content_text(update.system_instruction, "contextUpdate.systemInstruction")
            self.config = replace(self.config, system_instruction=text or None)

    def _llm_for(self, config: SessionConfig) -> LLM:
        if (config.tools.code_execution or config.thinking) and self._engines.code_llm_for is not None:
            return self._engines.code_llm_for(config.model)
        return self._engines.llm_for(config.model)

    def _append(self, role: str, text: str, *, spoken: bool = False) -> None:
        if self.history.add_text(role, text) and role == "user":
            self._heard_last = spoken

    # --- turns -------------------------------------------------------------------------------------------

    @property
    def generating(self) -> bool:
        """A model turn is in progress (including audio the client is still playing)."""
        return self._turn_task is not None and not self._turn_task.done()

    def _start_turn(self) -> None:
        self._turn_id += 1
        self._turn_task = asyncio.create_task(self._run_turn(self._turn_id), name=f"turn-{self._turn_id}")
        self._watchdog.watch(self._turn_task)

    def chat_messages(self, context: str = "") -> list[ChatMessage]:
        """The LLM's view of the conversation (session/prompt.py)."""
        assert self.config is not None
        return chat_messages(self.config, self.history, context)

    async def _take_utterances(self, timings: TurnTimings) -> float:
        """Wait for pending transcriptions, in order, and add them to history. Returns seconds of speech."""
        assert self.config is not None
        speech_s = 0.0
        while self._utterances:
            with self._watchdog.stage(ASR_STAGE):
                heard = await asyncio.shield(self._utterances[0])  # survives the turn's cancellation
            self._utterances.popleft()
            transcript = heard.transcript
            if heard.affect is not None:
                self._heard_affect = heard.affect
            speech_s += transcript.audio_s
            timings.asr_compute_s += transcript.compute_s
            timings.asr_audio_s += transcript.audio_s
            if transcript.text:
                if self.config.input_transcription:
                    # the language the recogniser detected, where the session asked it to detect one
                    detected = transcript.language if self.config.recognition.detect_among is not None else None
                    await self.outbox.put(out.input_transcription(transcript.text, language_code=detected))
                self._append("user", transcript.text, spoken=True)
                self._heard_language = transcript.language
        return speech_s

    async def _run_turn(self, turn_id: int) -> None:
        assert self.config is not None and self._llm is not None
        SESSION_ID.set(self._session_key)  # this task's context: remote backends send it (engines/llm/base.py)
        self._started_turn = turn_id
        config, llm = self.config, self._llm
        playback = Playback()
        timings = TurnTimings()
        pieces: list[str] = []  # text parts sent (TEXT), to know what the user saw when interrupted
        mark = len(self.history)
        prompt_tokens, tool_prompt_tokens, speech_s, reason = 0, 0, 0.0, None
        thought_tokens = 0
        try:
            speech_s = await self._take_utterances(timings)
            spoken = self._heard_last
            timings.transcribed = time.monotonic()
            mark = len(self.history)
            if not self.history or self.history[-1].role not in ("user", "tool"):
                return  # nothing new to answer (e.g. the user made a sound but said no words)
            answer_as = target_speech(config.translation, spoken, self._heard_language)  # translation sessions
            if answer_as == "echo":
                llm = Echo(llm, self.history[-1].text)
            if answer_as == "silent" or (self._judge is not None and spoken
                                     and not await self._addressed(self._judge, turn_id)):
                self.history.drop_last()  # side talk (translating: speech already in the target language)
                self.history.take_deferred()
                await self.outbox.put(out.turn_complete(turn_usage(llm, 0, speech_s, "", playback,
                                                                   config.response_modality)))
                return
            if self._resumption is not None:
                await self.outbox.put(out.resumption_update("", False), turn=turn_id)
            fit_context(llm, config, self.history, self.session_id)
            context = await self._gather_context(config, turn_id)
            feeling = self._sense_affect(config, turn_id)
            functions = function_specs(config)
            made: list[CalledFunction] = []  # the calls of this turn: asking again for one means "stuck"
            for round_no in range(MAX_TOOL_ROUNDS):
                offered = functions if round_no < MAX_TOOL_ROUNDS - 1 else []  # the last round must answer
                messages = self.chat_messages("\n\n".join(p for p in (context.prompt, feeling) if p))
                tokens = llm.count_prompt_tokens(messages, offered)
                if round_no == 0:
                    prompt_tokens = tokens
                else:
                    tool_prompt_tokens = max(tool_prompt_tokens, tokens - prompt_tokens)
                if round_no == 0 and config.thinking is not None:
                    thoughts = await self._think(llm, messages, config.thinking, turn_id)
                    thought_tokens = llm.count_tokens(thoughts)
                    messages = answer_messages(messages, thoughts)
                REPORTED_PROMPT_TOKENS.set(None)
                stream = self._watchdog.stream(LLM_STAGE, llm.stream(messages, config.sampling, offered))
                result = await self._model_round(stream, turn_id, playback, timings, pieces)
                reported = REPORTED_PROMPT_TOKENS.get()  # a remote backend's own count, where it sent one
                if reported is not None and round_no == 0:
                    prompt_tokens = reported
                elif reported is not None:
                    tool_prompt_tokens = max(tool_prompt_tokens, reported - prompt_tokens)
                if result.code is not None:
                    self.history.add(Entry("model", f"{result.text}```python\n{result.code}\n```"))
                    await self._execute(result.code, turn_id)
                elif result.calls and all(c in made for c in result.calls):
                    functions = []  # the same call again: answer from the results instead
                elif result.calls:
                    made.extend(result.calls)
                    try:
                        await self._call_functions(result, turn_id)
                    except MalformedCall as exc:
                        log.warning("session %s: %s", self.session_id, exc)
                        reason = "MALFORMED_FUNCTION_CALL"
                        break
                else:
                    self._append("model", result.text)
                    break
            log.info("turn timings session=%s turn=%d %s", self.session_id, turn_id, timings.log_fields())
            reply = self.history.reply_since(mark)
            if context.hits:
                await self.outbox.put(out.grounding(grounding_metadata([context.query], context.hits, reply)),
                                      turn=turn_id)
            await self._checkpoint()  # the turn is in history: a handle from here on includes it
            await finish_transcription(self.outbox, playback, turn_id)  # outputTranscription {finished: true}
            await self.outbox.put(out.generation_complete())
            if self._judge is not None:
                self._judge.prepare(self.history)
            with self._watchdog.waiting():
                await asyncio.sleep(playback.remaining_s())  # the client is still playing: the turn is not over
            usage = turn_usage(llm, prompt_tokens, speech_s, reply, playback, config.response_modality,
                               self._video.take_tokens() if self._video else 0)
            await self.outbox.put(out.turn_complete(replace(usage, tool_use_prompt_tokens=tool_prompt_tokens,
                                                            thoughts_tokens=thought_tokens), reason))
        except asyncio.CancelledError:
            # the session is ending (nobody will read the outbox), or the watchdog ended it (its close is sent)
            if self.state is State.CLOSED or self._watchdog.expired is not None:
                raise
            dropped = await self.outbox.drop_turn(turn_id)
            cancelled = self._tool_calls.cancel_turn(turn_id)
            if config.response_modality == "AUDIO":
                heard = playback.heard_text()
            else:
                unsent = sum(1 for m in dropped if _text_part(m) is not None)
                heard = "".join(pieces[: len(pieces) - unsent])
            self.history.keep_after_interruption(mark, heard, set(cancelled))
            self.history.take_deferred()
            await finish_transcription(self.outbox, playback, dropped=dropped)
            if cancelled:
                await self.outbox.put(out.tool_call_cancellation(cancelled))
            await self._end_interrupted_turn(turn_usage(llm, prompt_tokens, speech_s, heard, playback,
                                                        config.response_modality))
            raise
        except Exception as exc:  # any failure ends the session: a LiveError with its code (1011 for a backend)
            if not isinstance(exc, LiveError):  # an unexpected one (a bug, an engine's crash): its traceback
                log.exception("session %s: turn failed", self.session_id)
            await self.outbox.put(close_for(exc))
            return
        self.history.take_deferred()
        if self._respond_after_turn:
            self._respond_after_turn = False
            self._start_turn()

    async def _addressed(self, judge: ProactiveJudge, turn_id: int) -> bool:
        with self._watchdog.stage(LLM_STAGE):
            return await judge.addressed(self.history, turn_id)

    async def _think(self, llm: LLM, messages: list[ChatMessage], thinking: Thinking, turn_id: int) -> str:
        """Let the model reason first, within the budget; with includeThoughts the reasoning is sent as thought
        parts (a line at a time), never spoken. Returns the reasoning."""
        assert self.config is not None
        params = replace(self.config.sampling, max_output_tokens=thinking.budget, stop=())
        said: list[str] = []
        pending = ""
        stream = self._watchdog.stream(LLM_STAGE, llm.stream(reasoning_messages(messages), params))
        try:
            async for item in stream:
                if not isinstance(item, str):
                    continue
                said.append(item)
                pending += item
                if thinking.include_thoughts and ("\n" in item or len(pending) >= THOUGHT_CHUNK_CHARS):
                    await self.outbox.put(out.model_thought(pending), turn=turn_id)
                    pending = ""
        finally:
            if (close := getattr(stream, "aclose", None)) is not None:
                await close()
        if thinking.include_thoughts and pending.strip():
            await self.outbox.put(out.model_thought(pending), turn=turn_id)
        return "".join(said)

    def _judge_scorer(self, config: SessionConfig) -> Scorer:
        """Proactive audio's judge (the server's: the larger embedded LLM where it is installed; a remote LLM,
        whose models have no code LLM unless a models file names one, judges with itself). session_config
        refused proactiveAudio where the server has no judge."""
        assert self._engines.judge_for is not None
        return self._engines.judge_for(config.model)

    def _sense_affect(self, config: SessionConfig, turn_id: int) -> str:
        """With affective dialog: how the user sounded (or, typed, what their words say) → a note for the model,
        and this turn's speech delivery. Without it: nothing, and the voice's normal delivery."""
        affect, self._heard_affect = self._heard_affect, None
        self._delivery = NEUTRAL
        if not config.affective:
            return ""
        if affect is None and self.history and self.history[-1].role == "user":
            affect = AffectTracker().read(self.history[-1].text)
        if affect is None:
            return ""
        self._delivery = delivery(affect)
        log.info("affect session=%s turn=%d label=%s arousal=%.2f valence=%.2f delivery=%s", self.session_id,
                 turn_id, affect.label, affect.arousal, affect.valence, self._delivery)
        return context_note(affect)

    async def _model_round(self, stream: AsyncIterator[str | FunctionCalls], turn_id: int, playback: Playback,
                           timings: TurnTimings, pieces: list[str]) -> RoundResult:
        """Stream one generation to the client (text parts, or speech); stop at a code block or function calls."""
        assert self.config is not None
        config = self.config
        blocks = CodeBlocks() if config.tools.code_execution else None
        calls: list[FunctionCalls] = []
        said: list[str] = []

        async def prose() -> AsyncIterator[str]:
            try:
                async for item in stream:
                    timings.mark_token()
                    if isinstance(item, FunctionCalls):
                        calls.append(item)
                        break
                    text = blocks.push(item) if blocks else item
                    if text:
                        said.append(text)
                        yield text
                    if blocks and blocks.code is not None:
                        break
            finally:
                if (close := getattr(stream, "aclose", None)) is not None:
                    await close()  # stops generation at once (the rest of the answer is not wanted)
            if blocks and (rest := blocks.flush()):
                said.append(rest)
                yield rest

        if config.response_modality == "AUDIO":
            assert self._engines.tts is not None and config.voice is not None
            await speak(prose(), tts=self._engines.tts, voice=config.voice, language=config.language,
                        outbox=self.outbox, turn=turn_id, playback=playback,
                        transcribe=config.output_transcription, timings=timings, delivery=self._delivery,
                        watchdog=self._watchdog)
        else:
            async for piece in prose():
                pieces.append(piece)
                timings.mark_output()
                await self.outbox.put(out.model_text(piece), turn=turn_id)
        return RoundResult("".join(said), calls[0].calls if calls else (), blocks.code if blocks else None)

    async def _execute(self, code: str, turn_id: int) -> None:
        """Run the model's code in the sandbox; the client sees the code and its result as parts."""
        sandbox = self._engines.tools.sandbox
        assert sandbox is not None  # checked at setup
        await self.outbox.put(out.executable_code(code), turn=turn_id)
        with self._watchdog.stage(CODE_STAGE):
            result = await sandbox.run(code, owner=self.owner)
        await self.outbox.put(out.code_execution_result(result.outcome, result.output), turn=turn_id)
        text = result.output if result.outcome == "OUTCOME_OK" else f"{result.outcome}: {result.output}"
        self.history.add_tool("code_execution", text or "(no output)")

    async def _call_functions(self, result: RoundResult, turn_id: int) -> None:
        """Send `toolCall`; wait for the BLOCKING calls' responses; NON_BLOCKING ones stand in as "running"."""
        assert self.config is not None
        tools = self.config.tools
        for call in result.calls:
            declared = tools.function(call.name)
            problem = "not declared" if declared is None else declared.validate(call.args)
            if problem:
                raise MalformedCall(f"call of {call.name[:40]}: {problem}")
        pending = [self._tool_calls.issue(c, non_blocking=bool((f := tools.function(c.name)) and f.non_blocking),
                                          turn=turn_id) for c in result.calls]
        self.history.add(Entry("model", result.text, result.calls, tuple(p.id for p in pending)))
        await self.outbox.put(out.tool_call([(p.id, p.call.name, p.call.args) for p in pending]))
        with self._watchdog.waiting():
            answers = await asyncio.gather(*(p.answer for p in pending if not p.non_blocking))
        by_id = {p.id: a for p, a in zip([p for p in pending if not p.non_blocking], answers, strict=True)}
        for p in pending:
            text = response_text(by_id[p.id]) if p.id in by_id else PENDING_RESULT
            self.history.add_tool(p.call.name, text)

    async def _gather_context(self, config: SessionConfig, turn_id: int) -> TurnContext:
        """Search results and fetched pages for the user's latest words, when those tools are on."""
        question = self.history.last_user_text()
        context = TurnContext(query=question)
        if self._video is not None:
            context.visual = await self._video.context()
        tools, engines = config.tools, self._engines.tools
        if tools.url_context and engines.urls is not None and (urls := find_urls(question)):
            try:
                pages = await engines.urls.fetch_all(urls, self._url_lane)
            finally:  # also when interrupted: the work its pages took counts against the client's share
                if self._charge_work is not None:
                    self._charge_work(self._url_lane.take_cpu())
            await self.outbox.put(out.url_context(url_context_metadata(pages)), turn=turn_id)
            context.add_pages(pages)
        if tools.search and engines.search is not None and question:
            try:
                context.add_hits(await engines.search.search(question, SEARCH_RESULTS))
            except SearchError as exc:
                log.warning("session %s: search failed, answering without it: %s", self.session_id, exc)
        return context

    def _bound_history(self) -> None:
        assert self._llm is not None
        self.history.bound_bytes(self._llm.context_tokens * HISTORY_BYTES_PER_TOKEN,
                                 compress=self.config is not None and self.config.compression is not None,
                                 session_id=self.session_id)

    async def _end_interrupted_turn(self, usage: out.Usage | None) -> None:
        await self.outbox.put(out.interrupted())
        await self.outbox.put(out.turn_complete(usage))

    async def interrupt(self) -> bool:
        """Stop the current model turn, if any (sends interrupted → turnComplete). Returns whether it did; raises
        a LiveError (the session must end) if the turn has not stopped INTERRUPT_TIMEOUT_S later."""
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
            if not task.done():  # it still runs: the session ends (aclose cancels it) rather than go on beside it
                if self.outbox.blocked:  # it waits to send its end to a client that reads nothing
                    raise ClientNotReading(f"The client read nothing for {INTERRUPT_TIMEOUT_S:.0f} s.") from None
                raise TurnDidNotStop() from None
        if self._started_turn != self._turn_id:  # cancelled before it ran: it could not report itself
            await self._end_interrupted_turn(None)
        return True

    async def aclose(self) -> None:
        """End the session: cancel the turn and transcriptions in progress. Safe to call twice."""
        self.state = State.CLOSED
        tasks = [t for t in (self._turn_task, self._lifetime, self._backchannel_task, self._watchdog.stop(),
                             self._judge.cancel() if self._judge is not None else None, *self._utterances,
                             *self._hearing)
                 if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:  # the backends' slots are given back however the session ends, even if this is cancelled
            while self._slots:
                self._slots.pop().give_back()
        self._utterances.clear()
        self._tool_calls.cancel_all()
        if self._resumption is not None and self._store is not None:
            try:  # the handles' expiry clock; a store that fails or hangs here must not keep the session open
                await self._watchdog.bounded(STORE_STAGE, self._store.session_ended(self._session_key))
            except LiveError as exc:
                log.warning("session %s: at its end: %s", self.session_id, exc.reason)


def _text_part(message: out.ServerMessage) -> str | None:
    parts = message.get("serverContent", {}).get("modelTurn", {}).get("parts", [])
    return parts[0].get("text") if parts else None
