"""Working ahead in the user's pauses (session/foresight.py), with the shipped fakes: energy VAD, tone voice, emulator
LLM, and a scripted recogniser — what is reused, what is thrown away, and that nothing of it reaches the client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from localive.engines.asr.base import Transcript
from localive.engines.llm.base import ChatMessage, FunctionCalls, FunctionSpec, SamplingParams
from localive.engines.llm.emulator import EmulatorLLM
from localive.engines.tts.fake import ToneTTS
from localive.engines.vad.energy import EnergyVAD
from localive.models.registry import ModelRegistry
from localive.session.engines import Engines
from localive.session.live import LiveSession
from localive.testing.audio import tone_frame
from localive.testing.session import drain_turn, send
from tests.unit.test_session_voice import SCRIPT, ListASR, kinds, setup


class RecordingLLM:
    """The emulator, noting each generation: its prompt, and whether it ran to its end or was closed early."""

    def __init__(self) -> None:
        self._llm = EmulatorLLM(SCRIPT)
        self.name = self._llm.name
        self.context_tokens = self._llm.context_tokens
        self.streams: list[dict[str, Any]] = []
        self.read_ahead: list[str] = []  # the user's words in each prompt read ahead (`prefill`)
        self.idle = True

    async def prefill(self, messages: list[ChatMessage], functions: Sequence[FunctionSpec] = ()) -> int:
        self.read_ahead.append(messages[-1].text)
        return 1

    def count_tokens(self, text: str) -> int:
        return self._llm.count_tokens(text)

    def count_prompt_tokens(self, messages: list[ChatMessage], functions: Sequence[FunctionSpec] = ()) -> int:
        return self._llm.count_prompt_tokens(messages, functions)

    async def stream(self, messages: list[ChatMessage], params: SamplingParams,
                     functions: Sequence[FunctionSpec] = ()) -> AsyncIterator[str | FunctionCalls]:
        record: dict[str, Any] = {"user": messages[-1].text, "prompt": " ".join(m.text for m in messages),
                                  "finished": False, "closed": False}
        self.streams.append(record)
        try:
            async for item in self._llm.stream(messages, params, functions):
                yield item
            record["finished"] = True
        finally:
            record["closed"] = True


class GrowingASR:
    """Hears more of a sentence the longer the audio is (as a real recogniser does of a sentence being spoken), and
    says when it is idle."""

    name = "growing"
    sample_rate_hz = 16000

    def __init__(self, sentence: str, words_per_s: float = 4.0) -> None:
        self.words = sentence.split()
        self.words_per_s = words_per_s
        self.heard: list[float] = []
        self.idle = True

    async def transcribe(self, audio: Any, language: str | None = None, expect: str | None = None, *,
                         detect_among: tuple[str, ...] | None = None) -> Transcript:
        self.heard.append(audio.duration_s)
        count = max(1, int(audio.duration_s * self.words_per_s))
        return Transcript(" ".join(self.words[:count]), audio_s=audio.duration_s)

    def close(self) -> None:
        pass


class CountingTTS(ToneTTS):
    def __init__(self) -> None:
        super().__init__(ms_per_char=1.0)
        self.said: list[str] = []

    async def synthesize(self, text: str, voice: str, language: str | None = None, delivery: Any = None) -> Any:
        self.said.append(text)
        return await super().synthesize(text, voice, language) if delivery is None else \
            await super().synthesize(text, voice, language, delivery)


async def opened(asr: ListASR | GrowingASR, llm: RecordingLLM, tts: CountingTTS, foresee: bool = True,
                 **setup_extra: object) -> LiveSession:
    """A voice session on these engines, set up (its setupComplete read)."""
    engines = Engines(llm_for=lambda entry: llm, asr=asr, tts=tts, vad_factory=EnergyVAD, foresee=foresee)
    session = LiveSession(registry=ModelRegistry(), engines=engines, session_id="ahead")
    await send(session, setup(**setup_extra))
    await session.outbox.get()
    return session


async def sent(session: LiveSession) -> list[str]:
    """What the session has queued for the client so far (each message's kind)."""
    return [next(iter(await session.outbox.get())) for _ in range(len(session.outbox))]


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Let the session's tasks run until `condition` holds."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - the session's tasks move on as this yields
            await asyncio.sleep(0)


async def test_a_turn_that_ends_on_the_pause_uses_what_was_worked_ahead_in_it() -> None:
    asr, llm, tts = ListASR("hello there"), RecordingLLM(), CountingTTS()
    session = await opened(asr, llm, tts)
    await send(session, tone_frame(0.6, loud=True))
    await send(session, tone_frame(0.2, loud=False))  # a pause: not yet the end of the turn (500 ms)
    await until(lambda: bool(tts.said))  # the answer's first piece is spoken ahead...
    assert await sent(session) == ["voiceActivity"]  # ...and nothing of it is sent
    assert [t.role for t in session.history] == []
    await send(session, tone_frame(0.5, loud=False))  # the silence window ends the turn
    messages = await drain_turn(session)
    assert kinds(messages)[:2] == ["inputTranscription", "outputTranscription"] and "audio" in kinds(messages)
    assert len(asr.heard) == 1 and len(llm.streams) == 1  # heard once, generated once: the work ahead was used
    assert llm.streams[0]["finished"]
    said = [m["serverContent"]["outputTranscription"]["text"].strip() for m in messages
            if "text" in m.get("serverContent", {}).get("outputTranscription", {})]
    assert tts.said == said  # each piece synthesised once: the first one ahead of the turn
    assert (session.history[0].role, session.history[0].text) == ("user", "hello there")
    await session.aclose()


async def test_when_the_user_goes_on_the_work_ahead_is_thrown_away() -> None:
    asr, llm, tts = ListASR("turn on", "turn on the lights"), RecordingLLM(), CountingTTS()
    session = await opened(asr, llm, tts)
    await send(session, tone_frame(0.6, loud=True))
    await send(session, tone_frame(0.2, loud=False))
    await until(lambda: bool(llm.streams))  # an answer to "turn on" is under way
    await send(session, tone_frame(0.5, loud=True))  # the user goes on
    await until(lambda: llm.streams[0]["closed"])  # that generation stops
    await send(session, tone_frame(0.7, loud=False))
    messages = await drain_turn(session)
    assert not llm.streams[0]["finished"] and llm.streams[-1]["user"] == "turn on the lights"
    assert [m["serverContent"]["inputTranscription"]["text"] for m in messages
            if "inputTranscription" in m.get("serverContent", {})] == ["turn on the lights"]
    assert (session.history[0].role, session.history[0].text) == ("user", "turn on the lights")
    assert kinds(messages).count("turnComplete") == 1
    await session.aclose()


async def test_a_turn_whose_prompt_changed_meanwhile_generates_its_own_answer() -> None:
    asr, llm, tts = ListASR("hello there"), RecordingLLM(), CountingTTS()
    session = await opened(asr, llm, tts)
    await send(session, tone_frame(0.6, loud=True))
    await send(session, tone_frame(0.2, loud=False))
    await until(lambda: bool(tts.said))
    await send(session, {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "Be brief."}]}]}})
    await send(session, tone_frame(0.5, loud=False))
    messages = await drain_turn(session)
    assert len(llm.streams) == 2 and llm.streams[0]["closed"] and "Be brief." not in llm.streams[0]["prompt"]
    assert "Be brief." in llm.streams[1]["prompt"] and llm.streams[1]["finished"] and "audio" in kinds(messages)
    assert [t.text for t in session.history][:2] == ["Be brief.", "hello there"]
    await session.aclose()


async def test_with_manual_activity_the_work_is_done_before_activity_end() -> None:
    asr, llm, tts = ListASR("hello there"), RecordingLLM(), CountingTTS()
    session = await opened(asr, llm, tts, realtimeInputConfig={"automaticActivityDetection": {"disabled": True}})
    await send(session, {"realtimeInput": {"activityStart": {}}})
    await send(session, tone_frame(0.6, loud=True))
    await send(session, tone_frame(0.3, loud=False))
    await until(lambda: bool(tts.said))
    await send(session, {"realtimeInput": {"activityEnd": {}}})
    messages = await drain_turn(session)
    assert "audio" in kinds(messages) and len(asr.heard) == 1 and len(llm.streams) == 1
    await session.aclose()


async def test_without_work_ahead_the_answer_is_the_same() -> None:
    answers = []
    for foresee in (True, False):
        asr, llm, tts = ListASR("hello there"), RecordingLLM(), CountingTTS()
        session = await opened(asr, llm, tts, foresee=foresee)
        await send(session, tone_frame(0.6, loud=True))
        await send(session, tone_frame(0.7, loud=False))
        messages = await drain_turn(session)
        answers.append([(k, m.get("serverContent", {}).get("outputTranscription")) for k, m in
                        zip(kinds(messages), [m for m in messages if "serverContent" in m], strict=False)])
        await session.aclose()
    assert answers[0] == answers[1]


async def test_a_session_that_ends_in_a_pause_leaves_no_work_running() -> None:
    asr, llm, tts = ListASR("hello there"), RecordingLLM(), CountingTTS()
    session = await opened(asr, llm, tts)
    await send(session, tone_frame(0.6, loud=True))
    await send(session, tone_frame(0.2, loud=False))
    await until(lambda: bool(llm.streams))
    await session.aclose()
    assert llm.streams[0]["closed"] and await sent(session) == ["voiceActivity"]


async def test_while_the_user_speaks_the_llm_reads_what_they_said_so_far() -> None:
    sentence = "please turn on all the lights in the kitchen and the hall"
    asr, llm, tts = GrowingASR(sentence, words_per_s=5.0), RecordingLLM(), CountingTTS()
    session = await opened(asr, llm, tts)
    for _ in range(12):  # 2.4 s of speech, as a microphone sends it
        await send(session, tone_frame(0.2, loud=True))
        await settle()  # a pass over the words so far runs
    await send(session, tone_frame(0.7, loud=False))
    messages = await drain_turn(session)
    assert llm.read_ahead, "nothing was read ahead"
    assert all(sentence.startswith(words) for words in llm.read_ahead)  # the words so far, each time
    assert len(llm.read_ahead) >= 2 and llm.read_ahead[-1] != sentence  # more as the user goes on; never all
    assert min(asr.heard) < max(asr.heard)  # passes over part of the utterance, then over all of it
    assert session.history[0].text == sentence and "audio" in kinds(messages)
    await session.aclose()


async def settle() -> None:
    """Let the session's tasks take their next steps (the fakes answer at once)."""
    for _ in range(50):
        await asyncio.sleep(0)


async def test_a_busy_recogniser_or_a_long_utterance_is_not_worked_ahead() -> None:
    for busy, speech_s in ((True, 1.0), (False, 9.0)):
        asr, llm, tts = GrowingASR("please turn on the lights"), RecordingLLM(), CountingTTS()
        asr.idle = not busy
        session = await opened(asr, llm, tts)
        await send(session, tone_frame(speech_s, loud=True))
        await send(session, tone_frame(0.2, loud=False))  # a pause
        await settle()
        assert not asr.heard and not llm.streams  # nothing started ahead of the turn
        await send(session, tone_frame(0.5, loud=False))
        messages = await drain_turn(session)
        assert "audio" in kinds(messages) and len(asr.heard) == 1
        await session.aclose()


async def test_nothing_is_read_ahead_while_the_recogniser_works_for_someone() -> None:
    asr, llm, tts = GrowingASR("please turn on the lights"), RecordingLLM(), CountingTTS()
    asr.idle = False
    session = await opened(asr, llm, tts)
    for _ in range(8):
        await send(session, tone_frame(0.2, loud=True))
    await send(session, tone_frame(0.7, loud=False))
    await drain_turn(session)
    assert not llm.read_ahead and len(asr.heard) == 1  # only the pause's pass, which the turn used
    await session.aclose()


async def test_an_answer_worked_ahead_is_interrupted_like_any_other() -> None:
    asr, llm, tts = ListASR("slow", "stop"), RecordingLLM(), CountingTTS()  # "slow": a word every 30 ms
    session = await opened(asr, llm, tts)
    await send(session, tone_frame(0.6, loud=True))
    await send(session, tone_frame(0.2, loud=False))
    await until(lambda: bool(tts.said))
    await send(session, tone_frame(0.5, loud=False))  # the turn ends on the pause: it takes the answer...
    await until(lambda: session.generating)
    await send(session, tone_frame(0.4, loud=True))  # ...and the user talks over it
    messages = await drain_turn(session)
    assert "interrupted" in kinds(messages) and llm.streams[0]["closed"] and not llm.streams[0]["finished"]
    await session.aclose()
