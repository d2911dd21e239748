"""Admission by load (server/load.py): the meter's smoothed readings, and `ServerState.admit` refusing new
sessions (1013) while letting sessions that resume with a handle in."""

from __future__ import annotations

import asyncio
import time

import pytest

from localive.engines.llm.emulator import EmulatorLLM
from localive.engines.llm.pool import LLMPool
from localive.engines.vad.base import VADLoad
from localive.models.registry import ModelRegistry
from localive.protocol.errors import OVERLOADED, Overloaded
from localive.server.load import BUSY_REASON, LoadMeter
from localive.server.state import ServerSettings, ServerState
from localive.session.engines import Engines


def test_sustained_serving_work_over_the_limit_refuses_and_a_quiet_spell_admits_again() -> None:
    meter = LoadMeter(max_serving_cores=0.5)
    assert meter.overloaded() is None
    meter.sample(0.25, 0.25 * 0.9, 0.0)  # one busy quarter second: smoothed, not enough
    assert meter.overloaded() is None
    for _ in range(32):  # 8 s at 0.9 cores
        meter.sample(0.25, 0.25 * 0.9, 0.0)
    assert meter.serving_cores == pytest.approx(0.9, abs=0.1)
    assert "serving work" in (meter.overloaded() or "")
    for _ in range(16):  # 4 s at 0.1 cores
        meter.sample(0.25, 0.25 * 0.1, 0.0)
    assert meter.overloaded() is None


def test_a_late_event_loop_refuses_even_without_a_core_limit() -> None:
    meter = LoadMeter(max_serving_cores=None)
    for _ in range(16):
        meter.sample(0.25, 0.0, 0.5)
    assert "event loop" in (meter.overloaded() or "")


def test_a_vad_running_behind_refuses_at_once() -> None:
    waits = [0.0]
    meter = LoadMeter(lambda: VADLoad(pending_frames=100, oldest_wait_s=waits[0], worker_cpu_s=0.0))
    assert meter.overloaded() is None
    waits[0] = 0.8
    assert "voice activity detection" in (meter.overloaded() or "")


async def test_the_meter_reads_the_event_loop_and_the_vad_worker_cpu() -> None:
    started = time.monotonic()
    meter = LoadMeter(lambda: VADLoad(0, 0.0, 0.3 * (time.monotonic() - started)), max_serving_cores=0.5,
                      period_s=0.02, smoothing_s=0.1, loop_cpu_s=lambda: 0.4 * (time.monotonic() - started))
    task = asyncio.create_task(meter.run())
    await asyncio.sleep(0.6)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert meter.samples >= 10
    assert meter.serving_cores == pytest.approx(0.7, abs=0.1)  # 0.4 (loop) + 0.3 (VAD worker)
    assert meter.overloaded() is not None


def test_admit_refuses_new_sessions_under_load_and_lets_resuming_ones_in() -> None:
    state = ServerState(settings=ServerSettings(max_sessions=10, max_serving_cores=0.5), registry=ModelRegistry(),
                        llms=LLMPool(), engines=Engines(llm_for=lambda entry: EmulatorLLM()))
    state.admit()  # not loaded
    for _ in range(16):
        state.load.sample(0.25, 0.25, 0.0)  # a whole core
    with pytest.raises(Overloaded) as refused:
        state.admit()
    assert refused.value.close_code == OVERLOADED and refused.value.reason == BUSY_REASON
    state.admit(resuming=True)  # a session with a handle goes ahead
    assert state.active_sessions == 2
    assert b"localive_sessions_refused_for_load_total 1.0" in state.metrics.exposition()


def test_sessions_admitted_together_count_before_the_meter_sees_them() -> None:
    meter = LoadMeter(max_serving_cores=0.3)
    for _ in range(32):
        meter.sample(0.25, 0.25 * 0.2, 0.0)  # 0.2 cores with 10 sessions open: 0.02 each
    assert meter.overloaded(10) is None
    sessions = [object() for _ in range(8)]
    for session in sessions[:4]:
        meter.admitted(session, now=100.0)
    assert meter.unseen_cores(10, now=100.0) == pytest.approx(0.08, abs=0.01)
    for session in sessions[4:]:
        meter.admitted(session, now=100.0)
    assert meter.unseen_cores(10, now=100.0) == pytest.approx(0.16, abs=0.01)  # 0.36 > 0.3: the next one waits
    assert meter.unseen_cores(10, now=110.0) < 0.01  # seconds later the reading shows them (if they cost)
    for session in sessions[:6]:
        meter.released(session)  # sessions that ended cost nothing more
    assert meter.unseen_cores(10, now=100.0) == pytest.approx(0.04, abs=0.01)
    now = time.monotonic()
    for session in sessions:
        meter.admitted(session, now)
    assert "just admitted" in (meter.overloaded(10) or "")


def test_admission_off_refuses_nothing_but_still_reads_the_load() -> None:
    meter = LoadMeter(lambda: VADLoad(500, 2.0, 0.0), max_serving_cores=0.2, enabled=False)
    for _ in range(32):
        meter.sample(0.25, 0.25, 1.0)
    assert meter.overloaded(10) is None
    assert meter.serving_cores > 0.9 and meter.reading().vad_wait_s == 2.0
