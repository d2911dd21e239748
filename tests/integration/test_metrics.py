"""`GET /metrics` of a real `localive serve --api-key …` scraped during and after a voice conversation with the
official Python SDK (the voice emulator: fast and deterministic): the turn and its timings are there, and no line
holds the session's API key, its resumption handles or its session id."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from google import genai
from google.genai import types
from prometheus_client.parser import text_string_to_metric_families

from localive.testing.server import LocaliveServer, start_server
from tests.integration.test_voice_emulator import SCRIPT, one_turn, send_audio, utterance

KEY = "metrics-key-3e8b61f0"
MODEL = "gemini-2.0-flash-live-001"
CONFIG: types.LiveConnectConfigDict = {"response_modalities": [types.Modality.AUDIO],
                                       "input_audio_transcription": {}, "session_resumption": {}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    running = start_server(tmp_path_factory.mktemp("metrics"), "--llm", "emulator", "--voice", "emulator",
                           "--emulator-script", str(SCRIPT), "--api-key", KEY)
    yield running
    running.stop()


@pytest.fixture
def client(server: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> genai.Client:
    for name, value in server.client_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    return genai.Client(api_key=KEY)


def scrape(server: LocaliveServer, headers: dict[str, str]) -> tuple[int, str]:
    """GET /metrics on the TLS listener, as Prometheus would; the status and the body."""
    request = urllib.request.Request(f"{server.base_url}/metrics", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10, context=server.ssl_context()) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include `labels` (0 if none)."""
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == name and labels.items() <= s.labels.items())


def handles(messages: list[types.LiveServerMessage]) -> list[str]:
    return [m.session_resumption_update.new_handle for m in messages
            if m.session_resumption_update and m.session_resumption_update.new_handle]


async def test_a_voice_turn_shows_in_the_metrics_without_key_or_handle(server: LocaliveServer,
                                                                       client: genai.Client) -> None:
    bearer = {"authorization": f"Bearer {KEY}"}
    _, before = scrape(server, bearer)
    seen: list[str] = []
    async with client.aio.live.connect(model=MODEL, config=CONFIG) as session:
        session_ids = [session.session_id]
        await send_audio(session, utterance(0.8))
        messages = await one_turn(session)
        assert any(m.data for m in messages) and messages[-1].server_content.turn_complete
        seen += handles(messages)
        status, during = scrape(server, bearer)  # the conversation is still open
    assert status == 200 and sample(during, "localive_sessions_open") >= 1
    assert seen, "sessionResumption gave no handle"
    resumed = {**CONFIG, "session_resumption": types.SessionResumptionConfig(handle=seen[-1])}
    async with client.aio.live.connect(model=MODEL, config=resumed) as session:  # one resumption
        session_ids.append(session.session_id)
        await send_audio(session, utterance(0.8))
        seen += handles(await one_turn(session))

    deadline = time.monotonic() + 10  # the server counts a connection once its end is handled
    while True:
        status, after = scrape(server, {"x-goog-api-key": KEY})
        ended = sample(after, "localive_sessions_total", code="1000") - sample(before, "localive_sessions_total",
                                                                              code="1000")
        if ended >= 2 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert status == 200 and ended >= 2
    answered = {"outcome": "answered"}
    assert sample(after, "localive_turns_total", **answered) - sample(before, "localive_turns_total", **answered) >= 2
    for stage in ("asr_done", "first_token", "first_output"):
        assert sample(after, f"localive_turn_{stage}_seconds_count") >= 1, stage
    assert sample(during, "localive_turn_first_output_seconds_count") >= 1
    assert sample(after, "localive_resumptions_total") - sample(before, "localive_resumptions_total") >= 1
    secrets = [KEY, *seen, *(i for i in session_ids if i)]
    for line in (during + after).splitlines():
        for secret in secrets:
            assert secret not in line, f"a secret in a metric line: {line[:80]}"


def test_metrics_without_a_key_are_refused(server: LocaliveServer) -> None:
    for headers in ({}, {"x-goog-api-key": "not-the-key"}, {"authorization": "Bearer not-the-key"}):
        status, body = scrape(server, headers)
        assert status == 401 and "localive_" not in body and KEY not in body
