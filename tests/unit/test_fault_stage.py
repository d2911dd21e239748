"""The fault stage (server/fault_stage.py) on a virtual clock: what leaves when, in which order, and what never does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from localive.clock import VirtualClock
from localive.protocol import server_messages as out
from localive.protocol.errors import Close, close_for
from localive.protocol.faults import Faults
from localive.server.fault_stage import FaultStage, Outgoing, audio_seconds

SETTLE = 30  # event-loop passes after each step of the clock
AUDIO_200MS = out.model_audio(bytes(9600), 24000)  # 200 ms of 24 kHz 16-bit mono
TURN_COMPLETE = out.turn_complete(None)
INTERRUPTED = out.interrupted()
NORMAL_END = close_for(None)


class Run:
    """A stage piping a queue, and what it yielded with the clock's time: (seconds since the start, message)."""

    def __init__(self, faults: Faults, hold_max: int = 64) -> None:
        self.clock = VirtualClock(0.0)
        self.source: asyncio.Queue[Outgoing] = asyncio.Queue()
        self.stage = FaultStage(faults, clock=self.clock, hold_max=hold_max)
        self.got: list[tuple[float, Outgoing]] = []
        self.task: asyncio.Task[None] | None = None

    async def _consume(self) -> None:
        async with contextlib.aclosing(self.stage.pipe(self.source)) as messages:
            async for message in messages:
                self.got.append((round(self.clock.now, 6), message))

    async def __aenter__(self) -> Run:
        self.task = asyncio.create_task(self._consume())
        await self.step(0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        assert self.clock.sleepers == 0  # the stage's timer was cancelled with it

    async def send(self, *messages: Outgoing) -> None:
        for message in messages:
            self.source.put_nowait(message)
        await self.step(0)

    async def step(self, seconds: float) -> None:
        await self.clock.advance(seconds, settle=SETTLE)

    @property
    def messages(self) -> list[Outgoing]:
        return [message for _, message in self.got]

    @property
    def ended(self) -> bool:
        return self.task is not None and self.task.done()


def text(words: str) -> dict[str, object]:
    return out.model_text(words)


@pytest.fixture
def turn() -> list[Outgoing]:
    """A spoken turn as the session sends it: audio and its transcription, then the turn's end."""
    return [AUDIO_200MS, out.output_transcription("Hello"), AUDIO_200MS, out.output_transcription(" there"),
            out.generation_complete(), TURN_COMPLETE]


async def test_transcripts_leave_late_and_the_rest_goes_on_in_order(turn: list[Outgoing]) -> None:
    async with Run(Faults(transcript_delay_ms=800)) as run:
        await run.send(*turn)
        assert run.messages == [AUDIO_200MS, AUDIO_200MS, out.generation_complete(), TURN_COMPLETE]
        assert all(at == 0.0 for at, _ in run.got)
        await run.step(0.799)
        assert len(run.got) == 4
        await run.step(0.001)
        assert run.got[4:] == [(0.8, out.output_transcription("Hello")), (0.8, out.output_transcription(" there"))]


async def test_audio_at_half_real_time_holds_what_follows_it(turn: list[Outgoing]) -> None:
    async with Run(Faults(audio_pace=0.5)) as run:
        await run.send(*turn)
        assert run.got == []  # the first 200 ms chunk takes 400 ms to arrive
        await run.step(2.0)
        assert run.messages == turn  # order kept, transcripts included (not delayed here)
        assert [at for at, _ in run.got] == [0.4, 0.4, 0.8, 0.8, 0.8, 0.8]


async def test_pacing_starts_again_after_a_pause() -> None:
    async with Run(Faults(audio_pace=2.0)) as run:
        await run.send(AUDIO_200MS)
        await run.step(5.0)
        await run.send(AUDIO_200MS, AUDIO_200MS)
        await run.step(1.0)
        assert [at for at, _ in run.got] == [0.1, 5.1, 5.2]


async def test_audio_in_bursts_is_released_at_each_tick() -> None:
    async with Run(Faults(audio_burst_ms=1000)) as run:
        await run.step(0.1)
        await run.send(AUDIO_200MS, text("a"))
        await run.step(0.2)
        await run.send(AUDIO_200MS)
        await run.step(0.9)  # t = 1.2
        await run.send(AUDIO_200MS, TURN_COMPLETE)
        await run.step(1.0)
        assert run.got == [(1.0, AUDIO_200MS), (1.0, text("a")), (1.0, AUDIO_200MS), (2.0, AUDIO_200MS),
                           (2.0, TURN_COMPLETE)]


async def test_silence_after_n_turns_drops_everything_but_a_close() -> None:
    async with Run(Faults(silent_after_turns=1, transcript_delay_ms=100)) as run:
        await run.send(text("first"), out.output_transcription("first"), TURN_COMPLETE)
        await run.send(text("second"), TURN_COMPLETE, out.go_away(1))
        await run.step(10.0)
        assert run.messages == [text("first"), TURN_COMPLETE, out.output_transcription("first")]
        assert run.source.empty() and run.stage.turns == 1  # the session's messages are still taken (dropped)
        await run.send(NORMAL_END)
        assert run.messages[-1] == NORMAL_END and run.ended


async def test_silence_from_the_start_sends_not_even_setup_complete() -> None:
    async with Run(Faults(silent_after_turns=0)) as run:
        await run.send(out.setup_complete("s"), text("x"))
        await run.step(1.0)
        assert run.got == [] and run.source.empty()


async def test_a_spurious_interrupted_after_turn_n() -> None:
    async with Run(Faults(interrupted_after_turn=2, interrupted_delay_ms=500)) as run:
        await run.send(text("one"), TURN_COMPLETE)
        await run.step(1.0)
        assert INTERRUPTED not in run.messages
        await run.send(text("two"), TURN_COMPLETE)
        await run.step(0.2)
        await run.send(text("three"))
        await run.step(0.3)
        assert run.got[-3:] == [(1.0, TURN_COMPLETE), (1.2, text("three")), (1.5, INTERRUPTED)]
        await run.send(TURN_COMPLETE)
        await run.step(5.0)
        assert run.messages.count(INTERRUPTED) == 1  # after turn 2 only


async def test_a_close_during_a_tool_call_and_nothing_after_it() -> None:
    call = out.tool_call([("id-1", "turn_on_the_lights", {})])
    async with Run(Faults(close_after_tool_call_ms=200)) as run:
        await run.send(text("let me see"), call)
        await run.step(0.1)
        await run.send(text("too late"), TURN_COMPLETE)
        assert run.messages == [text("let me see"), call]
        await run.step(0.1)
        assert run.got[-1] == (0.2, Close(1011, "Internal error encountered."))
        assert run.ended and text("too late") not in run.messages


async def test_a_close_from_the_source_waits_for_what_is_before_it_and_ends_the_pipe() -> None:
    async with Run(Faults(audio_pace=1.0, transcript_delay_ms=1000)) as run:
        await run.send(AUDIO_200MS, out.output_transcription("late"), NORMAL_END, text("never"))
        await run.step(0.2)
        assert run.got == [(0.2, AUDIO_200MS), (0.2, NORMAL_END)] and run.ended  # the late transcript is lost


async def test_the_hold_is_bounded_and_the_rest_waits_in_the_source() -> None:
    async with Run(Faults(audio_pace=0.5), hold_max=4) as run:
        await run.send(*[AUDIO_200MS] * 20, TURN_COMPLETE)
        assert run.stage.held <= 5 and run.source.qsize() >= 16  # the source's bound applies backpressure
        for _ in range(20):
            await run.step(0.4)
            assert run.stage.held <= 5
        await run.step(0.1)
        assert run.messages == [AUDIO_200MS] * 20 + [TURN_COMPLETE]
        assert [at for at, _ in run.got][:3] == [0.4, 0.8, 1.2] and run.got[-1][0] == 8.0


async def test_closing_the_pipe_cancels_its_tasks() -> None:
    clock = VirtualClock(0.0)
    source: asyncio.Queue[Outgoing] = asyncio.Queue()
    for message in (text("a"), out.output_transcription("b")):
        source.put_nowait(message)
    pipe: AsyncIterator[Outgoing] = FaultStage(Faults(transcript_delay_ms=500), clock=clock).pipe(source)
    async with contextlib.aclosing(pipe):  # type: ignore[type-var]  # an async generator, typed as an iterator here
        assert await anext(pipe) == text("a")
        waiting = asyncio.create_task(anext(pipe))  # holds the transcript: a timer and a pending get()
        await clock.advance(0, settle=SETTLE)
        assert clock.sleepers == 1
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
    assert clock.sleepers == 0 and source.empty()


async def test_one_source_per_stage() -> None:
    stage = FaultStage(Faults(audio_pace=1.0))
    source: asyncio.Queue[Outgoing] = asyncio.Queue()
    source.put_nowait(NORMAL_END)
    assert [m async for m in stage.pipe(source)] == [NORMAL_END]
    with pytest.raises(RuntimeError, match="one source"):
        await anext(stage.pipe(source))


def test_audio_length_from_the_message_alone() -> None:
    assert audio_seconds(AUDIO_200MS["serverContent"]) == pytest.approx(0.2)
    assert audio_seconds(out.model_audio(bytes(3200), 16000)["serverContent"]) == pytest.approx(0.1)
    assert audio_seconds(out.model_audio(bytes(4801), 24000)["serverContent"]) == pytest.approx(4801 / 48000)
    assert audio_seconds(text("hi")["serverContent"]) == 0.0
    assert audio_seconds({"modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm", "data": "AAAA"}}]}}) \
        == pytest.approx(3 / 48000)
