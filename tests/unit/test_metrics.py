"""The server's Prometheus metrics (server/metrics.py): the families after events, sessions reporting through the
session layer's `Telemetry`, `/metrics`' access rule, and no secret in any label or value."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from localive.clock import VirtualClock
from localive.engines.llm.emulator import EmulatorLLM, EmulatorScript
from localive.engines.speech_remote import ASR_STAGE
from localive.engines.vad.base import VADLoad
from localive.models.registry import ModelRegistry
from localive.server.app import metrics
from localive.server.auth import Access, KeyRing
from localive.server.metrics import ServerMetrics
from localive.server.state import ServerSettings, ServerState
from localive.session.timings import TurnTimings
from localive.testing.session import SessionHarness

KEY = "metrics-key-5c1e9a"
MODEL = "gemini-2.0-flash-live-001"
SCRIPT = EmulatorScript.from_dict({"reply": [{"match": "slow", "text": "a b c d e f g h i j", "delay_ms": 20}]})


def samples(exposition: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, by name and sorted labels (parsed by prometheus-client's own parser)."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(exposition.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(exposition: bytes, name: str, **labels: str) -> float | None:
    return samples(exposition).get((name, tuple(sorted(labels.items()))))


def timings(asr_s: float, token_s: float, output_s: float | None) -> TurnTimings:
    clock = VirtualClock()
    timed = TurnTimings(clock)
    timed.transcribed = timed.started + asr_s
    timed.first_token = timed.started + token_s
    timed.first_output = None if output_s is None else timed.started + output_s
    timed.asr_audio_s = 1.0 if asr_s else 0.0  # spoken, or typed (nothing transcribed)
    return timed


def test_the_families_after_events() -> None:
    m = ServerMetrics()
    m.watch(sessions_open=lambda: 3, vad_load=lambda: VADLoad(12, 0.05, 1.0))
    m.session_ended(MODEL, 1000)
    m.session_ended(None, 1008)
    m.session_ended(MODEL, 4321)  # a client's own code: not a series of its own
    m.turn_ended(MODEL, "answered")
    m.turn_ended(MODEL, "interrupted")
    m.turn_timed(MODEL, timings(0.15, 0.4, 0.6))
    m.turn_timed(MODEL, timings(0.0, 0.03, None))  # no output queued (e.g. only a function call)
    m.barge_in(MODEL)
    m.tool_called(MODEL, "function", 2)
    m.tool_called(MODEL, "code_execution")
    m.resumed(MODEL)
    m.backend_failed(ASR_STAGE)
    m.stalled()
    text = m.exposition()
    assert value(text, "localive_sessions_open") == 3
    assert value(text, "localive_vad_backlog_frames") == 12
    assert value(text, "localive_sessions_total", model=MODEL, code="1000") == 1
    assert value(text, "localive_sessions_total", model="none", code="1008") == 1
    assert value(text, "localive_sessions_total", model=MODEL, code="other") == 1
    assert value(text, "localive_turns_total", model=MODEL, outcome="answered") == 1
    assert value(text, "localive_turns_total", model=MODEL, outcome="interrupted") == 1
    assert value(text, "localive_turn_asr_done_seconds_count", model=MODEL) == 1  # the typed turn: no ASR time
    assert value(text, "localive_turn_first_token_seconds_sum", model=MODEL) == pytest.approx(0.43)
    assert value(text, "localive_turn_first_token_seconds_bucket", model=MODEL, le="0.05") == 1
    assert value(text, "localive_turn_first_output_seconds_count", model=MODEL) == 1
    assert value(text, "localive_turn_first_output_seconds_bucket", model=MODEL, le="0.75") == 1
    assert value(text, "localive_turn_first_output_seconds_bucket", model=MODEL, le="0.5") == 0
    assert value(text, "localive_barge_ins_total", model=MODEL) == 1
    assert value(text, "localive_tool_calls_total", model=MODEL, kind="function") == 2
    assert value(text, "localive_tool_calls_total", model=MODEL, kind="code_execution") == 1
    assert value(text, "localive_resumptions_total", model=MODEL) == 1
    assert value(text, "localive_backend_errors_total", stage=ASR_STAGE) == 1
    assert value(text, "localive_turn_stalls_total") == 1


def test_each_server_has_its_own_registry() -> None:
    first, second = ServerMetrics(), ServerMetrics()  # the global registry would refuse the second
    first.barge_in(MODEL)
    assert value(first.exposition(), "localive_barge_ins_total", model=MODEL) == 1
    assert value(second.exposition(), "localive_barge_ins_total", model=MODEL) is None


async def test_a_session_reports_its_turns_and_barge_ins() -> None:
    m = ServerMetrics()
    secret_id, secret_text = "session-id-0d9e7f", "my secret words 4b2a"
    async with SessionHarness(llm=EmulatorLLM(SCRIPT), session_id=secret_id, principal="principal-77aa",
                              telemetry=m) as harness:
        await harness.setup()
        await harness.say(secret_text)
        await harness.send({"clientContent": {"turns": [{"role": "user", "parts": [{"text": "slow"}]}],
                                              "turnComplete": True}})
        await harness.next_message()  # the slow answer has started
        await harness.say("stop")  # interrupts it, and is answered
        await harness.drain_turn()
    text = m.exposition()
    model = next(labels for (name, labels) in samples(text) if name == "localive_turns_total")[0][1]
    assert value(text, "localive_turns_total", model=model, outcome="answered") == 2
    assert value(text, "localive_turns_total", model=model, outcome="interrupted") == 1
    assert value(text, "localive_barge_ins_total", model=model) == 1
    assert value(text, "localive_turn_first_token_seconds_count", model=model) == 2
    for secret in (secret_id, secret_text, "principal-77aa"):
        assert secret not in text.decode()


def request(state: ServerState, headers: dict[str, str] | None = None, query: dict[str, str] | None = None) -> Any:
    return SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(localive=state)), headers=headers or {},
                           query_params=query or {})


def server(access: Access) -> ServerState:
    return ServerState(settings=ServerSettings(), registry=ModelRegistry(), llms=None,  # type: ignore[arg-type]
                       engines=SimpleNamespace(vad_load=None), access=access)  # type: ignore[arg-type]


async def test_metrics_need_a_key_where_keys_are_configured() -> None:
    state = server(Access(KeyRing([KEY])))
    state.admit()
    for refused in (request(state), request(state, {"x-goog-api-key": "wrong"}),
                    request(state, {"authorization": f"Basic {KEY}"})):
        response = await metrics(refused)
        assert response.status_code == 401 and KEY not in bytes(response.body).decode()
    for allowed in (request(state, {"x-goog-api-key": KEY}), request(state, query={"key": KEY}),
                    request(state, {"authorization": f"Bearer {KEY}"})):
        response = await metrics(allowed)
        assert response.status_code == 200 and response.media_type.startswith("text/plain")
        assert value(bytes(response.body), "localive_sessions_open") == 1
        assert KEY not in bytes(response.body).decode()


async def test_an_open_server_lets_anyone_scrape() -> None:
    response = await metrics(request(server(Access())))
    assert response.status_code == 200 and b"localive_sessions_open 0.0" in bytes(response.body)


def test_the_turn_timings_log_is_what_the_histograms_see() -> None:
    """The same TurnTimings feed the log line and the histograms: their spans agree."""
    timed = timings(0.25, 0.5, 1.25)
    assert "asr_done_ms=250.0 llm_first_token_ms=500.0 first_output_ms=1250.0" in timed.log_fields()
    m = ServerMetrics()
    m.turn_timed(MODEL, timed)
    assert value(m.exposition(), "localive_turn_first_output_seconds_sum", model=MODEL) == pytest.approx(1.25)
