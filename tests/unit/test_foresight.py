"""Working ahead in the user's pauses (session/foresight.py), with the shipped fakes: energy VAD, tone voice, emulator
LLM, and a scripted recogniser — what is reused, what is thrown away, and that nothing of it reaches the client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

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


class CountingTTS(ToneTTS):
    def __init__(self) -> None:
        super().__init__(ms_per_char=1.0)
        self.said: list[str] = []

    async def synthesize(self, text: str, voice: str, language: str | None = None, delivery: Any = None) -> Any:
        self.said.append(text)
        return await super().synthesize(text, voice, language) if delivery is None else \
            await super().synthesize(text, voice, language, delivery)


def session_with(asr: ListASR, llm: RecordingLLM, tts: CountingTTS, foresee: bool = True) -> LiveSession:
    engines = Engines(llm_for=lambda entry: llm, asr=asr, tts=tts, vad_factory=EnergyVAD, foresee=foresee)
    return LiveSession(registry=ModelRegistry(), engines=engines, session_id="ahead")


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
    session = session_with(asr, llm, tts)
    await send(session, setup())
    await session.outbox.get()
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
    session = session_with(asr, llm, tts)
    await send(session, setup())
    await session.outbox.get()
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
    session = session_with(asr, llm, tts)
    await send(session, setup())
    await session.outbox.get()
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
    session = session_with(asr, llm, tts)
    await send(session, setup(realtimeInputConfig={"automaticActivityDetection": {"disabled": True}}))
    await session.outbox.get()
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
        session = session_with(asr, llm, tts, foresee=foresee)
        await send(session, setup())
        await session.outbox.get()
        await send(session, tone_frame(0.6, loud=True))
        await send(session, tone_frame(0.7, loud=False))
        messages = await drain_turn(session)
        answers.append([(k, m.get("serverContent", {}).get("outputTranscription")) for k, m in
                        zip(kinds(messages), [m for m in messages if "serverContent" in m], strict=False)])
        await session.aclose()
    assert answers[0] == answers[1]


async def test_a_session_that_ends_in_a_pause_leaves_no_work_running() -> None:
    asr, llm, tts = ListASR("hello there"), RecordingLLM(), CountingTTS()
    session = session_with(asr, llm, tts)
    await send(session, setup())
    await session.outbox.get()
    await send(session, tone_frame(0.6, loud=True))
    await send(session, tone_frame(0.2, loud=False))
    await until(lambda: bool(llm.streams))
    await session.aclose()
    assert llm.streams[0]["closed"] and await sent(session) == ["voiceActivity"]
