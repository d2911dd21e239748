"""The generations of one model turn (session/model_turn.py runs them): reasoning first (`think`, thinkingConfig),
then each round streamed to the client as text parts or speech (`model_round`), stopping at a code block — run in
the sandbox (`execute`) — or at function calls — sent as `toolCall`, BLOCKING ones awaited (`call_functions`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from localive.engines.llm.base import LLM, PENDING_RESULT, CalledFunction, ChatMessage, FunctionCalls
from localive.engines.tts.base import Delivery
from localive.protocol import server_messages as out
from localive.session.code_blocks import CodeBlocks
from localive.session.config import SessionConfig
from localive.session.engines import Engines
from localive.session.history import Entry, History
from localive.session.outbox import Outbox
from localive.session.speech_out import Playback, speak
from localive.session.thinking import Thinking, reasoning_messages
from localive.session.timings import TurnTimings
from localive.session.tool_calls import ToolCalls, response_text
from localive.session.watchdog import CODE_STAGE, LLM_STAGE, Watchdog

THOUGHT_CHUNK_CHARS = 80  # thought parts are sent a line (or this many characters) at a time


@dataclass
class RoundResult:
    """One generation of a model turn: what it said, and the code or calls it asks to run next."""

    text: str
    calls: tuple[CalledFunction, ...] = ()
    code: str | None = None


class MalformedCall(Exception):
    """The model called a function with arguments that do not fit its declaration."""


async def think(llm: LLM, messages: list[ChatMessage], config: SessionConfig, thinking: Thinking, turn_id: int,
                outbox: Outbox, watchdog: Watchdog) -> str:
    """Let the model reason first, within the budget; with includeThoughts the reasoning is sent as thought
    parts (a line at a time), never spoken. Returns the reasoning."""
    params = replace(config.sampling, max_output_tokens=thinking.budget, stop=())
    said: list[str] = []
    pending = ""
    stream = watchdog.stream(LLM_STAGE, llm.stream(reasoning_messages(messages), params))
    try:
        async for item in stream:
            if not isinstance(item, str):
                continue
            said.append(item)
            pending += item
            if thinking.include_thoughts and ("\n" in item or len(pending) >= THOUGHT_CHUNK_CHARS):
                await outbox.put(out.model_thought(pending), turn=turn_id)
                pending = ""
    finally:
        if (close := getattr(stream, "aclose", None)) is not None:
            await close()
    if thinking.include_thoughts and pending.strip():
        await outbox.put(out.model_thought(pending), turn=turn_id)
    return "".join(said)


async def model_round(stream: AsyncIterator[str | FunctionCalls], *, config: SessionConfig, engines: Engines,
                      outbox: Outbox, watchdog: Watchdog, turn_id: int, playback: Playback, timings: TurnTimings,
                      delivery: Delivery, pieces: list[str]) -> RoundResult:
    """Stream one generation to the client (text parts, or speech); stop at a code block or function calls.
    `pieces`: the text parts sent (TEXT), to know what the user saw if the turn is interrupted."""
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
        assert engines.tts is not None and config.voice is not None
        await speak(prose(), tts=engines.tts, voice=config.voice, language=config.language, outbox=outbox,
                    turn=turn_id, playback=playback, transcribe=config.output_transcription, timings=timings,
                    delivery=delivery, watchdog=watchdog)
    else:
        async for piece in prose():
            pieces.append(piece)
            timings.mark_output()
            await outbox.put(out.model_text(piece), turn=turn_id)
    return RoundResult("".join(said), calls[0].calls if calls else (), blocks.code if blocks else None)


async def execute(code: str, *, engines: Engines, owner: str, history: History, outbox: Outbox, watchdog: Watchdog,
                  turn_id: int) -> None:
    """Run the model's code in the sandbox; the client sees the code and its result as parts."""
    sandbox = engines.tools.sandbox
    assert sandbox is not None  # checked at setup
    await outbox.put(out.executable_code(code), turn=turn_id)
    with watchdog.stage(CODE_STAGE):
        result = await sandbox.run(code, owner=owner)
    await outbox.put(out.code_execution_result(result.outcome, result.output), turn=turn_id)
    text = result.output if result.outcome == "OUTCOME_OK" else f"{result.outcome}: {result.output}"
    history.add_tool("code_execution", text or "(no output)")


async def call_functions(result: RoundResult, *, config: SessionConfig, tool_calls: ToolCalls, history: History,
                         outbox: Outbox, watchdog: Watchdog, turn_id: int) -> None:
    """Send `toolCall`; wait for the BLOCKING calls' responses (the event loop resolves them as `toolResponse`
    arrives); NON_BLOCKING ones stand in as "running"."""
    tools = config.tools
    for call in result.calls:
        declared = tools.function(call.name)
        problem = "not declared" if declared is None else declared.validate(call.args)
        if problem:
            raise MalformedCall(f"call of {call.name[:40]}: {problem}")
    pending = [tool_calls.issue(c, non_blocking=bool((f := tools.function(c.name)) and f.non_blocking),
                                turn=turn_id) for c in result.calls]
    history.add(Entry("model", result.text, result.calls, tuple(p.id for p in pending)))
    await outbox.put(out.tool_call([(p.id, p.call.name, p.call.args) for p in pending]))
    with watchdog.waiting():
        answers = await asyncio.gather(*(p.answer for p in pending if not p.non_blocking))
    by_id = {p.id: a for p, a in zip([p for p in pending if not p.non_blocking], answers, strict=True)}
    for p in pending:
        text = response_text(by_id[p.id]) if p.id in by_id else PENDING_RESULT
        history.add_tool(p.call.name, text)
