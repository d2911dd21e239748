"""`localive relay` (issue 20): sessions answered by an upstream Live API — here a second localive, as Google's
would be — with the upstream's key held by the relay and clients on the relay's own keys or ephemeral tokens.
What the upstream does reaches the client as it is (its goAway and its 1011 "Deadline expired" close), and is
recorded; a cassette and the relay's log never hold a key, a token or a resumption handle."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google import genai
from google.genai import errors, types

from localive.testing.server import LocaliveServer, free_port, serve, start_relay, start_server
from tests.integration.test_js_sdk import NODE, run_text_turn

SCRIPT = Path(__file__).parent.parent / "data" / "emulator_script.toml"
MODEL = "gemini-2.0-flash-live-001"
TEXT: types.LiveConnectConfigDict = {"response_modalities": ["TEXT"]}
pytestmark = pytest.mark.filterwarnings("ignore::google.genai.errors.ExperimentalWarning")  # minting tokens
UPSTREAM_KEY = "upstream-" + secrets.token_hex(16)
RELAY_KEY = "relay-" + secrets.token_hex(16)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    server = start_server(tmp_path_factory.mktemp("upstream"), "--llm", "emulator", "--voice", "off",
                          "--emulator-script", str(SCRIPT), "--api-key", UPSTREAM_KEY)
    yield server
    server.stop()


def use(server: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in server.client_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)


async def turn(session: genai.live.AsyncSession, text: str) -> list[types.LiveServerMessage]:
    await session.send_client_content(turns={"role": "user", "parts": [{"text": text}]}, turn_complete=True)
    return [m async for m in session.receive()]


def text_of(messages: list[types.LiveServerMessage]) -> str:
    return "".join(m.text or "" for m in messages)


def cassette_lines(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted(folder.glob("*.jsonl")) for line in path.read_text().splitlines()]


async def test_no_key_token_or_handle_reaches_a_cassette_or_the_relay_log(
        upstream: LocaliveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cassettes = tmp_path / "cassettes"
    relay = start_relay(tmp_path / "relay", upstream, "--api-key", RELAY_KEY, "--record", str(cassettes),
                        upstream_key=UPSTREAM_KEY)
    try:
        use(relay, monkeypatch)
        minting = genai.Client(api_key=RELAY_KEY)  # the relay's own key mints a token for the app
        token = minting.auth_tokens.create(config={"uses": 1})
        assert token.name
        app = genai.Client(api_key=token.name, http_options=types.HttpOptions(api_version="v1alpha"))
        resumable: types.LiveConnectConfigDict = {**TEXT, "session_resumption": {}}
        async with app.aio.live.connect(model=MODEL, config=resumable) as session:
            first = await turn(session, f"My token is {token.name}. What is the capital of France?")
        assert "Paris" in text_of(first)  # answered upstream, through the relay
        handles = [m.session_resumption_update.new_handle for m in first
                   if m.session_resumption_update and m.session_resumption_update.new_handle]
        assert handles
        async with app.aio.live.connect(model=MODEL, config={**TEXT, "session_resumption": {
                "handle": handles[-1]}}) as session:  # resumed upstream: the history is there
            assert text_of(await turn(session, "Which turn is this?")) == "This is turn 2."
        log = relay.log()
    finally:
        relay.stop()
    log += relay.log()
    written = "\n".join(path.read_text() for path in sorted(cassettes.glob("*.jsonl")))
    assert len(list(cassettes.glob("*.jsonl"))) == 2
    for secret in (UPSTREAM_KEY, RELAY_KEY, token.name, token.name.removeprefix("auth_tokens/"), *handles):
        assert secret not in written
        assert secret not in log
    # the handles are placeholders, the same in the update and in the setup that resumed with it
    lines = cassette_lines(cassettes)
    given = [line["message"]["sessionResumptionUpdate"]["newHandle"] for line in lines
             if "sessionResumptionUpdate" in line.get("message", {})]
    resumed = [line["message"]["setup"]["sessionResumption"].get("handle") for line in lines
               if "setup" in line.get("message", {})]
    assert resumed[1] in given and resumed[1].startswith("<handle ")
    assert "<redacted>" in written  # the token the app put in its prompt


async def test_the_upstreams_goaway_and_deadline_reach_the_client_and_replay_from_the_cassette(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cassettes = tmp_path / "cassettes"
    with serve("--llm", "emulator", "--voice", "off", "--max-connection-s", "2", "--goaway-before-s", "1",
               workdir=tmp_path / "upstream") as short_lived:
        relay = start_relay(tmp_path / "relay", short_lived, "--record", str(cassettes))
        try:
            use(relay, monkeypatch)
            relayed = await until_closed()
        finally:
            relay.stop()
    assert relayed[:2] == ("goAway", 1011) and "Deadline expired before operation could complete." in relayed[2]
    closes = [line["close"] for line in cassette_lines(cassettes) if "close" in line]
    assert closes == [{"code": 1011, "reason": "Deadline expired before operation could complete."}]
    with serve("--replay", str(cassettes), workdir=tmp_path / "replay") as replay:
        use(replay, monkeypatch)
        assert await until_closed() == relayed


async def until_closed() -> tuple[str, int, str]:
    """Open a session and wait for the server to end it: what came before the close, and the close."""
    seen = ""
    with pytest.raises(errors.APIError) as closed:
        async with genai.Client(api_key="localive").aio.live.connect(model=MODEL, config=TEXT) as session:
            async for message in session.receive():
                if message.go_away is not None:
                    seen = "goAway"
    return seen, closed.value.code, str(closed.value)


async def test_an_unreachable_upstream_is_a_1011_the_app_can_read(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    nowhere = tmp_path / "nowhere"
    with serve("--upstream", f"http://127.0.0.1:{free_port()}", command="relay", workdir=nowhere) as relay:
        use(relay, monkeypatch)
        with pytest.raises(errors.APIError) as refused:
            async with genai.Client(api_key="localive").aio.live.connect(model=MODEL, config=TEXT):
                pass
        log = relay.log()
    assert refused.value.code == 1011 and "unavailable" in str(refused.value)
    assert "could not be reached" in log


async def test_a_draining_relay_sends_goaway_and_closes_its_sessions_with_1001(
        upstream: LocaliveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    relay = start_relay(tmp_path / "relay", upstream, "--drain-s", "1", upstream_key=UPSTREAM_KEY)
    try:
        use(relay, monkeypatch)
        seen = []
        with pytest.raises(errors.APIError) as closed:
            async with genai.Client(api_key="localive").aio.live.connect(model=MODEL, config=TEXT) as session:
                assert "Paris" in text_of(await turn(session, "What is the capital of France?"))
                draining = asyncio.create_task(asyncio.to_thread(relay.process.drain))
                while True:
                    async for message in session.receive():
                        seen.append("goAway" if message.go_away is not None else "other")
        assert await draining == 0  # the relay exited cleanly once its session had left
    finally:
        relay.stop()
    assert seen[:1] == ["goAway"] and closed.value.code == 1001


@pytest.mark.js
@pytest.mark.skipif(NODE is None and not os.environ.get("LOCALIVE_REQUIRE_NODE"), reason="node is not installed")
def test_the_js_sdk_records_through_the_relay_and_replays(upstream: LocaliveServer, tmp_path: Path) -> None:
    """The same, from @google/genai on Node: a turn recorded through the relay is answered again by the replay."""
    cassettes = tmp_path / "cassettes"
    relay = start_relay(tmp_path / "relay", upstream, "--record", str(cassettes), upstream_key=UPSTREAM_KEY)
    try:
        rc, recorded, stderr = run_text_turn(relay.client_env())
    finally:
        relay.stop()
    assert rc == 0 and recorded["text"] == "The capital of France is Paris.", stderr
    with serve("--replay", str(cassettes), workdir=tmp_path / "replay") as replay:
        rc, replayed, stderr = run_text_turn(replay.client_env())
        assert rc == 0, stderr
        rc, strayed, _ = run_text_turn(replay.client_env(), "--prompt", "What is the capital of Spain?")
    assert replayed == recorded
    assert strayed["ok"] is False or strayed.get("closeCode") == 1007
    assert "Replay: client message 1" in json.dumps(strayed)
