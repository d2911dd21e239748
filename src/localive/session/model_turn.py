"""What one model turn does (`ModelTurn.run`, the body of a session/turn.py `Turn`).

The pending user speech is transcribed (``inputTranscription``); with proactive audio a judge decides whether it
was meant for the model; the context is fitted and gathered (search, pages, video); then the answer streams as text
parts or as audio (with ``outputTranscription``, closed by ``finished``), with code runs and function calls between
rounds (session/rounds.py) → ``generationComplete`` → (audio: once the client has played it) ``turnComplete`` +
``usageMetadata``. Cancelled for an interruption, it sends ``interrupted`` → ``turnComplete``, keeping in history
only what the user was given (text) or heard (audio). Any other failure ends the session with its close. Each step
moves the session's turn lifecycle (session/lifecycle.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from localive.clock import Clock
from localive.engines.llm.base import LLM, REPORTED_PROMPT_TOKENS, SESSION_ID, BackendError, CalledFunction
from localive.engines.speech_remote import BackendFailed
from localive.engines.tts.base import NEUTRAL, Delivery
from localive.protocol import server_messages as out
from localive.protocol.errors import LiveError, close_for
from localive.session.affect import context_note, delivery
from localive.session.config import SessionConfig
from localive.session.context import TurnContext
from localive.session.engines import Engines
from localive.session.hearing import AffectTracker
from localive.session.history import Entry, History
from localive.session.lifecycle import Lifecycle, Trigger
from localive.session.outbox import Outbox
from localive.session.proactive import ProactiveJudge
from localive.session.prompt import chat_messages, count_prompt_tokens, fit_context, function_specs
from localive.session.rounds import MalformedCall, call_functions, execute, model_round, think
from localive.session.speech_out import Playback, finish_transcription
from localive.session.telemetry import NO_TELEMETRY, Telemetry
from localive.session.thinking import answer_messages
from localive.session.timings import TurnTimings
from localive.session.tool_calls import ToolCalls
from localive.session.transcripts import Transcripts
from localive.session.translation import Echo, target_speech
from localive.session.usage import turn_usage
from localive.session.video_in import VideoInput
from localive.session.watchdog import LLM_STAGE, Watchdog
from localive.tools.grounding import grounding_metadata
from localive.tools.search import SearchError
from localive.tools.url_context import find_urls, url_context_metadata
from localive.tools.url_text import ParseLane

log = logging.getLogger("localive.session")

MAX_TOOL_ROUNDS = 6  # generations in one turn (code runs, function calls); the last may only answer
SEARCH_RESULTS = 3


@dataclass(frozen=True)
class TurnScope:
    """What a model turn works with: the session's parts, and its settings as the turn starts."""

    session_id: str
    session_key: str  # names the session across resumptions (remote backends are sent it)
    owner: str  # whose share of rationed work (code runs) the turn uses
    config: SessionConfig
    llm: LLM
    engines: Engines
    outbox: Outbox
    watchdog: Watchdog
    history: History
    tool_calls: ToolCalls
    transcripts: Transcripts
    lifecycle: Lifecycle
    judge: ProactiveJudge | None
    video: Callable[[], VideoInput | None]
    url_lane: ParseLane
    charge_work: Callable[[float], object] | None
    resumable: bool
    checkpoint: Callable[[], Awaitable[None]]
    closing: Callable[[], bool]  # the session is ending: nobody reads the outbox any more
    clock: Clock  # the session's: playback pacing and the turn's timings
    telemetry: Telemetry = NO_TELEMETRY  # what the server's metrics count (session/telemetry.py)


class ModelTurn:
    def __init__(self, scope: TurnScope, turn_id: int) -> None:
        self.scope = scope
        self.id = turn_id
        self.playback = Playback(scope.clock)
        self.timings = TurnTimings(scope.clock)
        self.pieces: list[str] = []  # text parts sent (TEXT), to know what the user saw when interrupted
        self.prompt_tokens = 0

    async def run(self) -> bool:
        """The turn, start to end. Returns True when it answered in full (what waits for the turn may go on)."""
        s = self.scope
        SESSION_ID.set(s.session_key)  # this task's context: remote backends send it (engines/llm/base.py)
        config, llm, history = s.config, s.llm, s.history
        mark = len(history)
        speech_s = 0.0
        model = config.model.name
        try:
            speech_s = await s.transcripts.take(history, config, s.outbox, s.watchdog, self.timings)
            spoken = s.transcripts.spoken_last
            self.timings.mark_transcribed()
            mark = len(history)
            if not history or history[-1].role not in ("user", "tool"):
                s.lifecycle.move(Trigger.NOT_ANSWERED)
                s.telemetry.turn_ended(model, "unanswered")
                return False  # nothing new to answer (e.g. the user made a sound but said no words)
            answer_as = target_speech(config.translation, spoken, s.transcripts.language)  # translation sessions
            if answer_as == "echo":
                llm = Echo(llm, history[-1].text)
            if answer_as != "silent" and s.judge is not None and spoken:
                s.lifecycle.move(Trigger.JUDGE)
                if await self._addressed(s.judge):
                    s.lifecycle.move(Trigger.ADDRESSED)
                else:
                    answer_as = "silent"
            elif answer_as != "silent":
                s.lifecycle.move(Trigger.TRANSCRIBED)
            if answer_as == "silent":
                history.drop_last()  # side talk (translating: speech already in the target language)
                history.take_deferred()
                await s.outbox.put(out.turn_complete(turn_usage(llm, 0, speech_s, "", self.playback,
                                                                config.response_modality)))
                s.lifecycle.move(Trigger.NOT_ANSWERED)
                s.telemetry.turn_ended(model, "unanswered")
                return False
            await self._answer(llm, speech_s, mark)
        except asyncio.CancelledError:
            # the session is ending (nobody will read the outbox), or the watchdog ended it (its close is sent)
            if s.closing() or s.watchdog.expired is not None:
                if not s.closing():
                    s.lifecycle.move(Trigger.FAIL)
                s.telemetry.turn_ended(model, "cancelled")
                raise
            s.telemetry.turn_ended(model, "interrupted")
            await self._interrupted(llm, speech_s, mark)
            raise
        except Exception as exc:  # any failure ends the session: a LiveError with its code (1011 for a backend)
            if not isinstance(exc, LiveError):  # an unexpected one (a bug, an engine's crash): its traceback
                log.exception("session %s: turn failed", s.session_id)
            if isinstance(exc, BackendFailed | BackendError):  # a remote backend's: the stage is a fixed name
                s.telemetry.backend_failed(exc.stage)
            s.telemetry.turn_ended(model, "failed")
            await s.outbox.put(close_for(exc))
            s.lifecycle.move(Trigger.FAIL)
            return False
        history.take_deferred()
        s.lifecycle.move(Trigger.PLAYED_OUT)
        s.telemetry.turn_ended(model, "answered")
        return True

    async def _answer(self, llm: LLM, speech_s: float, mark: int) -> None:
        s, turn_id = self.scope, self.id
        config, history = s.config, s.history
        tool_prompt_tokens, thought_tokens, reason = 0, 0, None
        if s.resumable:
            await s.outbox.put(out.resumption_update("", False), turn=turn_id)
        await fit_context(llm, config, history, s.session_id)
        context = await self._gather_context()
        feeling, spoken_as = self._sense_affect()
        functions = function_specs(config)
        made: list[CalledFunction] = []  # the calls of this turn: asking again for one means "stuck"
        for round_no in range(MAX_TOOL_ROUNDS):
            offered = functions if round_no < MAX_TOOL_ROUNDS - 1 else []  # the last round must answer
            messages = chat_messages(config, history, "\n\n".join(p for p in (context.prompt, feeling) if p))
            tokens = await count_prompt_tokens(llm, messages, offered)
            if round_no == 0:
                self.prompt_tokens = tokens
            else:
                tool_prompt_tokens = max(tool_prompt_tokens, tokens - self.prompt_tokens)
            if round_no == 0 and config.thinking is not None:
                thoughts = await think(llm, messages, config, config.thinking, turn_id, s.outbox, s.watchdog)
                thought_tokens = llm.count_tokens(thoughts)
                messages = answer_messages(messages, thoughts)
            REPORTED_PROMPT_TOKENS.set(None)
            stream = s.watchdog.stream(LLM_STAGE, llm.stream(messages, config.sampling, offered))
            result = await model_round(stream, config=config, engines=s.engines, outbox=s.outbox,
                                       watchdog=s.watchdog, turn_id=turn_id, playback=self.playback,
                                       timings=self.timings, delivery=spoken_as, pieces=self.pieces)
            reported = REPORTED_PROMPT_TOKENS.get()  # a remote backend's own count, where it sent one
            if reported is not None and round_no == 0:
                self.prompt_tokens = reported
            elif reported is not None:
                tool_prompt_tokens = max(tool_prompt_tokens, reported - self.prompt_tokens)
            if result.code is not None:
                history.add(Entry("model", f"{result.text}```python\n{result.code}\n```"))
                s.telemetry.tool_called(config.model.name, "code_execution")
                await execute(result.code, engines=s.engines, owner=s.owner, history=history, outbox=s.outbox,
                              watchdog=s.watchdog, turn_id=turn_id)
            elif result.calls and all(c in made for c in result.calls):
                functions = []  # the same call again: answer from the results instead
            elif result.calls:
                made.extend(result.calls)
                s.telemetry.tool_called(config.model.name, "function", len(result.calls))
                try:
                    await call_functions(result, config=config, tool_calls=s.tool_calls, history=history,
                                         outbox=s.outbox, watchdog=s.watchdog, turn_id=turn_id)
                except MalformedCall as exc:
                    log.warning("session %s: %s", s.session_id, exc)
                    reason = "MALFORMED_FUNCTION_CALL"
                    break
            else:
                history.add_text("model", result.text)
                break
        log.info("turn timings session=%s turn=%d %s", s.session_id, turn_id, self.timings.log_fields())
        s.telemetry.turn_timed(config.model.name, self.timings)
        reply = history.reply_since(mark)
        if context.hits:
            await s.outbox.put(out.grounding(grounding_metadata([context.query], context.hits, reply)), turn=turn_id)
        await s.checkpoint()  # the turn is in history: a handle from here on includes it
        await finish_transcription(s.outbox, self.playback, turn_id)  # outputTranscription {finished: true}
        await s.outbox.put(out.generation_complete())
        s.lifecycle.move(Trigger.GENERATION_COMPLETE)
        if s.judge is not None:
            s.judge.prepare(history)
        with s.watchdog.waiting():
            await self.playback.played_out()  # the client is still playing: the turn is not over
        video = s.video()
        usage = turn_usage(llm, self.prompt_tokens, speech_s, reply, self.playback, config.response_modality,
                           video.take_tokens() if video else 0)
        await s.outbox.put(out.turn_complete(replace(usage, tool_use_prompt_tokens=tool_prompt_tokens,
                                                     thoughts_tokens=thought_tokens), reason))

    async def _interrupted(self, llm: LLM, speech_s: float, mark: int) -> None:
        """The turn was interrupted: drop its unsent output, cancel its calls, keep what the user got."""
        s = self.scope
        dropped = await s.outbox.drop_turn(self.id)
        cancelled = s.tool_calls.cancel_turn(self.id)
        if s.config.response_modality == "AUDIO":
            heard = self.playback.heard_text()
        else:
            unsent = sum(1 for m in dropped if _text_part(m) is not None)
            heard = "".join(self.pieces[: len(self.pieces) - unsent])
        s.history.keep_after_interruption(mark, heard, set(cancelled))
        s.history.take_deferred()
        await finish_transcription(s.outbox, self.playback, dropped=dropped)
        if cancelled:
            await s.outbox.put(out.tool_call_cancellation(cancelled))
        await s.outbox.put(out.interrupted())
        await s.outbox.put(out.turn_complete(turn_usage(llm, self.prompt_tokens, speech_s, heard, self.playback,
                                                        s.config.response_modality)))

    async def _addressed(self, judge: ProactiveJudge) -> bool:
        with self.scope.watchdog.stage(LLM_STAGE):
            return await judge.addressed(self.scope.history, self.id)

    def _sense_affect(self) -> tuple[str, Delivery]:
        """With affective dialog: how the user sounded (or, typed, what their words say) → a note for the model,
        and this turn's speech delivery. Without it: nothing, and the voice's normal delivery."""
        s = self.scope
        affect, s.transcripts.affect = s.transcripts.affect, None
        if not s.config.affective:
            return "", NEUTRAL
        if affect is None and s.history and s.history[-1].role == "user":
            affect = AffectTracker().read(s.history[-1].text)
        if affect is None:
            return "", NEUTRAL
        spoken_as = delivery(affect)
        log.info("affect session=%s turn=%d label=%s arousal=%.2f valence=%.2f delivery=%s", s.session_id,
                 self.id, affect.label, affect.arousal, affect.valence, spoken_as)
        return context_note(affect), spoken_as

    async def _gather_context(self) -> TurnContext:
        """Search results and fetched pages for the user's latest words, when those tools are on."""
        s = self.scope
        question = s.history.last_user_text()
        context = TurnContext(query=question)
        if (video := s.video()) is not None:
            context.visual = await video.context()
        tools, engines = s.config.tools, s.engines.tools
        if tools.url_context and engines.urls is not None and (urls := find_urls(question)):
            try:
                pages = await engines.urls.fetch_all(urls, s.url_lane)
            finally:  # also when interrupted: the work its pages took counts against the client's share
                if s.charge_work is not None:
                    s.charge_work(s.url_lane.take_cpu())
            await s.outbox.put(out.url_context(url_context_metadata(pages)), turn=self.id)
            context.add_pages(pages)
        if tools.search and engines.search is not None and question:
            try:
                context.add_hits(await engines.search.search(question, SEARCH_RESULTS))
            except SearchError as exc:
                log.warning("session %s: search failed, answering without it: %s", s.session_id, exc)
        return context


def _text_part(message: out.ServerMessage) -> str | None:
    parts = message.get("serverContent", {}).get("modelTurn", {}).get("parts", [])
    return parts[0].get("text") if parts else None
