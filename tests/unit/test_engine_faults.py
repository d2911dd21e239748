"""Engine faults at every stage of a turn, and the turn watchdog (session/watchdog.py), with the shipped fakes and the
fault wrappers of engines/faults.py, in virtual time.

A stage that raises closes the session with 1011 and a reason naming it; a stage that hangs is ended by the watchdog
once the turn has produced nothing for its bound (1011, naming the stage, counted). Either way the client can resume
from its last handle in a new session on the same store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any, Literal

import pytest

from localive.clock import VirtualClock
from localive.engines.asr.fake import ScriptedASR
from localive.engines.faults import Fault, FaultyASR, FaultyLLM, FaultySandbox, FaultyStore, FaultyTTS, InjectedFault
from localive.engines.llm.emulator import EmulatorLLM, EmulatorScript
from localive.engines.speech_remote import ASR_STAGE, TTS_STAGE, BackendFailed
from localive.engines.tts.fake import ToneTTS
from localive.engines.turn.base import FakeEndOfTurn
from localive.engines.vad.energy import EnergyVAD
from localive.models.registry import ModelRegistry
from localive.protocol.errors import Close, StageFailed, close_for
from localive.server.app import healthz
from localive.server.state import ServerSettings, ServerState
from localive.session.engines import Engines
from localive.session.live import LiveSession
from localive.session.outbox import Outbox
from localive.session.watchdog import CODE_STAGE, LLM_STAGE, STORE_STAGE, Stalled, Watchdog
from localive.stores.sqlite import SqliteStore
from localive.testing.audio import tone_frame
from localive.testing.session import send
from localive.tools.loader import ToolEngines
from localive.tools.sandbox import RunResult

BOUND_S = 60.0
WAIT_S = 10.0  # generous real-time bounds on waiting for the session: a failure, never a hang of the test
SCRIPT = EmulatorScript.from_dict({"reply": [
    {"match": "primes", "code": "print(5117)", "text": "The sum is {result}."},
    {"match": "story", "text": "Once upon a time there was a fox. It lived in a wood. That is the whole story."},
    {"match": "weather", "call": "get_weather", "args": {"city": "Paris"}, "text": "Weather: {result}"},
    {"match": "slow", "text": "one, two, three, four, five, six, seven, eight, nine, ten.", "delay_ms": 30},
]})
WEATHER = {"functionDeclarations": [{"name": "get_weather", "parameters": {
    "type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}}]}

Mode = Literal["raise", "hang"]


class FakeSandbox:
    async def run(self, code: str, *, owner: str | None = None) -> RunResult:
        return RunResult("OUTCOME_OK", "5117\n")


@dataclass
class Rig:
    """A session whose one stage is faulty, its store (the real one, under any faulty wrapper) and virtual clock."""

    session: LiveSession
    store: SqliteStore
    clock: VirtualClock
    struck: asyncio.Event
    stalls: list[int] = field(default_factory=list)
    handles: list[str] = field(default_factory=list)  # every resumable handle the client was sent


def plain_engines() -> Engines:
    llm = EmulatorLLM(SCRIPT)
    return Engines(llm_for=lambda entry: llm, asr=ScriptedASR(["hello there", "tell me a story"]),
                   tts=ToneTTS(ms_per_char=2.0), vad_factory=EnergyVAD, tools=ToolEngines(sandbox=FakeSandbox()))


def rig(stage: str, mode: Mode, *, watchdog_s: float = BOUND_S, **engine_fields: Any) -> Rig:
    """A session with `stage` failing in `mode`; `engine_fields` replace more of the plain engines."""
    engines, store = plain_engines(), SqliteStore(":memory:")
    session_store: Any = store
    faulty: Any
    match stage:
        case "asr":  # the first utterance is heard, the second fails
            faulty = FaultyASR(ScriptedASR(["hello there", "tell me a story"]), Fault(mode, after=1))
            engines = replace(engines, asr=faulty)
        case "llm-first" | "llm-mid":  # before the first token; after three words
            faulty = FaultyLLM(EmulatorLLM(SCRIPT), Fault(mode, after=0 if stage == "llm-first" else 3))
            engines = replace(engines, llm_for=lambda entry: faulty)
        case "tts-first" | "tts-mid":  # the answer's first clause; its second
            faulty = FaultyTTS(ToneTTS(ms_per_char=2.0), Fault(mode, after=0 if stage == "tts-first" else 1))
            engines = replace(engines, tts=faulty)
        case "code":
            faulty = FaultySandbox(FakeSandbox(), Fault(mode))
            engines = replace(engines, tools=ToolEngines(sandbox=faulty))
        case "store":  # setup's save succeeds; the one at the end of the first turn fails
            faulty = session_store = FaultyStore(store, save=Fault(mode, after=1))
        case _:
            raise AssertionError(stage)
    engines = replace(engines, **engine_fields)
    clock = VirtualClock()
    stalls: list[int] = []
    session = LiveSession(registry=ModelRegistry(), engines=engines, session_id="f", store=session_store,
                          clock=clock, turn_watchdog_s=watchdog_s, on_stall=lambda: stalls.append(1))
    return Rig(session, store, clock, faulty.struck, stalls)


def setup(modality: str = "TEXT", handle: str | None = None, **extra: object) -> dict:
    return {"setup": {"model": "gemini-2.0-flash-live-001", "generationConfig": {"responseModalities": [modality]},
                      "sessionResumption": {"handle": handle} if handle else {}, **extra}}


def say(text: str) -> dict:
    return {"clientContent": {"turns": [{"role": "user", "parts": [{"text": text}]}], "turnComplete": True}}


async def speak(session: LiveSession) -> None:
    """An utterance: silence, a tone the energy VAD hears as speech, then enough silence to end the turn."""
    for frame in (tone_frame(0.2, loud=False), tone_frame(0.6, loud=True), tone_frame(0.7, loud=False)):
        await send(session, frame)


async def read(r: Rig, until: Callable[[dict], bool] | None = None) -> tuple[list[dict], Close | None]:
    """The session's messages up to a Close, or up to the first message `until` accepts; handles are noted."""
    messages: list[dict] = []
    while True:
        message = await asyncio.wait_for(r.session.outbox.get(), WAIT_S)
        if isinstance(message, Close):
            return messages, message
        messages.append(message)
        update = message.get("sessionResumptionUpdate", {})
        if update.get("resumable"):
            r.handles.append(update["newHandle"])
        if until is not None and until(message):
            return messages, None


def turn_complete(message: dict) -> bool:
    return bool(message.get("serverContent", {}).get("turnComplete"))


STAGES = {"asr": ASR_STAGE, "llm-first": LLM_STAGE, "llm-mid": LLM_STAGE, "tts-first": TTS_STAGE,
          "tts-mid": TTS_STAGE, "code": CODE_STAGE, "store": STORE_STAGE}


async def run_into_the_fault(r: Rig, stage: str) -> list[dict]:
    """Set the session up and give it the turn that meets the fault; returns what it was sent before that turn."""
    spoken = stage.startswith("tts")
    tools = {"tools": [{"codeExecution": {}}]} if stage == "code" else {}
    await send(r.session, setup("AUDIO" if spoken else "TEXT", **tools))
    before, _ = await read(r, lambda m: "sessionResumptionUpdate" in m)
    if stage == "asr":  # one exchange that works, then the recogniser fails on the next utterance
        await speak(r.session)
        more, _ = await read(r, turn_complete)
        before += more
        await speak(r.session)
    else:
        await send(r.session, say("sum the primes" if stage == "code" else "tell me a story"))
    return before


@pytest.mark.parametrize("stage", list(STAGES))
async def test_a_failing_stage_closes_the_session_naming_it_and_it_resumes(stage: str) -> None:
    r = rig(stage, "raise")
    before = await run_into_the_fault(r, stage)
    messages, close = await read(r)
    assert close is not None and close.code == 1011, close
    assert STAGES[stage] in close.reason and "failed" in close.reason
    assert r.struck.is_set() and not r.stalls  # a failure, not a stall
    if stage == "llm-mid":  # the words before the failure reached the client
        assert any("modelTurn" in m.get("serverContent", {}) for m in messages)
    await asyncio.wait_for(r.session.aclose(), WAIT_S)
    await resumes(r, heard=["hello there"] if stage == "asr" else [], before=before)


@pytest.mark.parametrize("stage", list(STAGES))
async def test_a_hanging_stage_is_ended_by_the_watchdog_naming_it_and_it_resumes(stage: str) -> None:
    r = rig(stage, "hang")
    before = await run_into_the_fault(r, stage)
    await asyncio.wait_for(r.struck.wait(), WAIT_S)
    await r.clock.advance(BOUND_S - 1)
    assert not any(isinstance(m, Close) for m in list_outbox(r.session.outbox))
    for _ in range(3):  # a stage may still run a little after the fault (the LLM writing ahead of a hung synthesiser)
        await r.clock.advance(BOUND_S)
        if any(isinstance(m, Close) for m in list_outbox(r.session.outbox)):
            break
    _, close = await read(r)
    assert close is not None and close.code == 1011, close
    assert f"produced nothing for {BOUND_S:g} s" in close.reason and STAGES[stage] in close.reason, close.reason
    assert r.stalls == [1]
    await asyncio.wait_for(r.session.aclose(), WAIT_S)
    await resumes(r, heard=["hello there"] if stage == "asr" else [], before=before)


def list_outbox(outbox: Outbox) -> list[object]:
    return [item.message for item in outbox._items]


async def resumes(r: Rig, *, heard: list[str], before: list[dict]) -> None:
    """A new session on the same store, from the client's last handle: the conversation up to it is back, and the
    session answers."""
    assert r.handles, before
    engines = plain_engines()
    second = LiveSession(registry=ModelRegistry(), engines=engines, session_id="g", store=r.store)
    await send(second, setup(handle=r.handles[-1]))
    assert [t.text for t in second.history if t.role == "user"] == heard
    again = Rig(second, r.store, r.clock, asyncio.Event())
    await read(again, lambda m: "sessionResumptionUpdate" in m)
    await send(second, say("hello again"))
    messages, close = await read(again, turn_complete)
    assert close is None and any("modelTurn" in m.get("serverContent", {}) for m in messages)
    await second.aclose()


# --- the store outside turns: setup, resumption, a session's end -------------------------------------------------

async def test_a_failing_store_at_setup_or_on_resumption_closes_naming_it() -> None:
    store = SqliteStore(":memory:")
    saving = LiveSession(registry=ModelRegistry(), engines=plain_engines(), session_id="a",
                         store=FaultyStore(store, save=Fault()))
    with pytest.raises(StageFailed) as failed:
        await send(saving, setup())
    assert close_for(failed.value).code == 1011 and STORE_STAGE in close_for(failed.value).reason
    await saving.aclose()

    first = LiveSession(registry=ModelRegistry(), engines=plain_engines(), session_id="b", store=store)
    await send(first, setup())
    await first.outbox.get()
    handle = (await first.outbox.get())["sessionResumptionUpdate"]["newHandle"]
    await first.aclose()
    loading = LiveSession(registry=ModelRegistry(), engines=plain_engines(), session_id="c",
                          store=FaultyStore(store, load=Fault(error=lambda: BackendFailed(STORE_STAGE, "HTTP 503"))))
    with pytest.raises(BackendFailed, match="session store backend failed: HTTP 503"):  # a LiveError passes as is
        await send(loading, setup(handle=handle))
    await loading.aclose()


async def test_a_hanging_store_on_resumption_is_bounded_by_the_watchdog() -> None:
    store, clock, stalls = SqliteStore(":memory:"), VirtualClock(), []
    first = LiveSession(registry=ModelRegistry(), engines=plain_engines(), session_id="b", store=store)
    await send(first, setup())
    await first.outbox.get()
    handle = (await first.outbox.get())["sessionResumptionUpdate"]["newHandle"]
    await first.aclose()
    hanging = FaultyStore(store, load=Fault("hang"))
    second = LiveSession(registry=ModelRegistry(), engines=plain_engines(), session_id="c", store=hanging,
                         clock=clock, on_stall=lambda: stalls.append(1))
    setting_up = asyncio.create_task(send(second, setup(handle=handle)))
    await asyncio.wait_for(hanging.struck.wait(), WAIT_S)
    await clock.advance(BOUND_S)
    with pytest.raises(Stalled) as stalled:
        await asyncio.wait_for(setting_up, WAIT_S)
    assert STORE_STAGE in stalled.value.reason and close_for(stalled.value).code == 1011 and stalls == [1]
    await second.aclose()


@pytest.mark.parametrize("mode", ["raise", "hang"])
async def test_a_store_failing_at_the_sessions_end_does_not_keep_it_open(mode: Mode,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    """Before: an exception from session_ended escaped aclose(), so the server skipped its close frame and never
    gave the session's slot back."""
    clock = VirtualClock()
    store = FaultyStore(SqliteStore(":memory:"), ended=Fault(mode))
    session = LiveSession(registry=ModelRegistry(), engines=plain_engines(), session_id="e", store=store, clock=clock)
    await send(session, setup())
    closing = asyncio.create_task(session.aclose())
    await asyncio.wait_for(store.struck.wait(), WAIT_S)
    await clock.advance(BOUND_S)
    with caplog.at_level(logging.WARNING, "localive.session"):
        await asyncio.wait_for(closing, WAIT_S)
    assert STORE_STAGE in caplog.text


# --- what is not a stall ------------------------------------------------------------------------------------------

async def test_waiting_for_a_function_response_or_for_the_user_is_not_a_stall() -> None:
    r = rig("llm-first", "raise", llm_for=lambda entry: EmulatorLLM(SCRIPT))  # no fault: the plain LLM
    await send(r.session, setup(tools=[WEATHER]))
    await read(r, lambda m: "sessionResumptionUpdate" in m)
    await send(r.session, say("what is the weather"))
    messages, _ = await read(r, lambda m: "toolCall" in m)
    await r.clock.advance(10 * BOUND_S)  # the client takes its time to answer the BLOCKING call
    assert not r.session.outbox._items and not r.stalls
    call_id = messages[-1]["toolCall"]["functionCalls"][0]["id"]
    await send(r.session, {"toolResponse": {"functionResponses": [
        {"id": call_id, "name": "get_weather", "response": {"output": "sunny"}}]}})
    messages, close = await read(r, turn_complete)
    assert close is None
    await r.clock.advance(10 * BOUND_S)  # between turns: the user's move
    await send(r.session, say("tell me a story"))
    _, close = await read(r, turn_complete)
    assert close is None and not r.stalls
    await r.session.aclose()


async def test_with_the_watchdog_off_a_hang_is_only_ended_by_the_session_end() -> None:
    r = rig("llm-first", "hang", watchdog_s=0)
    await send(r.session, setup())
    await read(r, lambda m: "sessionResumptionUpdate" in m)
    await send(r.session, say("tell me a story"))
    await asyncio.wait_for(r.struck.wait(), WAIT_S)
    await r.clock.advance(100 * BOUND_S)
    assert not any(isinstance(m, Close) for m in list_outbox(r.session.outbox)) and not r.stalls
    await asyncio.wait_for(r.session.aclose(), WAIT_S)  # still cancels the hung turn


async def test_the_watchdog_counts_silence_only_while_the_turn_works() -> None:
    clock, outbox, stalls = VirtualClock(), Outbox(2), []
    watchdog = Watchdog("w", outbox, clock, BOUND_S, on_stall=lambda: stalls.append(1))
    turn = asyncio.create_task(asyncio.Event().wait())
    watchdog.watch(turn)
    await clock.advance(BOUND_S - 1)
    await outbox.put({"serverContent": {}})  # a message: progress
    await clock.advance(BOUND_S - 1)
    with watchdog.stage(LLM_STAGE):  # a token, a transcript…: progress when the call returns
        pass
    await clock.advance(BOUND_S - 1)
    with watchdog.waiting():  # the client's move
        await clock.advance(3 * BOUND_S)
    await clock.advance(BOUND_S - 1)
    await outbox.put({"serverContent": {}})  # the outbox is full: the client is not reading
    await clock.advance(3 * BOUND_S)
    assert watchdog.expired is None and not turn.done() and not stalls
    await outbox.get()
    await outbox.get()
    await clock.advance(BOUND_S)  # the client took them: nothing has come since the last one, long ago
    assert watchdog.expired is not None and stalls == [1]
    assert await outbox.get() == close_for(watchdog.expired)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(turn, WAIT_S)
    assert "produced nothing for 60 s." in watchdog.expired.reason  # no stage was running


async def test_a_stage_names_itself_and_passes_live_errors_on() -> None:
    watchdog = Watchdog("w", Outbox(), VirtualClock())
    with pytest.raises(StageFailed, match="The speech synthesis stage failed: internal error") as failed:
        with watchdog.stage(TTS_STAGE):
            raise InjectedFault("boom: /secret/path")
    assert "secret" not in failed.value.reason and isinstance(failed.value.__cause__, InjectedFault)
    with pytest.raises(BackendFailed), watchdog.stage(TTS_STAGE):
        raise BackendFailed(TTS_STAGE, "HTTP 500")


# --- a failure off the turn: the recogniser judging a short utterance while the model talks --------------------

async def test_a_recogniser_failing_on_a_backchannel_closes_the_session() -> None:
    """Before: the backchannel task died with the exception and nobody noticed; the session went on as if the user
    had said nothing."""
    asr = FaultyASR(ScriptedASR(["Mm-hm."]), Fault())
    clock = VirtualClock()
    llm = EmulatorLLM(SCRIPT, clock=clock)
    engines = Engines(llm_for=lambda entry: llm, asr=asr, tts=ToneTTS(ms_per_char=40.0, clock=clock),
                      vad_factory=EnergyVAD, end_of_turn=FakeEndOfTurn(1.0),
                      semantic_families=frozenset({"half-cascade"}))
    session = LiveSession(registry=ModelRegistry(), engines=engines, session_id="bc", clock=clock)
    r = Rig(session, SqliteStore(":memory:"), clock, asr.struck)
    await send(session, {"setup": {"model": "gemini-2.0-flash-live-001",
                                   "generationConfig": {"responseModalities": ["AUDIO"]}}})
    await session.outbox.get()
    await send(session, say("slow"))
    await clock.advance(0.1)
    assert len(session.outbox) > 0  # the model has started to speak (a word every 30 ms, in virtual time)
    await clock.advance(0.3)
    for frame in (tone_frame(0.3, loud=True), tone_frame(0.4, loud=False)):
        await send(session, frame)
    _, close = await read(r)
    assert close is not None and close.code == 1011 and ASR_STAGE in close.reason
    await session.aclose()


# --- the server counts stalls ------------------------------------------------------------------------------------

async def test_healthz_reports_the_stalls() -> None:
    state = ServerState(settings=ServerSettings(), registry=ModelRegistry(), llms=None,  # type: ignore[arg-type]
                        engines=None)  # type: ignore[arg-type]
    state.count_stall()
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(localive=state)), headers={},
                              query_params={})
    response = await healthz(request)  # type: ignore[arg-type]
    assert b'"stalls":1' in response.body


class StubbornLLM(EmulatorLLM):
    """Says one word, then holds on: the first cancellation (an interruption) is ignored, as by an engine that does
    not let go; the second (the session's end) is obeyed."""

    async def stream(self, messages, params, functions=()):  # type: ignore[no-untyped-def]
        yield "Well"
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass
        await asyncio.Event().wait()


async def test_an_answer_that_does_not_stop_ends_the_session_on_the_sessions_clock() -> None:
    """An interruption waits INTERRUPT_TIMEOUT_S of the session's clock for the turn to stop; a turn that does not
    ends the session (1011, saying so) instead of running on beside the next one."""
    from localive.session.turn import INTERRUPT_TIMEOUT_S, TurnDidNotStop

    clock = VirtualClock()
    llm = StubbornLLM(SCRIPT)
    session = LiveSession(registry=ModelRegistry(), engines=replace(plain_engines(), llm_for=lambda entry: llm),
                          session_id="s", clock=clock)
    await send(session, {"setup": {"model": "gemini-2.0-flash-live-001",
                                   "generationConfig": {"responseModalities": ["TEXT"]}}})
    assert "setupComplete" in await asyncio.wait_for(session.outbox.get(), WAIT_S)
    await send(session, say("tell me a story"))
    first = await asyncio.wait_for(session.outbox.get(), WAIT_S)
    assert first["serverContent"]["modelTurn"]["parts"][0]["text"] == "Well"
    interrupting = asyncio.create_task(send(session, say("stop")))
    await clock.advance(INTERRUPT_TIMEOUT_S - 0.01)
    assert not interrupting.done()  # still waiting for the turn to stop
    await clock.advance(0.02)
    assert interrupting.done()  # at once, in virtual time
    with pytest.raises(TurnDidNotStop) as refused:
        await interrupting
    close = close_for(refused.value)
    assert close.code == 1011 and "did not stop" in close.reason
    await asyncio.wait_for(session.aclose(), WAIT_S)  # the session's end cancels the turn for good
