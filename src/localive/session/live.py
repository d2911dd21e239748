"""`LiveSession`: the Live semantics of one connection, driven by parsed client messages. No sockets here.

Inputs arrive through `handle()`; everything the client should receive goes into `outbox`, which the transport
drains. States: AWAITING_SETUP --setup--> ACTIVE --aclose()--> CLOSED.

One event stream per session (session/events.py): `handle()` queues each client message and waits until it has
been applied (a LiveError from applying it is raised there, and the transport closes with it); the session's own
tasks post their events (a backchannel verdict, a turn that ended) to the same queue. One task, the event loop,
applies them one at a time, so turns are started and interrupted by nobody else. Every task of the session — the
event loop's own group: model turns (session/turn.py, session/model_turn.py), transcriptions, backchannel judges,
the lifetime timer, the turn watchdog, the proactive judge's preparation — is started in one TaskGroup
(session/tasks.py), which `aclose()` ends: none outlives the session. The turn lifecycle (idle → listening →
transcribing → judging → generating → playing out → complete | interrupted) is session/lifecycle.py's table.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from dataclasses import replace

from localive.clock import Clock, SystemClock
from localive.engines.llm.base import LLM, ChatMessage
from localive.engines.speech_remote import ASR_STAGE, TTS_STAGE
from localive.models.registry import ModelRegistry
from localive.protocol import messages as wire
from localive.protocol import server_messages as out
from localive.protocol.errors import InvalidArgument, LiveError, Unimplemented, close_for
from localive.session.admission import BackendSlots
from localive.session.config import SessionConfig, content_text, session_config, session_tools
from localive.session.content_history import history_of
from localive.session.engines import Engines
from localive.session.events import BackchannelHeard, ClientMessage, Event, EventQueue, GoingAway, TurnEnded
from localive.session.foresight import Foresight, prepared_engines, worth_foreseeing
from localive.session.gate import SetupGate
from localive.session.history import HISTORY_BYTES_PER_TOKEN, Entry, History
from localive.session.lifecycle import Lifecycle, Trigger
from localive.session.lifetime import LOCAL_LIMITS, Limits, deadline_s, leave_by, run_out
from localive.session.listening import Listening
from localive.session.model_turn import MAX_TOOL_ROUNDS, ModelTurn, TurnScope
from localive.session.outbox import Outbox
from localive.session.proactive import ProactiveJudge
from localive.session.prompt import chat_messages
from localive.session.resumption import Resumption
from localive.session.tasks import SessionTasks
from localive.session.telemetry import NO_TELEMETRY, Telemetry
from localive.session.tool_calls import ToolCalls, response_text, scheduling_of
from localive.session.transcripts import MAX_PENDING_UTTERANCES, Transcripts
from localive.session.turn import INTERRUPT_TIMEOUT_S, ClientNotReading, Turn, TurnDidNotStop
from localive.session.watchdog import DEFAULT_TURN_WATCHDOG_S, Watchdog
from localive.stores.base import SessionStore
from localive.tools.url_text import ParseLane

__all__ = ["HISTORY_BYTES_PER_TOKEN", "INTERRUPT_TIMEOUT_S", "MAX_PENDING_UTTERANCES", "MAX_TOOL_ROUNDS",
           "ClientNotReading", "LiveSession", "SetupGate", "State", "TurnDidNotStop"]

log = logging.getLogger("localive.session")


class State(enum.Enum):
    AWAITING_SETUP = "awaiting_setup"
    ACTIVE = "active"
    CLOSED = "closed"


class LiveSession:
    def __init__(self, *, registry: ModelRegistry, engines: Engines, session_id: str,
                 api_version: str = "v1beta", outbox_size: int = 256, principal: str = "anonymous",
                 setup_gate: SetupGate | None = None, store: SessionStore | None = None,
                 limits: Limits = LOCAL_LIMITS, clock: Clock | None = None, owner: str | None = None,
                 charge_work: Callable[[float], object] | None = None,
                 turn_watchdog_s: float | None = DEFAULT_TURN_WATCHDOG_S,
                 on_stall: Callable[[], None] | None = None, telemetry: Telemetry = NO_TELEMETRY) -> None:
        self.session_id = session_id
        self.api_version = api_version
        self.principal = principal  # who connected (a hash of the API key): resumption handles are bound to it
        self.owner = owner or principal  # whose share of rationed work (code runs) this session uses
        self._charge_work = charge_work  # CPU seconds of work done for the client off its messages (URL pages)
        self._telemetry = telemetry  # what the server's metrics count (session/telemetry.py)
        self._setup_gate = setup_gate
        self._registry = registry
        self._engines = engines
        self._limits = limits
        self._clock = clock or SystemClock()
        self._connected_at = self._clock.time()
        self._resumption = Resumption(store, principal, session_id, started_at=self._connected_at)
        self._slots = BackendSlots()  # those taken on remote backends (LLM, speech), given back at the end
        self._consumed = -1  # index of the last client message handled (setup is 0)
        self.state = State.AWAITING_SETUP
        self.config: SessionConfig | None = None
        self.history = History()
        self._llm: LLM | None = None
        self.outbox = Outbox(outbox_size)
        self._events = EventQueue()
        self._tasks = SessionTasks(session_id, self._fail)
        self._event_loop: asyncio.Task[None] | None = None  # holds the task group; started by the first message
        # a turn that produces nothing for turn_watchdog_s ends the session (1011), counted by on_stall
        self._watchdog = Watchdog(session_id, self.outbox, self._clock, turn_watchdog_s, on_stall,
                                  start=self._tasks.start)
        self._lifecycle = Lifecycle(session_id)
        self._transcripts = Transcripts(engines.asr, self._tasks)
        self._listening: Listening | None = None  # from setup
        self._turn: Turn | None = None
        self._turn_id = 0
        self._respond_after_turn = False  # NO_INTERRUPTION or WHEN_IDLE: answer again once this turn is over
        self._judge: ProactiveJudge | None = None  # with proactive audio
        self._tool_calls = ToolCalls()
        # the session's pages take one URL-parsing thread at a time: one session cannot starve the others' URLs
        self._url_lane = ParseLane()
        self._seeding = False  # historyConfig.initialHistoryInClientContent: clientContent is history until complete
        self._leave_at: float | None = None  # the server is draining: the session ends then (go_away)

    # --- the event stream --------------------------------------------------------------------------------

    async def handle(self, message: wire.ClientMessage, count: int = 1) -> None:
        """Apply one client message (in the event loop). Raises a LiveError for input that must end the session.
        `count`: how many client messages it stands for (audio chunks the transport joined), for the index of
        the last message consumed that resumption reports."""
        if self.state is State.CLOSED:
            return
        if self._event_loop is None:
            self._event_loop = asyncio.create_task(self._run_events(), name=f"session-{self.session_id}")
        if self._event_loop.done():
            raise RuntimeError(f"session {self.session_id}: its event loop has ended")
        await self._events.send(ClientMessage(message, count))

    def go_away(self, deadline: float) -> None:
        """The server is draining: send `goAway`, a fresh resumption handle once the session is between turns, and
        end the session (1001) at `deadline` (clock time). Applied in order with the client's messages; once."""
        if self._leave_at is None and self.state is not State.CLOSED:
            self._leave_at = deadline
            self._events.post(GoingAway(deadline))

    async def _run_events(self) -> None:
        try:
            await self._tasks.run(self._consume)
        except Exception as exc:
            log.exception("session %s: its event loop failed", self.session_id)
            await self._fail(exc)
        finally:
            self._events.close()

    async def _consume(self) -> None:
        while True:
            await self._apply(await self._events.get())

    async def _apply(self, event: Event) -> None:
        if isinstance(event, ClientMessage):
            try:
                await self._on_message(event.message, event.count)
            except Exception as exc:  # noqa: BLE001 - raised by handle(), to the transport
                if not event.done.done():
                    event.done.set_exception(exc)
            finally:
                if not event.done.done():  # applied, or the session is closing
                    event.done.set_result(None)
            return
        try:
            if isinstance(event, GoingAway):
                if self.state is State.ACTIVE:  # before the setup, the setup's end starts it (_start_leaving)
                    await self._start_leaving(event.deadline)
            elif isinstance(event, BackchannelHeard):
                assert self._listening is not None
                await self._listening.on_backchannel(event)
            elif event.turn is self._turn and self._respond_after_turn:  # TurnEnded: asked to answer again
                self._respond_after_turn = False
                self._start_turn()
        except Exception as exc:
            if not isinstance(exc, LiveError):
                log.exception("session %s: applying %s failed", self.session_id, type(event).__name__)
            await self._fail(exc)

    async def _fail(self, exc: Exception) -> None:
        await self.outbox.put(close_for(exc))

    async def _on_message(self, message: wire.ClientMessage, count: int = 1) -> None:
        self._consumed += count
        if self.state is State.AWAITING_SETUP:
            if not isinstance(message, wire.Setup):
                raise InvalidArgument("The first message must be setup.")
            await self._setup(message)
            return
        assert self._listening is not None
        match message:
            case wire.Setup():
                raise InvalidArgument("setup may only be sent once, as the first message.")
            case wire.ClientContent():
                await self._client_content(message)
                self._bound_history()
            case wire.RealtimeInput():
                await self._listening.realtime_input(message)
            case wire.ToolResponse():
                await self._tool_response(message)
                self._bound_history()
            case wire.ContextUpdate():
                self._context_update(message)

    # --- setup -------------------------------------------------------------------------------------------

    async def _setup(self, setup: wire.Setup) -> None:
        if self._setup_gate is not None:  # e.g. an ephemeral token: redeemed here, its locked fields applied
            setup = await self._setup_gate(setup)
        if setup.session_resumption is not None:
            if self._resumption.store is None:
                raise Unimplemented("sessionResumption is not enabled on this server.")
            self._resumption.config = setup.session_resumption
            if setup.session_resumption.handle:
                setup, self.history = await self._resumption.restore(setup, setup.session_resumption.handle,
                                                                     self._watchdog)
                if self._setup_gate is not None:  # the saved setup may hold fields the token locks out
                    setup = self._setup_gate.constrain(setup)
        # a resumed session has its history already: only a new one takes a seeded history
        seeded = setup.history_config and setup.history_config.initial_history_in_client_content
        self._seeding = bool(seeded and not (setup.session_resumption and setup.session_resumption.handle))
        self._resumption.setup_dump = setup.model_dump(by_alias=True, exclude_none=True, mode="json")
        config = session_config(setup, self._registry, self.api_version, self._engines)
        self._llm = self._llm_for(config)
        await self._slots.admit(self._llm, "model's LLM")
        # every session may send audio, so every one needs speech recognition; only spoken answers need synthesis
        await self._slots.admit(self._engines.asr, ASR_STAGE)
        if config.response_modality == "AUDIO":
            await self._slots.admit(self._engines.tts, TTS_STAGE)
        audio = None
        if self._engines.hears or (config.manual_activity and self._engines.asr is not None):
            from localive.session.audio_in import AudioInput  # numpy, soxr: only where audio is processed

            audio = AudioInput(config.activity, manual=config.manual_activity, vad_factory=self._engines.vad_factory,
                               executor=self._engines.vad_executor, end_of_turn=self._engines.end_of_turn,
                               foresee=self._engines.foresee and worth_foreseeing(config))
        self.config = config
        foresight = Foresight(self._transcripts, self._tasks, lambda: (self._llm, self._engines.tts))
        self._listening = Listening(self.session_id, lambda: self._config, audio, self._engines.vision, turns=self,
                                    transcripts=self._transcripts, history=self.history, outbox=self.outbox,
                                    watchdog=self._watchdog, lifecycle=self._lifecycle, tasks=self._tasks,
                                    events=self._events, foresight=foresight if self._engines.foresee else None)
        self.state = State.ACTIVE
        if setup.session_resumption is not None and setup.session_resumption.handle:
            self._telemetry.resumed(config.model.name)
        await self.outbox.put(out.setup_complete(self.session_id))
        if config.proactive_audio:  # judged by the server's judge (the larger embedded LLM where installed; a
            # remote LLM judges with itself): session_config refused proactiveAudio where the server has none
            assert self._engines.judge_for is not None
            self._judge = ProactiveJudge(self._engines.judge_for(config.model), config.system_instruction,
                                         self.session_id, start=self._tasks.start)
            self._judge.prepare(self.history)
        await self._checkpoint()
        deadline = deadline_s(self._limits, connected_at=self._connected_at,
                              session_started_at=self._resumption.started_at, compressed=config.compression is not None)
        if deadline is not None:
            self._tasks.start(run_out(deadline, self._limits, self._clock, self.outbox), "lifetime")
        if self._leave_at is not None:  # the server began to drain while the setup was applied
            await self._start_leaving(self._leave_at)

    async def _start_leaving(self, deadline: float) -> None:
        """A fresh handle first if no turn is under way (one in progress saves one when it ends), then the
        `goAway`, then the close at the deadline."""
        if not self.generating:
            await self._checkpoint()
        self._tasks.start(leave_by(deadline, self._clock, self.outbox), "leaving")

    @property
    def _config(self) -> SessionConfig:
        assert self.config is not None
        return self.config

    def _llm_for(self, config: SessionConfig) -> LLM:
        if (config.tools.code_execution or config.thinking) and self._engines.code_llm_for is not None:
            return self._engines.code_llm_for(config.model)
        return self._engines.llm_for(config.model)

    async def _checkpoint(self) -> None:
        """At a resumable point: save the conversation and send its handle (only with sessionResumption)."""
        await self._resumption.checkpoint(self.history, self._consumed, self.outbox, self._watchdog,
                                          in_turn=self.generating)

    # --- client messages ---------------------------------------------------------------------------------

    async def _client_content(self, content: wire.ClientContent) -> None:
        assert self._listening is not None
        await self.interrupt()  # any clientContent interrupts the model's current answer (proto semantics)
        for turn in content.turns or []:
            role = turn.role or "user"
            if role not in ("user", "model"):
                raise InvalidArgument(f"Content role must be 'user' or 'model', not '{role}'.")
            images = [p for p in turn.parts if p.inline_data and p.inline_data.mime_type.startswith("image/")]
            for part in images:  # an image in the conversation is shown like a video frame
                assert part.inline_data is not None
                self._listening.video_input().push(part.inline_data.data, part.inline_data.mime_type)
            rest = wire.Content(role=turn.role, parts=[p for p in turn.parts if p not in images])
            for entry in history_of(rest, role, "clientContent.turns"):  # text, and tool exchanges replayed
                if entry.role == "user" and not entry.calls:
                    self._transcripts.add_typed(self.history, entry.text)
                else:
                    self.history.add(entry)
        if content.turn_complete and self._seeding:  # the seeded history is complete: it is not answered
            self._seeding = False
            if not self.generating:
                await self._checkpoint()
        elif content.turn_complete:
            self._start_turn()

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
        config = self._config
        if self._setup_gate is not None:  # a token's locks hold for the whole session, not only its setup
            self._setup_gate.check_update(update)
        if update.tools is not None:  # present, even empty: replaces the tool list
            tools = session_tools(update.tools.tools or [], config.model, self._engines)
            if config.translation is not None and tools.enabled:
                raise Unimplemented("translationConfig cannot be combined with tools in localive.")
            config = self.config = replace(config, tools=tools)
            self._llm = self._llm_for(config)
        if update.system_instruction is not None:
            text = content_text(update.system_instruction, "contextUpdate.systemInstruction")
            self.config = replace(config, system_instruction=text or None)

    def _bound_history(self) -> None:
        assert self._llm is not None
        self.history.bound_bytes(self._llm.context_tokens * HISTORY_BYTES_PER_TOKEN,
                                 compress=self.config is not None and self.config.compression is not None,
                                 session_id=self.session_id)

    # --- turns -------------------------------------------------------------------------------------------

    @property
    def generating(self) -> bool:
        """A model turn is in progress (including audio the client is still playing)."""
        return self._turn is not None and self._turn.running

    def chat_messages(self, context: str = "") -> list[ChatMessage]:
        """The LLM's view of the conversation (session/prompt.py)."""
        return chat_messages(self._config, self.history, context)

    async def user_input(self, add: Callable[[], None]) -> None:
        """New user input ends in a model turn: now, or (NO_INTERRUPTION) after the current one."""
        if self.generating and not self._config.activity_interrupts:
            add()
            self._respond_after_turn = True
            return
        await self.interrupt()
        add()
        self._start_turn()

    def _start_turn(self) -> None:
        assert self._llm is not None and self._listening is not None
        listening = self._listening
        self._turn_id += 1
        self._lifecycle.move(Trigger.TURN_STARTED)
        prepared = listening.take_prepared()  # worked ahead in the user's last pause (session/foresight.py)
        llm, tts = prepared_engines(self._llm, self._engines.tts, prepared)
        scope = TurnScope(
            session_id=self.session_id, session_key=self._resumption.session_key, owner=self.owner,
            config=self._config, llm=llm, engines=replace(self._engines, tts=tts), outbox=self.outbox,
            watchdog=self._watchdog,
            history=self.history, tool_calls=self._tool_calls, transcripts=self._transcripts,
            lifecycle=self._lifecycle, judge=self._judge, video=lambda: listening.video, url_lane=self._url_lane,
            charge_work=self._charge_work, resumable=self._resumption.config is not None,
            checkpoint=self._checkpoint, closing=lambda: self.state is State.CLOSED, clock=self._clock,
            telemetry=self._telemetry)
        run = ModelTurn(scope, self._turn_id).run
        if prepared is not None:
            run = prepared.used_by(run, self.session_id)
        self._turn = Turn(self._turn_id, run, lambda turn: self._events.post(TurnEnded(turn)), self._tasks)
        self._watchdog.watch(self._turn.task)

    async def interrupt(self) -> bool:
        """Stop the current model turn, if any (sends interrupted → turnComplete). Returns whether it did; raises
        a LiveError (the session must end) if the turn has not stopped INTERRUPT_TIMEOUT_S later."""
        turn = self._turn
        if turn is None or not turn.cancel():
            return False
        self._lifecycle.move(Trigger.INTERRUPT)
        self._telemetry.barge_in(self._config.model.name)
        await turn.stop(self.outbox, self._clock)
        if not turn.started:  # cancelled before it ran: it could not report itself
            self._telemetry.turn_ended(self._config.model.name, "interrupted")
            await self.outbox.put(out.interrupted())
            await self.outbox.put(out.turn_complete(None))
        return True

    async def aclose(self) -> None:
        """End the session: its event loop, and with it every task it started. Safe to call twice."""
        self.state = State.CLOSED
        event_loop, self._event_loop = self._event_loop, None
        try:
            if event_loop is not None:
                event_loop.cancel()
                await asyncio.gather(event_loop, return_exceptions=True)
        finally:  # the backends' slots are given back however the session ends, even if this is cancelled
            self._slots.give_back()
            if self._listening is not None:  # its VAD stream, now rather than when the session is collected
                self._listening.close()
        self._tool_calls.cancel_all()
        try:  # the handles' expiry clock; a store that fails or hangs here must not keep the session open
            await self._resumption.session_ended(self._watchdog)
        except LiveError as exc:
            log.warning("session %s: at its end: %s", self.session_id, exc.reason)
