"""Working ahead: when the user pauses, start answering what they have said so far, before the turn has ended.

The end of a spoken turn is decided after a pause (the silence window, or the end-of-turn model's judgement of
it), and with manual activity when `activityEnd` arrives; all that time the machine would otherwise wait. So
`FORESEE_AFTER_MS` into a pause (session/activity.py `PauseStarted`) the session starts, as a task of its group:
the transcription of the utterance so far, then the answer's generation on the prompt the turn will build, and —
with spoken answers — the synthesis of its first piece. Nothing is sent, nothing enters the history.

If the turn then ends on that very pause (`SpeechEnded.heard_frames` says the user said nothing more), the turn
takes what is ready (`Prepared`): the transcription, then — only where its prompt, sampling and functions are
exactly those the work was started with — the generation already under way (`PreparedLLM`) and the first piece's
audio (`PreparedTTS`). Anything else (the user goes on, `SpeechResumed`; a new pause; another message changed the
history; the session ends) throws the work away: its task is cancelled, which stops the generation within a
token and drops a queued transcription. The turn's own output and timings are as if it had done the work itself,
only sooner.

Not worked ahead (the turn does it all itself): sessions with thinking, code execution, search or URL context,
proactive audio, affective dialog, translation or video input — their prompt depends on work done in the turn —
and pauses while the model is talking (a barge-in or a backchannel is being judged).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

from localive.audio.pcm import Pcm16
from localive.engines.llm.base import LLM, ChatMessage, FunctionCalls, FunctionSpec, Prefills, SamplingParams
from localive.engines.tts.base import NEUTRAL, TTS, Delivery
from localive.session.activity import PauseStarted, SpeechEnded
from localive.session.config import SessionConfig
from localive.session.hearing import Heard
from localive.session.history import History
from localive.session.prompt import chat_messages, function_specs
from localive.session.speech_out import splitter_for
from localive.session.tasks import Outcome, SessionTasks
from localive.session.transcripts import Transcripts

log = logging.getLogger("localive.session")

# Longer utterances are not worked ahead: a pass over them takes long enough to delay another session's turn that
# arrives meanwhile (the recogniser and the LLM each run one request at a time), and their answer can wait.
FORESEE_MAX_S = 8.0

Item = str | FunctionCalls


class Prepared:
    """What was worked ahead for one pause: a transcription, then an answer's generation and its first audio."""

    def __init__(self, heard_frames: int, heard: asyncio.Task[Outcome[Heard]]) -> None:
        self.heard_frames = heard_frames
        self.heard = heard
        self.task: asyncio.Task[None] | None = None  # the work after the transcription
        self.handed = False  # the turn took it: its transcription, and maybe more
        self.consumed = False  # the turn is reading the generation: only it may end it now
        self.started = asyncio.Event()  # the generation was started, or will not be
        self.messages: list[ChatMessage] | None = None
        self.params: SamplingParams | None = None
        self.functions: list[FunctionSpec] = []
        self._stream: AsyncIterator[Item] | None = None
        self._items: list[Item] = []  # what the generation has yielded so far
        self._ended = False
        self._reading = asyncio.Lock()  # one reader of the generation at a time
        self._handover = asyncio.Event()
        self.first: tuple[tuple[str, str, str | None, Delivery], asyncio.Future[Pcm16]] | None = None  # its audio
        self._began = time.perf_counter()
        self.marks: dict[str, float] = {}  # ms from the pause to each step done (logged by the turn)

    def mark(self, step: str) -> None:
        self.marks.setdefault(step, round((time.perf_counter() - self._began) * 1000, 1))

    # --- the work (a task of the session's group) -----------------------------------------------------------

    async def work(self, config: SessionConfig, history: History, llm: LLM, tts: TTS | None) -> None:
        try:
            try:
                heard = (await asyncio.shield(self.heard)).get()
            except Exception:  # noqa: BLE001 - the turn that takes the transcription meets the failure itself
                return
            text = heard.transcript.text
            self.mark("heard")
            if not text:
                return
            foreseen = History(history)
            foreseen.add_text("user", text)
            if isinstance(llm, Prefills) and not llm.idle:  # it works for another session: the words are enough
                return
            self.messages = chat_messages(config, foreseen)
            self.params, self.functions = config.sampling, function_specs(config)
            self._stream = aiter(llm.stream(self.messages, self.params, self.functions))
            self.started.set()
            voice = config.voice
            if config.response_modality != "AUDIO" or tts is None or voice is None:
                await self._item(0)  # the prompt is read and the first words are there when the turn starts
                await self._handover.wait()
                return
            piece = await self._first_piece(config.language)
            if piece is None:
                await self._handover.wait()
                return
            key = (piece, voice, config.language, NEUTRAL)
            future: asyncio.Future[Pcm16] = asyncio.get_running_loop().create_future()
            self.first = (key, future)
            self.mark("first_piece")
            try:
                future.set_result(await tts.synthesize(piece, voice, config.language, NEUTRAL))
                self.mark("first_audio")
            except asyncio.CancelledError:
                future.cancel()
                raise
            except Exception as exc:  # noqa: BLE001 - the turn synthesises the piece itself, and meets the failure
                future.set_exception(exc)
                future.exception()  # retrieved: nobody else may ask for it
                return
            await self._handover.wait()
        finally:
            self.started.set()
            if self._stream is not None and not self.consumed:
                await _close(self._stream)

    async def _first_piece(self, language: str | None) -> str | None:
        """Read the generation until its first piece to speak is complete (as session/speech_out.py cuts it)."""
        splitter = splitter_for(language)
        index = 0
        while (item := await self._item(index)) is not None:
            index += 1
            if isinstance(item, FunctionCalls):
                return None
            if pieces := splitter.push(item):
                return pieces[0]
        rest = splitter.flush()
        return rest[0] if rest else None

    async def _item(self, index: int) -> Item | None:
        """The generation's item at `index` (None: it has ended), reading it if nobody has yet."""
        async with self._reading:
            while index >= len(self._items) and not self._ended:
                assert self._stream is not None
                try:
                    self._items.append(await anext(self._stream))
                    self.mark("first_token")
                except StopAsyncIteration:
                    self._ended = True
            return self._items[index] if index < len(self._items) else None

    # --- what the turn takes ----------------------------------------------------------------------------

    def matches(self, messages: list[ChatMessage], params: SamplingParams, functions: Sequence[FunctionSpec]) -> bool:
        return (self._stream is not None and not self.consumed and messages == self.messages
                and params == self.params and list(functions) == self.functions)

    async def replay(self) -> AsyncIterator[Item]:
        """The generation from its start: what was read ahead, then the rest as it comes."""
        self.consumed = True
        self._handover.set()
        assert self._stream is not None
        index = 0
        try:
            while (item := await self._item(index)) is not None:
                index += 1
                yield item
        finally:
            async with self._reading:  # not while the work's task reads it (it reads up to the first piece)
                await _close(self._stream)

    def used_by(self, run: Callable[[], Coroutine[Any, Any, bool]],
                session_id: str) -> Callable[[], Coroutine[Any, Any, bool]]:
        """The turn's body, throwing away at its end whatever of the work it did not use."""
        self.mark("turn")
        async def body() -> bool:
            try:
                return await run()
            finally:
                self.handed = True  # its transcription is the turn's
                log.info("work ahead session=%s used=%s %s", session_id, "answer" if self.consumed else "words",
                         " ".join(f"{step}_ms={ms}" for step, ms in self.marks.items()))
                self.discard()
        return body

    def discard(self) -> None:
        """Throw the work away (nothing of it reached the client): unless the turn is reading its generation."""
        if not self.handed:
            self.heard.cancel()
        if not self.consumed and self.task is not None:
            self.task.cancel()


async def _close(stream: AsyncIterator[Any]) -> None:
    closer = getattr(stream, "aclose", None)
    if closer is not None:
        await closer()


class PreparedLLM:
    """The turn's LLM: the worked-ahead generation for the prompt it was started with, else the LLM itself."""

    def __init__(self, llm: LLM, prepared: Prepared) -> None:
        self._llm = llm
        self._prepared = prepared
        self.name = llm.name
        self.context_tokens = llm.context_tokens

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm, name)

    def count_tokens(self, text: str) -> int:
        return self._llm.count_tokens(text)

    def count_prompt_tokens(self, messages: list[ChatMessage], functions: Sequence[FunctionSpec] = ()) -> int:
        return self._llm.count_prompt_tokens(messages, functions)

    async def stream(self, messages: list[ChatMessage], params: SamplingParams,
                     functions: Sequence[FunctionSpec] = ()) -> AsyncIterator[Item]:
        prepared = self._prepared
        await prepared.started.wait()
        if prepared.matches(messages, params, functions):
            log.debug("the answer was worked ahead")
            async for item in prepared.replay():
                yield item
            return
        prepared.discard()
        async for item in self._llm.stream(messages, params, functions):
            yield item


class PreparedTTS:
    """The turn's voice: the worked-ahead audio of the answer's first piece, else the voice itself."""

    def __init__(self, tts: TTS, prepared: Prepared) -> None:
        self._tts = tts
        self._prepared = prepared

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tts, name)

    async def synthesize(self, text: str, voice: str, language: str | None = None,
                         delivery: Delivery = NEUTRAL) -> Pcm16:
        first = self._prepared.first
        if first is not None and first[0] == (text, voice, language, delivery):
            self._prepared.first = None  # once
            try:
                return await asyncio.shield(first[1])
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not first[1].cancelled() or (task is not None and task.cancelling()):
                    raise  # this turn is being cancelled (not only the work ahead)
            except Exception:  # noqa: BLE001 - its failure is met again below
                pass
        return await self._tts.synthesize(text, voice, language, delivery)


class Foresight:
    """One session's work ahead: reading what the user says while they speak (at most one pass at a time), and at
    most one `Prepared` for their latest pause."""

    def __init__(self, transcripts: Transcripts, tasks: SessionTasks,
                 engines: Callable[[], tuple[LLM | None, TTS | None]]) -> None:
        self._transcripts = transcripts
        self._tasks = tasks
        self._engines = engines  # the session's LLM and voice, as in force now
        self._prepared: Prepared | None = None
        self._reading: asyncio.Task[None] | None = None  # a pass over the words so far, and the LLM reading them

    def listen(self, audio: Callable[[], Pcm16], config: SessionConfig, history: History) -> None:
        """The user is speaking: while the recogniser and the LLM are idle, transcribe what they said so far and
        have the LLM read it (its KV cache), so that at the end of the turn only the last words remain to read."""
        if self._reading_now or self._prepared is not None:
            return
        llm, _ = self._engines()
        if not (worth_foreseeing(config) and self._transcripts.idle and isinstance(llm, Prefills) and llm.idle):
            return
        words = audio()
        if words.duration_s > FORESEE_MAX_S:
            return
        heard = self._transcripts.start(SpeechEnded(words, 0.0), config)
        self._reading = self._tasks.start(_read_ahead(heard, config, History(history), llm), "listen-ahead")

    @property
    def _reading_now(self) -> bool:
        return self._reading is not None and not self._reading.done()

    def pause(self, event: PauseStarted, config: SessionConfig, history: History) -> None:
        """The user paused: work ahead on what they said so far (replacing any earlier work). Only where the
        recogniser works for nobody else (this session's own pass over the words so far finishes first): work
        ahead uses idle engines, never another session's turn."""
        busy = self._transcripts.busy and not self._reading_now
        self.cancel()
        llm, tts = self._engines()
        if busy or llm is None or event.audio.duration_s > FORESEE_MAX_S or not worth_foreseeing(config):
            return
        heard = self._transcripts.start(SpeechEnded(event.audio, 0.0, heard_frames=event.heard_frames), config)
        prepared = Prepared(event.heard_frames, heard)
        prepared.task = self._tasks.start(prepared.work(config, History(history), llm, tts), "foresight")
        prepared.task.add_done_callback(lambda _: prepared.started.set())  # also if cancelled before it ran
        self._prepared = prepared

    def cancel(self) -> None:
        """The user went on, or something else changed: the work so far is of no use."""
        if self._reading is not None:
            self._reading.cancel()
            self._reading = None
        prepared, self._prepared = self._prepared, None
        if prepared is not None and not prepared.handed:
            prepared.discard()

    def take(self, ended: SpeechEnded) -> Prepared | None:
        """The utterance ended: what was worked ahead for it, if the user said nothing after that pause."""
        prepared, self._prepared = self._prepared, None
        if prepared is None:
            return None
        if ended.heard_frames is None or ended.heard_frames != prepared.heard_frames:
            prepared.discard()
            return None
        prepared.handed = True
        return prepared


async def _read_ahead(heard: asyncio.Task[Outcome[Heard]], config: SessionConfig, history: History,
                      llm: Prefills) -> None:
    try:
        try:
            text = (await heard).get().transcript.text
        except Exception:  # noqa: BLE001 - only a head start: the turn's own pass meets the failure itself
            return
        if text and llm.idle:
            history.add_text("user", text)
            read = await llm.prefill(chat_messages(config, history), function_specs(config))
            log.debug("read ahead: %d tokens for %r", read, text[-40:])
    finally:
        heard.cancel()  # cancelled with this task: a pass still queued never starts


def worth_foreseeing(config: SessionConfig) -> bool:
    """Whether the turn's prompt can be known before the turn (see the module's docstring)."""
    tools = config.tools
    return not (config.thinking is not None or config.proactive_audio or config.affective
                or config.translation is not None or tools.code_execution or tools.search or tools.url_context)


def prepared_engines(llm: LLM, tts: TTS | None, prepared: Prepared | None) -> tuple[LLM, TTS | None]:
    """The turn's LLM and voice, serving what was worked ahead first."""
    if prepared is None:
        return llm, tts
    return PreparedLLM(llm, prepared), (PreparedTTS(tts, prepared) if tts is not None else None)
