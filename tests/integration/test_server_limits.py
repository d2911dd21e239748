"""Server-wide behaviour: admission control (1013), `localive env`, health."""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import certifi
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from localive.testing.server import LocaliveServer, start_server

PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
SETUP = json.dumps({"setup": {"model": "gemini-2.0-flash-live-001",
                              "generationConfig": {"responseModalities": ["TEXT"]}}})


@pytest.fixture(scope="module")
def one_slot_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    server = start_server(tmp_path_factory.mktemp("one-slot"), "--llm", "emulator", "--max-sessions", "1")
    yield server
    server.stop()


async def test_a_full_server_closes_new_sessions_with_1013(one_slot_server: LocaliveServer) -> None:
    url = f"ws://127.0.0.1:{one_slot_server.plain_port}{PATH}"
    async with connect(url) as first:
        await first.send(SETUP)
        assert "setupComplete" in json.loads(await first.recv())
        async with connect(url) as second:
            with pytest.raises(ConnectionClosed) as info:  # the close may come before or after our setup
                await second.send(SETUP)
                await second.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1013
    async with connect(url) as third:  # the slot is free again
        await third.send(SETUP)
        assert "setupComplete" in json.loads(await third.recv())


def test_env_bundle_keeps_public_cas_and_adds_localive(emulator_server: LocaliveServer) -> None:
    env = emulator_server.env
    assert env["GOOGLE_GEMINI_BASE_URL"] == f"https://127.0.0.1:{emulator_server.port}"
    assert env["GEMINI_API_KEY"] == "localive"
    bundle = Path(env["SSL_CERT_FILE"]).read_text()
    ca = Path(env["NODE_EXTRA_CA_CERTS"]).read_text()
    assert ca in bundle
    assert Path(certifi.where()).read_text().strip() in bundle
    context = ssl.create_default_context(cafile=env["SSL_CERT_FILE"])
    assert len(context.get_ca_certs()) > 50  # the public roots are still trusted


def test_healthz_over_tls(emulator_server: LocaliveServer) -> None:
    context = ssl.create_default_context(cafile=emulator_server.env["SSL_CERT_FILE"])
    with urllib.request.urlopen(f"{emulator_server.base_url}/healthz", context=context, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "ok" and "gemini-2.0-flash-live-001" in body["models"]


@pytest.fixture(scope="module")
def text_only_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    server = start_server(tmp_path_factory.mktemp("text-only"), "--llm", "emulator", "--voice", "off")
    yield server
    server.stop()


@pytest.mark.parametrize("setup, message", [
    ({"setup": {"model": "gemini-2.0-flash-live-001", "generationConfig": {"responseModalities": ["AUDIO"]}}},
     None),
    (json.loads(SETUP), {"realtimeInput": {"audio": {"data": "AAAA", "mimeType": "audio/pcm;rate=16000"}}}),
])
async def test_voice_off_refuses_audio_with_a_clear_1008(text_only_server: LocaliveServer, setup: dict,
                                                         message: dict | None) -> None:
    url = f"ws://127.0.0.1:{text_only_server.plain_port}{PATH}"
    async with connect(url) as ws:
        await ws.send(json.dumps(setup))
        with pytest.raises(ConnectionClosed) as info:
            if message is not None:
                assert "setupComplete" in json.loads(await ws.recv())
                await ws.send(json.dumps(message))
            await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008
    assert "localive[voice]" in info.value.rcvd.reason


def health(server: LocaliveServer) -> dict:
    with urllib.request.urlopen(f"{server.plain_base_url}/healthz", timeout=10) as response:
        body = json.loads(response.read())
    assert isinstance(body, dict)
    return body


@pytest.fixture(scope="module")
def watchdog_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    workdir = tmp_path_factory.mktemp("watchdog")
    script = workdir / "script.toml"  # "stall": a model that thinks for ten minutes before its first word
    script.write_text('[[reply]]\nmatch = "stall"\ntext = "Finally."\ndelay_ms = 600000\n')
    server = start_server(workdir, "--llm", "emulator", "--emulator-script", str(script), "--turn-watchdog-s", "1")
    yield server
    server.stop()


async def test_a_silent_turn_is_ended_by_the_watchdog_counted_and_the_session_resumes(
        watchdog_server: LocaliveServer) -> None:
    url = f"ws://127.0.0.1:{watchdog_server.plain_port}{PATH}"
    setup = json.loads(SETUP)
    setup["setup"]["sessionResumption"] = {}
    async with connect(url) as ws:
        await ws.send(json.dumps(setup))
        assert "setupComplete" in json.loads(await ws.recv())
        handle = json.loads(await ws.recv())["sessionResumptionUpdate"]["newHandle"]
        await ws.send(json.dumps({"clientContent": {"turns": [{"role": "user", "parts": [{"text": "stall"}]}],
                                                    "turnComplete": True}}))
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await asyncio.wait_for(ws.recv(), 30)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1011
    assert info.value.rcvd.reason == "The model produced nothing for 1 s (stalled in the language model stage)."
    assert (await asyncio.to_thread(health, watchdog_server))["stalls"] == 1
    setup["setup"]["sessionResumption"] = {"handle": handle}
    async with connect(url) as ws:  # the client resumes from its last handle, and the session answers
        await ws.send(json.dumps(setup))
        assert "setupComplete" in json.loads(await ws.recv())
        await ws.send(json.dumps({"clientContent": {"turns": [{"role": "user", "parts": [{"text": "hello"}]}],
                                                    "turnComplete": True}}))
        texts = []
        while "turnComplete" not in (content := json.loads(await asyncio.wait_for(ws.recv(), 30)).get(
                "serverContent", {})):
            texts += [p.get("text", "") for p in content.get("modelTurn", {}).get("parts", [])]
        assert "hello" in "".join(texts)
    assert "produced nothing for 1 s" in watchdog_server.log()  # logged (at WARNING)
