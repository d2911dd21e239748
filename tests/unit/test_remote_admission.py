"""Which sessions a remote backend admits: its session slots and its down state (engines/remote_backend.py), with
the emulator LLM and the remote speech engines pointed at a port where nothing listens — admission asks them
nothing but GET /models. The same against the real servers: tests/integration/test_remote_speech.py."""

from __future__ import annotations

import json

import httpx2
import pytest

from localive.clock import VirtualClock
from localive.engines import remote_backend
from localive.engines.asr.openai_audio import OpenAITranscriptionASR
from localive.engines.llm.emulator import EmulatorLLM
from localive.engines.remote_backend import BackendHealth
from localive.engines.speech_remote import ASR_STAGE, TTS_STAGE, RemoteSpeech
from localive.engines.tts.openai_speech import OpenAISpeechTTS
from localive.models.registry import ModelRegistry
from localive.protocol.errors import OVERLOADED, Overloaded, close_for
from localive.protocol.parse import parse_client_message
from localive.session.engines import Engines
from localive.session.live import LiveSession
from localive.testing.server import free_port

MODEL = "models/gemini-2.0-flash-live-001"


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there: connections are refused


def speech_engines(asr: OpenAITranscriptionASR, tts: OpenAISpeechTTS) -> Engines:
    llm = EmulatorLLM()
    return Engines(llm_for=lambda entry: llm, asr=asr, tts=tts)


async def open_session(engines: Engines, modality: str, sessions: list[LiveSession]) -> LiveSession:
    """A session set up for `modality`; kept in `sessions` (closed by the test) even when refused."""
    session = LiveSession(registry=ModelRegistry(), engines=engines, session_id=f"s{len(sessions)}")
    sessions.append(session)
    setup = {"setup": {"model": MODEL, "generationConfig": {"responseModalities": [modality]}}}
    await session.handle(parse_client_message(json.dumps(setup)))
    return session


def refusal(caught: pytest.ExceptionInfo[Overloaded]) -> tuple[int, str]:
    close = close_for(caught.value)
    return close.code, close.reason


async def test_slots_are_taken_by_the_sessions_that_use_the_stage_and_given_back_however_they_end() -> None:
    asr = OpenAITranscriptionASR(dead_url(), "m", max_sessions=2)
    tts = OpenAISpeechTTS(dead_url(), "m", max_sessions=1)
    engines = speech_engines(asr, tts)
    sessions: list[LiveSession] = []
    try:
        speaking = await open_session(engines, "AUDIO", sessions)  # recognition 1 of 2, synthesis 1 of 1
        with pytest.raises(Overloaded) as caught:
            await open_session(engines, "AUDIO", sessions)  # takes recognition 2 of 2, then synthesis is full
        code, reason = refusal(caught)
        assert code == OVERLOADED and TTS_STAGE in reason and "try again later" in reason
        await sessions[-1].aclose()  # as the server does after a refused setup: its recognition slot comes back
        await open_session(engines, "TEXT", sessions)  # no synthesis needed: recognition 2 of 2
        with pytest.raises(Overloaded) as caught:
            await open_session(engines, "TEXT", sessions)  # every session needs recognition (any may send audio)
        code, reason = refusal(caught)
        assert code == OVERLOADED and ASR_STAGE in reason
        await speaking.aclose()
        await open_session(engines, "AUDIO", sessions)  # the first session's slots are free again
    finally:
        for session in sessions:
            await session.aclose()
    assert asr.slots.take() and asr.slots.take() and not asr.slots.take()  # every session gave its slots back
    assert tts.slots.take() and not tts.slots.take()


async def test_a_stage_known_down_refuses_the_sessions_that_need_it() -> None:
    asr = OpenAITranscriptionASR(dead_url(), "m")
    tts = OpenAISpeechTTS(dead_url(), "m")
    tts.health.down = True
    engines = speech_engines(asr, tts)
    sessions: list[LiveSession] = []
    try:
        with pytest.raises(Overloaded) as caught:
            await open_session(engines, "AUDIO", sessions)  # asked again: still refused
        code, reason = refusal(caught)
        assert code == OVERLOADED and reason == "The speech synthesis backend is not reachable now; try again later."
        await open_session(engines, "TEXT", sessions)  # a text answer does not need it
        asr.health.down = True
        with pytest.raises(Overloaded) as caught:
            await open_session(engines, "TEXT", sessions)
        assert ASR_STAGE in refusal(caught)[1]
    finally:
        for session in sessions:
            await session.aclose()


async def test_a_backend_known_down_is_asked_again_at_most_every_recheck_interval() -> None:
    answers: list[bool] = []
    up = False

    async def probe() -> bool:
        answers.append(up)
        return up

    clock = VirtualClock()
    health = BackendHealth(probe, timeout_s=1.0, clock=clock)
    assert await health.reachable() and not answers  # not known down: nothing is asked
    health.failed(httpx2.ReadTimeout("slow"))
    assert not health.down  # a slow answer is the session's failure, not the backend's absence
    health.failed(httpx2.ConnectError("refused"))
    assert health.down
    assert not await health.reachable() and not await health.reachable()
    assert answers == [False]  # the second session within RECHECK_S was refused without asking
    await clock.advance(remote_backend.RECHECK_S - 0.001)
    assert not await health.reachable() and answers == [False]
    await clock.advance(0.001)
    up = True
    assert await health.reachable() and not health.down and answers == [False, True]


def test_a_stage_down_at_start_stops_serve_unless_it_may_start_down() -> None:
    down_asr, down_tts = dead_url(), dead_url()
    start = RemoteSpeech(asr_url=down_asr, asr_model="m", tts_url=down_tts, tts_model="m",
                         tts_may_start_down=True).check()
    assert start.down == {TTS_STAGE} and len(start.down_lines) == 1 and TTS_STAGE in start.down_lines[0]
    assert len(start.problems) == 1 and ASR_STAGE in start.problems[0] and "not reachable" in start.problems[0]
    both = RemoteSpeech(asr_url=down_asr, asr_model="m", tts_url=down_tts, tts_model="m", asr_may_start_down=True,
                        tts_may_start_down=True).check()
    assert both.problems == () and both.down == {ASR_STAGE, TTS_STAGE}
    misconfigured = RemoteSpeech(tts_url=down_tts, tts_may_start_down=True).check()
    assert misconfigured.down == set() and "--tts-model" in misconfigured.problems[0]
