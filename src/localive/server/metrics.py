"""Prometheus metrics of one server (`GET /metrics`, docs/operations.md), in prometheus-client's own registry.

Each `ServerMetrics` owns its `CollectorRegistry`, never the library's global one: tests run several servers in one
process, and a global registry would refuse the second server's metrics (duplicated names). Sessions report through
`session/telemetry.py`'s interface (the session layer does not know the server); the transport counts connections
as they end (server/live_ws.py); what is read rather than counted (sessions open, the VAD backlog) is read when
scraped.

Labels are low-cardinality only: a model's registry name (or "none" before a setup named one), a close code, a
fixed outcome, kind or stage. Never an API key, a token, a resumption handle, a session id, a client address or
anything the user said.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from localive.engines.vad.base import VADLoad
from localive.server.load import LoadMeter
from localive.session.telemetry import Telemetry, ToolKind, TurnOutcome
from localive.session.timings import TurnTimings

NO_MODEL = "none"  # a connection that ended before its setup named a model (or whose setup was refused)
# 20 ms to 10 s: a turn's stages take from tens of milliseconds (a text turn's first token) to seconds (a long
# utterance transcribed on a busy server); +Inf catches the rest
STAGE_BUCKETS_S = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST
PROTOCOL_CLOSE_CODES = range(1000, 1016)  # RFC 6455's codes: the server's own (1000, 1007, 1008, 1011, 1013, …)


class ServerMetrics(Telemetry):
    """The server's counters, gauges and histograms; also the sessions' `Telemetry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.sessions_open = Gauge("localive_sessions_open", "Live sessions open now (holding a session slot)",
                                   registry=r)
        self.sessions = Counter("localive_sessions", "Live connections ended, by model and WebSocket close code "
                                "(model \"none\": ended before a setup named one)", ["model", "code"], registry=r)
        self.turns = Counter("localive_turns", "Model turns ended, by model and outcome (answered, unanswered, "
                             "interrupted, failed, cancelled)", ["model", "outcome"], registry=r)
        self.asr_done = Histogram("localive_turn_asr_done_seconds", "From the end of the user's turn until its "
                                  "speech was transcribed (answered spoken turns)", ["model"], buckets=STAGE_BUCKETS_S,
                                  registry=r)
        self.first_token = Histogram("localive_turn_first_token_seconds", "From the end of the user's turn until "
                                     "the LLM's first text", ["model"], buckets=STAGE_BUCKETS_S, registry=r)
        self.first_output = Histogram("localive_turn_first_output_seconds", "From the end of the user's turn until "
                                      "the first text or audio of the answer was queued for the client", ["model"],
                                      buckets=STAGE_BUCKETS_S, registry=r)
        self.barge_ins = Counter("localive_barge_ins", "Model turns interrupted by the client's input", ["model"],
                                 registry=r)
        self.tool_calls = Counter("localive_tool_calls", "Function calls the model made and code it ran, by kind "
                                  "(function, code_execution)", ["model", "kind"], registry=r)
        self.resumptions = Counter("localive_resumptions", "Sessions restored from a resumption handle at setup",
                                   ["model"], registry=r)
        self.backend_errors = Counter("localive_backend_errors", "Remote backend failures that ended a turn, by "
                                      "stage", ["stage"], registry=r)
        self.stalls = Counter("localive_turn_stalls", "Turns (and session-store calls) the watchdog ended",
                              registry=r)
        self.vad_backlog = Gauge("localive_vad_backlog_frames", "Audio frames (32 ms each) waiting for the shared "
                                 "voice activity detector, all sessions together", registry=r)

        self.vad_wait = Gauge("localive_vad_wait_seconds", "How long the oldest audio frame waiting for the shared "
                              "voice activity detector has waited", registry=r)
        self.serving_cores = Gauge("localive_serving_cores", "CPU of the event loop and the shared VAD, in cores, "
                                   "smoothed over 2 s (admission control: server/load.py)", registry=r)
        self.loop_lag = Gauge("localive_event_loop_lag_seconds", "How late the event loop runs its timers, smoothed",
                              registry=r)
        self.refused_for_load = Counter("localive_sessions_refused_for_load", "New sessions refused with 1013 "
                                        "because of the process's load", registry=r)

    def watch(self, *, sessions_open: Callable[[], float], vad_load: Callable[[], VADLoad] | None = None,
              load: LoadMeter | None = None) -> None:
        """What is read when scraped: the sessions open, the shared VAD's backlog and wait (None: this server has
        no batched VAD, and those gauges stay 0), and the load meter's readings."""
        self.sessions_open.set_function(sessions_open)
        if vad_load is not None:
            self.vad_backlog.set_function(lambda: vad_load().pending_frames)
            self.vad_wait.set_function(lambda: vad_load().oldest_wait_s)
        if load is not None:
            self.serving_cores.set_function(lambda: load.serving_cores)
            self.loop_lag.set_function(lambda: load.loop_lag_s)

    def exposition(self) -> bytes:
        """The text format, for `GET /metrics` (served with CONTENT_TYPE)."""
        return generate_latest(self.registry)

    # --- the transport ----------------------------------------------------------------------------------------

    def session_ended(self, model: str | None, code: int) -> None:
        """A connection ended with `code`: the close we sent, or the client's own (any code a client chooses
        outside the protocol's range is counted as "other", so clients cannot add series at will)."""
        label = str(code) if code in PROTOCOL_CLOSE_CODES else "other"
        self.sessions.labels(model=model or NO_MODEL, code=label).inc()

    def stalled(self) -> None:
        self.stalls.inc()

    # --- Telemetry: what sessions report ---------------------------------------------------------------------

    def turn_ended(self, model: str, outcome: TurnOutcome) -> None:
        self.turns.labels(model=model, outcome=outcome).inc()

    def turn_timed(self, model: str, timings: TurnTimings) -> None:
        spoken = timings.asr_audio_s > 0  # a typed turn has nothing to transcribe: no ASR time to count
        for histogram, moment in ((self.asr_done, timings.transcribed if spoken else None),
                                  (self.first_token, timings.first_token), (self.first_output, timings.first_output)):
            if moment is not None:
                histogram.labels(model=model).observe(max(0.0, moment - timings.started))

    def barge_in(self, model: str) -> None:
        self.barge_ins.labels(model=model).inc()

    def tool_called(self, model: str, kind: ToolKind, count: int = 1) -> None:
        self.tool_calls.labels(model=model, kind=kind).inc(count)

    def resumed(self, model: str) -> None:
        self.resumptions.labels(model=model).inc()

    def backend_failed(self, stage: str) -> None:
        self.backend_errors.labels(stage=stage).inc()
