"""Tools in the session state machine, with the scripted emulator model (exact sequencing) and no sockets."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from localive.clock import SYSTEM_CLOCK, Clock, VirtualClock
from localive.engines.llm.emulator import EmulatorLLM, EmulatorScript
from localive.models.registry import ModelEntry, ModelRegistry
from localive.protocol.errors import Close, InvalidArgument, Unimplemented
from localive.session.engines import Engines
from localive.session.live import LiveSession
from localive.testing.session import send
from localive.tools.loader import ToolEngines

SCRIPT = EmulatorScript.from_dict({"reply": [
    {"match": "lights", "call": "turn_on_the_lights", "text": "Done: {result}"},
    {"match": "weather", "call": "get_weather", "args": {"city": "Paris"}, "text": "Weather: {result}"},
    {"match": "bad args", "call": "get_weather", "args": {"town": 3}, "text": "never"},
    {"match": "long task", "call": "long_task", "text": "Report: {result}", "pending": "Started it."},
    {"match": "slow", "text": "a b c d e f g h i j k l m n o p", "delay_ms": 30},
    {"match": "primes", "code": "print(5117)", "text": "The sum is {result}."},
]})

LIGHTS = {"name": "turn_on_the_lights"}
WEATHER = {"name": "get_weather", "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}},
                                                 "required": ["city"]}}
LONG = {"name": "long_task", "behavior": "NON_BLOCKING"}


@dataclass(frozen=True)
class Ran:
    outcome: str
    output: str


class FakeSandbox:
    """Stands in for the bubblewrap sandbox (tested on its own in test_sandbox.py)."""

    def __init__(self) -> None:
        self.codes: list[str] = []
        self.owners: list[str | None] = []

    async def run(self, code: str, *, owner: str | None = None) -> Ran:
        self.codes.append(code)
        self.owners.append(owner)
        return Ran("OUTCOME_OK", "5117\n")


def make_session(sandbox: FakeSandbox | None = None, clock: Clock = SYSTEM_CLOCK) -> LiveSession:
    llm = EmulatorLLM(SCRIPT, clock=clock)
    engines = Engines(llm_for=lambda entry: llm, tools=ToolEngines(sandbox=sandbox))  # type: ignore[arg-type]
    return LiveSession(registry=ModelRegistry(), engines=engines, session_id="s1", clock=clock)


async def start(session: LiveSession, tools: list[dict]) -> None:
    await send(session, {"setup": {"model": "gemini-2.0-flash-live-001", "tools": tools,
                                   "generationConfig": {"responseModalities": ["TEXT"]}}})
    assert "setupComplete" in await session.outbox.get()


async def say(session: LiveSession, text: str) -> None:
    await send(session, {"clientContent": {"turns": [{"role": "user", "parts": [{"text": text}]}],
                                           "turnComplete": True}})


async def receive_until(session: LiveSession, key: str) -> list[dict]:
    """Messages up to and including the first with `key` (toolCall, or a serverContent flag)."""
    messages = []
    while True:
        message = await asyncio.wait_for(session.outbox.get(), 5)
        assert not isinstance(message, Close), message
        messages.append(message)
        if key in message or message.get("serverContent", {}).get(key):
            return messages


def text_of(messages: list[dict]) -> str:
    parts = [p for m in messages for p in m.get("serverContent", {}).get("modelTurn", {}).get("parts", [])]
    return "".join(p.get("text", "") for p in parts)


async def start_long_task(session: LiveSession) -> dict:
    """Set up with the NON_BLOCKING long_task, have the model call it; returns the call once the turn is over."""
    await start(session, [{"functionDeclarations": [LONG]}])
    await say(session, "long task")
    message = next(m for m in await receive_until(session, "turnComplete") if "toolCall" in m)
    return message["toolCall"]["functionCalls"][0]


async def respond(session: LiveSession, call: dict, response: dict, **extra: object) -> None:
    await send(session, {"toolResponse": {"functionResponses": [
        {"id": call["id"], "name": call["name"], "response": response, **extra}]}})


async def test_blocking_call_is_answered_in_the_same_turn() -> None:
    session = make_session()
    await start(session, [{"functionDeclarations": [LIGHTS]}])
    await say(session, "Turn on the lights please")
    call = (await receive_until(session, "toolCall"))[-1]["toolCall"]["functionCalls"][0]
    assert call["name"] == "turn_on_the_lights" and call["args"] == {} and call["id"]
    await respond(session, call, {"result": "ok"})
    messages = await receive_until(session, "turnComplete")
    assert text_of(messages) == 'Done: {"result": "ok"}'
    assert {"serverContent": {"generationComplete": True}} in messages
    assert [t.role for t in session.history] == ["user", "model", "tool", "model"]
    await session.aclose()


async def test_call_ids_are_unique_and_arguments_fit_the_schema() -> None:
    session = make_session()
    await start(session, [{"functionDeclarations": [LIGHTS, WEATHER]}])
    ids = set()
    for _ in range(3):
        await say(session, "weather please")
        call = (await receive_until(session, "toolCall"))[-1]["toolCall"]["functionCalls"][0]
        assert call["args"] == {"city": "Paris"}
        ids.add(call["id"])
        await respond(session, call, {"output": "sunny"})
        assert text_of(await receive_until(session, "turnComplete")) == 'Weather: {"output": "sunny"}'
    assert len(ids) == 3
    await session.aclose()


async def test_arguments_that_break_the_schema_never_reach_the_client() -> None:
    session = make_session()
    await start(session, [{"functionDeclarations": [WEATHER]}])
    await say(session, "bad args")
    messages = await receive_until(session, "turnComplete")
    assert not any("toolCall" in m for m in messages)
    assert messages[-1]["serverContent"]["turnCompleteReason"] == "MALFORMED_FUNCTION_CALL"
    await session.aclose()


async def test_unknown_and_duplicate_response_ids_are_refused() -> None:
    session = make_session()
    await start(session, [{"functionDeclarations": [LIGHTS]}])
    with pytest.raises(InvalidArgument, match="unknown function call id 'nope'"):
        await respond(session, {"id": "nope", "name": "turn_on_the_lights"}, {})
    await say(session, "lights")
    call = (await receive_until(session, "toolCall"))[-1]["toolCall"]["functionCalls"][0]
    with pytest.raises(InvalidArgument, match="is 'turn_on_the_lights', not 'other'"):
        await send(session, {"toolResponse": {"functionResponses": [{"id": call["id"], "name": "other"}]}})
    await respond(session, call, {"ok": True})
    await receive_until(session, "turnComplete")
    with pytest.raises(InvalidArgument, match="already answered"):
        await respond(session, call, {"ok": True})
    await session.aclose()


async def test_interrupting_a_pending_call_cancels_it_and_a_late_answer_is_ignored() -> None:
    session = make_session()
    await start(session, [{"functionDeclarations": [LIGHTS]}])
    await say(session, "lights")
    call = (await receive_until(session, "toolCall"))[-1]["toolCall"]["functionCalls"][0]
    await say(session, "never mind, hello")  # new content interrupts the turn that waits for the call
    messages = await receive_until(session, "turnComplete")
    assert messages[0] == {"toolCallCancellation": {"ids": [call["id"]]}}
    assert messages[1] == {"serverContent": {"interrupted": True}}
    assert text_of(await receive_until(session, "turnComplete")) == "You said: never mind, hello"
    await respond(session, call, {"ok": True})  # late: dropped, the session goes on
    await say(session, "still here?")
    assert text_of(await receive_until(session, "turnComplete")) == "You said: still here?"
    assert not any(t.calls for t in session.history)  # the cancelled call left no trace in the model's context
    await session.aclose()


async def test_non_blocking_call_lets_the_conversation_go_on_and_when_idle_reports_after() -> None:
    session = make_session()
    await start(session, [{"functionDeclarations": [LONG]}])
    await say(session, "start the long task")
    messages = await receive_until(session, "turnComplete")
    call = next(m for m in messages if "toolCall" in m)["toolCall"]["functionCalls"][0]
    assert text_of(messages) == "Started it."
    await say(session, "hello meanwhile")
    assert text_of(await receive_until(session, "turnComplete")) == "You said: hello meanwhile"
    await respond(session, call, {"result": "42"}, scheduling="WHEN_IDLE")
    assert text_of(await receive_until(session, "turnComplete")) == 'Report: {"result": "42"}'
    await session.aclose()


async def test_when_idle_waits_for_the_current_answer_to_finish() -> None:
    session = make_session()
    call = await start_long_task(session)
    await say(session, "slow")
    first = await receive_until(session, "modelTurn")
    await respond(session, call, {"result": "done"}, scheduling="WHEN_IDLE")
    first += await receive_until(session, "turnComplete")
    assert text_of(first) == "a b c d e f g h i j k l m n o p"
    assert not any(m.get("serverContent", {}).get("interrupted") for m in first)
    assert text_of(await receive_until(session, "turnComplete")) == 'Report: {"result": "done"}'
    await session.aclose()


async def test_interrupt_scheduling_cuts_the_current_answer() -> None:
    session = make_session()
    call = await start_long_task(session)
    await say(session, "slow")
    await receive_until(session, "modelTurn")
    # the seed's example puts scheduling inside `response`
    await respond(session, call, {"result": "urgent", "scheduling": "INTERRUPT"})
    cut = await receive_until(session, "turnComplete")
    assert {"serverContent": {"interrupted": True}} in cut
    assert text_of(await receive_until(session, "turnComplete")) == 'Report: {"result": "urgent"}'
    await session.aclose()


async def test_silent_result_only_joins_the_context() -> None:
    clock = VirtualClock()
    session = make_session(clock=clock)
    call = await start_long_task(session)
    await respond(session, call, {"result": "quiet"}, scheduling="SILENT")
    await clock.advance(60)  # a quiet minute, in virtual time
    assert len(session.outbox) == 0 and not session.generating
    assert session.history[-1].role == "tool" and "quiet" in session.history[-1].text
    await session.aclose()


async def test_will_continue_allows_several_responses() -> None:
    session = make_session()
    call = await start_long_task(session)
    await respond(session, call, {"progress": "50%"}, scheduling="SILENT", willContinue=True)
    await respond(session, call, {"progress": "100%"}, scheduling="WHEN_IDLE")
    assert text_of(await receive_until(session, "turnComplete")) == 'Report: {"progress": "100%"}'
    with pytest.raises(InvalidArgument, match="already answered"):
        await respond(session, call, {"progress": "again"})
    await session.aclose()


async def test_code_execution_sends_code_and_result_then_answers_with_it() -> None:
    sandbox = FakeSandbox()
    session = make_session(sandbox)
    await start(session, [{"codeExecution": {}}])
    await say(session, "what is the sum of the first 50 primes")
    messages = await receive_until(session, "turnComplete")
    parts = [p for m in messages for p in m.get("serverContent", {}).get("modelTurn", {}).get("parts", [])]
    assert {"executableCode": {"language": "PYTHON", "code": "print(5117)"}} in parts
    assert {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "5117\n"}} in parts
    assert text_of(messages) == "The sum is 5117."
    assert sandbox.codes == ["print(5117)"]
    assert sandbox.owners == ["anonymous"]  # runs are rationed per owner (its principal by default)
    await session.aclose()


async def test_code_execution_is_refused_without_a_sandbox() -> None:
    session = make_session(None)
    with pytest.raises(Unimplemented, match="codeExecution is not available"):
        await send(session, {"setup": {"model": "gemini-2.0-flash-live-001", "tools": [{"codeExecution": {}}],
                                       "generationConfig": {"responseModalities": ["TEXT"]}}})
    await session.aclose()  # as the server does after the close


@pytest.mark.parametrize("tools, match", [
    ([{"codeExecution": {}}], "no-code does not support the codeExecution tool"),
    ([{"googleMaps": {}}], "googleMaps tool is not supported"),
])
async def test_tools_the_model_lacks_are_refused(tools: list[dict], match: str) -> None:
    llm = EmulatorLLM(SCRIPT)
    entry = ModelEntry("no-code", "emulator", "half-cascade", frozenset({"TEXT"}), frozenset({"googleSearch"}))
    engines = Engines(llm_for=lambda entry: llm, tools=ToolEngines(sandbox=FakeSandbox()))  # type: ignore[arg-type]
    session = LiveSession(registry=ModelRegistry([entry]), engines=engines, session_id="s1")
    with pytest.raises(Unimplemented, match=match):
        await send(session, {"setup": {"model": "no-code", "tools": tools}})
    await session.aclose()


@pytest.mark.parametrize("declaration, match", [
    ({"name": "bad name!"}, "Invalid function name"),
    ({"name": "f", "parametersJsonSchema": {"type": 5}}, "invalid parametersJsonSchema"),
    ({"name": "f", "parameters": {"type": "STRING"}}, "must describe an object"),
])
async def test_bad_declarations_are_invalid_arguments(declaration: dict, match: str) -> None:
    session = make_session()
    with pytest.raises(InvalidArgument, match=match):
        await send(session, {"setup": {"model": "gemini-2.0-flash-live-001",
                                       "tools": [{"functionDeclarations": [declaration]}],
                                       "generationConfig": {"responseModalities": ["TEXT"]}}})
    await session.aclose()


async def test_context_update_replaces_the_tools() -> None:
    session = make_session()
    await start(session, [])
    await say(session, "lights")
    assert text_of(await receive_until(session, "turnComplete")) == "You said: lights"
    await send(session, {"contextUpdate": {"tools": {"tools": [{"functionDeclarations": [LIGHTS]}]}}})
    await say(session, "lights")
    assert "toolCall" in (await receive_until(session, "toolCall"))[-1]
    await session.aclose()
