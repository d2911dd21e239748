"""The one clock (localive/clock.py): `VirtualClock` itself, playback pacing on it (session/speech_out.py), and
the server handing its one clock on (server/state.py)."""

from __future__ import annotations

import asyncio
import json

import pytest

from localive.clock import SYSTEM_CLOCK, VirtualClock
from localive.engines.llm.emulator import EmulatorLLM
from localive.models.registry import ModelRegistry
from localive.server.app import LIVE_PATH, create_app
from localive.server.auth import TOKEN_EXPIRED, Access, KeyRing, Token, new_token_name
from localive.server.state import ServerSettings, ServerState
from localive.session.engines import Engines
from localive.session.lifetime import Limits
from localive.session.speech_out import Playback
from localive.session.timings import TurnTimings

EPS = 2.0**-10  # about a millisecond, exact in binary: times on either side of a moment stay exact


async def test_sleepers_wake_in_order_of_their_time_with_the_clock_at_that_time() -> None:
    clock = VirtualClock(0.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now))

    tasks = [asyncio.create_task(sleeper(name, s)) for name, s in (("c", 3.0), ("a", 1.0), ("b", 2.0), ("a2", 1.0))]
    await asyncio.sleep(0)
    assert clock.sleepers == 4
    await clock.advance(1.0 - EPS)
    assert woke == []
    await clock.advance(10.0)
    assert woke == [("a", 1.0), ("a2", 1.0), ("b", 2.0), ("c", 3.0)]  # each ran at its own wake time
    assert clock.now == 11.0 - EPS and clock.sleepers == 0
    await asyncio.gather(*tasks)


async def test_a_task_just_started_sleeps_from_the_present() -> None:
    clock = VirtualClock(0.0)
    task = asyncio.create_task(clock.sleep(2.0))  # not started yet when advance is called
    await clock.advance(1.0)
    assert not task.done()
    await clock.advance(1.0)
    assert task.done()


async def test_a_cancelled_sleeper_is_forgotten_and_zero_only_yields() -> None:
    clock = VirtualClock(0.0)
    task = asyncio.create_task(clock.sleep(5.0))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.sleepers == 0
    await clock.sleep(0)  # returns at once: no advance needed
    await clock.sleep(-1.0)
    await clock.advance(5.0)
    assert clock.time() == clock.monotonic() == 5.0


async def test_the_system_clock_reads_the_machine() -> None:
    assert SYSTEM_CLOCK.monotonic() <= SYSTEM_CLOCK.monotonic()
    assert SYSTEM_CLOCK.time() > 1.6e9
    await SYSTEM_CLOCK.sleep(0)


# --- playback pacing ---------------------------------------------------------------------------------------

CLAUSES = (("One two three four.", 2.0), ("Five six seven eight nine ten eleven twelve.", 4.0), ("The end.", 1.0))


def played(clock: VirtualClock) -> Playback:
    playback = Playback(clock)
    for text, seconds in CLAUSES:
        playback.add(text, seconds)
    return playback


@pytest.mark.parametrize(("after_s", "heard"), [
    (0.0, ""),
    (1.0, "One two"),
    (2.0, "One two three four."),
    (2.0 + 4.0 * 0.3125, "One two three four. Five six"),  # 0.3125 of 8 words: 2.5 → 2
    (6.0 - EPS, "One two three four. Five six seven eight nine ten eleven"),
    (6.0, "One two three four. Five six seven eight nine ten eleven twelve."),
    (7.0, "One two three four. Five six seven eight nine ten eleven twelve. The end."),
    (100.0, "One two three four. Five six seven eight nine ten eleven twelve. The end."),
])
async def test_what_was_heard_is_the_first_seconds_worth(after_s: float, heard: str) -> None:
    clock = VirtualClock()
    playback = played(clock)
    await clock.advance(after_s)
    assert playback.heard_text() == heard
    assert playback.remaining_s() == max(0.0, 7.0 - after_s)


async def test_playback_starts_with_the_first_clause_sent() -> None:
    clock = VirtualClock()
    playback = Playback(clock)
    assert playback.remaining_s() == 0.0 and playback.heard_text() == ""
    await clock.advance(30.0)  # nothing was sent yet: nothing plays
    playback.add("Hello there.", 2.0)
    await clock.advance(1.0)
    playback.add("How are you?", 2.0)  # queued behind the first clause
    assert playback.remaining_s() == 3.0 and playback.heard_text() == "Hello"


async def test_played_out_waits_exactly_the_remaining_audio() -> None:
    clock = VirtualClock()
    playback = played(clock)
    await clock.advance(2.5)
    done = asyncio.create_task(playback.played_out())
    await asyncio.sleep(0)
    await clock.advance(4.5 - EPS)
    assert not done.done()
    await clock.advance(EPS)
    assert done.done() and playback.remaining_s() == 0.0


async def test_turn_timings_are_spans_of_the_session_clock() -> None:
    clock = VirtualClock()
    timings = TurnTimings(clock)
    await clock.advance(0.25)
    timings.mark_transcribed()
    await clock.advance(0.5)
    timings.mark_token()
    timings.mark_output()
    await clock.advance(1.0)
    timings.mark_token()  # only the first counts
    assert timings.log_fields().startswith("asr_done_ms=250.0 llm_first_token_ms=750.0 first_output_ms=750.0 ")


# --- the server's one clock ----------------------------------------------------------------------------------

async def test_a_token_session_through_the_server_ends_at_expire_time_of_the_server_clock() -> None:
    """One clock, built in the server's state, reaches the token's gate and expiry watch, the session and the work
    budget: a token's session, served by the ASGI app in-process, is closed exactly at its expireTime."""
    clock = VirtualClock()
    llm = EmulatorLLM()
    state = ServerState(settings=ServerSettings(), registry=ModelRegistry(), llms=None,  # type: ignore[arg-type]
                        engines=Engines(llm_for=lambda entry: llm), access=Access(KeyRing(["k"])), clock=clock,
                        limits=Limits(max_connection_s=1200, goaway_before_s=660))  # goAway at 9 min, on the clock
    assert state.access.clock is clock and state.budgets.clock is clock
    name, now = new_token_name(), clock.time()
    await state.access.tokens.add(name, Token(now + 600, now + 60, 1, "p"), now)
    sent: list[dict] = []
    setup_done, closed = asyncio.Event(), asyncio.Event()
    frames = [{"type": "websocket.connect"}, {"type": "websocket.receive", "text": json.dumps(
        {"setup": {"model": "gemini-2.0-flash-live-001", "generationConfig": {"responseModalities": ["TEXT"]}}})}]

    async def receive() -> dict:
        if frames:
            return frames.pop(0)
        await closed.wait()  # the client says nothing more until the server closes
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(event: dict) -> None:
        sent.append(event)
        if "setupComplete" in event.get("text", ""):
            setup_done.set()
        if event["type"] == "websocket.close":
            closed.set()

    path = LIVE_PATH.format(version="v1beta") + "Constrained"
    scope = {"type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws", "path": path,
             "raw_path": path.encode(), "query_string": f"access_token={name}".encode(),
             "headers": [(b"host", b"127.0.0.1:8765")], "server": ("127.0.0.1", 8765),
             "client": ("127.0.0.1", 50000), "subprotocols": []}
    served = asyncio.create_task(create_app(state)(scope, receive, send))
    await asyncio.wait_for(setup_done.wait(), 10)
    await clock.advance(540 - EPS)
    assert "goAway" not in sent[-1].get("text", "")
    await clock.advance(EPS)
    assert json.loads(sent[-1]["text"]) == {"goAway": {"timeLeft": "660s"}}  # the session's timer
    await clock.advance(60 - EPS)
    assert not closed.is_set()
    await clock.advance(EPS)  # the token's expireTime
    await asyncio.wait_for(closed.wait(), 10)
    assert sent[-1] == {"type": "websocket.close", "code": 1011, "reason": TOKEN_EXPIRED}
    await asyncio.wait_for(served, 10)
    assert state.active_sessions == 0
