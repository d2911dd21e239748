"""API keys and ephemeral tokens against a real `localive serve --api-key …`, with the official SDKs.

The server is started with one key on the command line and one in a keys file. Keys and token names are
distinctive strings, so the test can check that none of them reaches the server log.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google import genai
from google.genai import errors, types
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from localive.testing.server import LocaliveServer, start_server

KEY = "key-alpha-7f3a9c"
FILE_KEY = "key-from-file-91c2e4"
MODEL = "gemini-2.0-flash-live-001"
TEXT: types.LiveConnectConfigDict = {"response_modalities": [types.Modality.TEXT]}
PIRATE = ("You are a pirate captain who answers every question with a long and colourful tale of the seven "
          "seas, of treasure maps, of parrots and of the sound of the waves against the hull.")
CONSTRAINED = "GenerativeService.BidiGenerateContentConstrained"
JS_DIR = Path(__file__).resolve().parents[1] / "js"
NODE = shutil.which("node")

pytestmark = pytest.mark.filterwarnings("ignore::google.genai.errors.ExperimentalWarning")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    workdir = tmp_path_factory.mktemp("access-server")
    keys_file = workdir / "keys.txt"
    keys_file.write_text(f"# one key a line\n{FILE_KEY}\n", encoding="utf-8")
    running = start_server(workdir, "--llm", "emulator", "--voice", "off", "--api-key", KEY,
                           "--api-keys-file", str(keys_file), "--max-sessions", "150")
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def client_env(server: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in server.client_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)


def client(key: str, **http_options: Any) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(**http_options) if http_options else None)


def mint(config: types.CreateAuthTokenConfigDict, key: str = KEY) -> types.AuthToken:
    sdk = client(key)  # held until the call returns: a collected Client closes its HTTP client
    token: types.AuthToken = sdk.auth_tokens.create(config=config)
    return token


def token_client(token: types.AuthToken) -> genai.Client:
    assert token.name is not None
    return client(token.name, api_version="v1alpha")


def in_seconds(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


async def ask(session: genai.live.AsyncSession, text: str = "ping") -> tuple[str, list[types.LiveServerMessage]]:
    await session.send_client_content(turns={"role": "user", "parts": [{"text": text}]}, turn_complete=True)
    messages = [m async for m in session.receive()]
    return "".join(m.text or "" for m in messages), messages


async def refused(sdk: genai.Client, config: types.LiveConnectConfigDict | None = None) -> errors.APIError:
    with pytest.raises(errors.APIError) as caught:
        async with sdk.aio.live.connect(model=MODEL, config=config or TEXT) as session:
            await ask(session)
    return caught.value


# --- API keys ------------------------------------------------------------------------------------------------

async def test_configured_keys_work() -> None:
    for key in (KEY, FILE_KEY):
        async with client(key).aio.live.connect(model=MODEL, config=TEXT) as session:
            assert (await ask(session))[0] == "You said: ping"


async def test_wrong_key_is_refused_with_1008() -> None:
    error = await refused(client("key-alpha-7f3a9d"))
    assert error.code == 1008
    assert "API key not valid" in str(error) and KEY not in str(error)


async def test_missing_key_is_refused_with_1008() -> None:
    # The SDK will not start without a key; an empty header is what a keyless client sends.
    error = await refused(client("placeholder", headers={"x-goog-api-key": ""}))
    assert error.code == 1008 and "API key" in str(error)


async def test_key_in_the_query_as_the_js_sdk_sends_it(server: LocaliveServer) -> None:
    base = f"wss://127.0.0.1:{server.port}//ws/google.ai.generativelanguage.v1beta.GenerativeService."
    setup = json.dumps({"setup": {"model": f"models/{MODEL}", "generationConfig": {"responseModalities": ["TEXT"]}}})
    async with connect(f"{base}BidiGenerateContent?key={KEY}", ssl=server.ssl_context()) as ws:
        await ws.send(setup)
        assert "setupComplete" in json.loads(await ws.recv())
    async with connect(f"{base}BidiGenerateContent?key=nope", ssl=server.ssl_context()) as ws:
        await ws.send(setup)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_health_needs_no_key(server: LocaliveServer) -> None:
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{server.plain_base_url}/healthz", timeout=5) as response:
        anonymous = json.loads(response.read())
    assert anonymous["status"] == "ok"
    assert "activeSessions" not in anonymous  # how busy the server is: only for key holders (informational finding)
    request = urllib.request.Request(f"{server.plain_base_url}/healthz", headers={"x-goog-api-key": KEY})
    with opener.open(request, timeout=5) as response:
        assert json.loads(response.read())["activeSessions"] >= 0


# --- ephemeral tokens ----------------------------------------------------------------------------------------

def test_minting_needs_a_valid_key() -> None:
    with pytest.raises(errors.ClientError) as caught:
        mint({"uses": 1}, key="not-a-key")
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"
    with pytest.raises(errors.ClientError) as too_far:
        mint({"expire_time": in_seconds(21 * 3600)})
    assert too_far.value.code == 400 and "20 hours" in str(too_far.value)


async def test_a_one_use_token_opens_exactly_one_session() -> None:
    token = mint({
        "uses": 1,
        "live_connect_constraints": {"model": MODEL, "config": {"response_modalities": [types.Modality.TEXT],
                                                                 "temperature": 0.2}},
    })
    assert token.name and token.name.startswith("auth_tokens/") and token.uses == 1
    assert token.expire_time and token.new_session_expire_time
    sdk = token_client(token)
    async with sdk.aio.live.connect(model=MODEL, config=TEXT) as session:
        assert (await ask(session))[0] == "You said: ping"
    error = await refused(sdk)
    assert error.code == 1011 and "Token has been used too many times" in str(error)


async def test_a_token_past_its_new_session_time_is_refused() -> None:
    token = mint({"uses": 0, "new_session_expire_time": in_seconds(1)})
    await asyncio.sleep(1.5)
    error = await refused(token_client(token))
    assert error.code == 1008 and "no longer accepts new sessions" in str(error)


async def test_a_token_session_ends_at_the_tokens_expire_time() -> None:
    token = mint({"uses": 1, "expire_time": in_seconds(2)})
    async with token_client(token).aio.live.connect(model=MODEL, config=TEXT) as session:
        assert (await ask(session))[0] == "You said: ping"
        await asyncio.sleep(2.5)
        with pytest.raises(errors.APIError) as caught:
            _ = [m async for m in session.receive()]
    assert caught.value.code == 1011 and "expired" in str(caught.value)


async def test_an_unknown_token_is_refused() -> None:
    error = await refused(client("auth_tokens/made-up", api_version="v1alpha"))
    assert error.code == 1008 and "API key not valid" in str(error)


async def test_locked_fields_override_the_clients_setup() -> None:
    """The token locks TEXT (the server has no voice: AUDIO would be refused), a reply cap and an instruction."""
    token = mint({
        "uses": 2,
        "live_connect_constraints": {"model": MODEL, "config": {
            "response_modalities": [types.Modality.TEXT], "max_output_tokens": 3, "system_instruction": PIRATE}},
    })
    async with client(KEY).aio.live.connect(model=MODEL, config=TEXT) as session:
        _, plain = await ask(session)
    asked: types.LiveConnectConfigDict = {"response_modalities": [types.Modality.AUDIO], "max_output_tokens": 500,
                                          "system_instruction": "Be brief."}
    async with token_client(token).aio.live.connect(model=MODEL, config=asked) as session:
        text, locked = await ask(session)
    assert text == "You said: ", "maxOutputTokens 3 from the token, not 500 from the client"
    prompt = [m.usage_metadata.prompt_token_count for m in (plain[-1], locked[-1]) if m.usage_metadata]
    assert len(prompt) == 2 and prompt[1] is not None and prompt[0] is not None
    assert prompt[1] > prompt[0] + 25, f"the token's long system instruction was not used: {prompt}"


async def test_lock_additional_fields_locks_only_the_mask() -> None:
    token = mint({
        "uses": 1,
        "live_connect_constraints": {"model": MODEL, "config": {"max_output_tokens": 3}},
        "lock_additional_fields": [],
    })
    config: types.LiveConnectConfigDict = {**TEXT, "max_output_tokens": 500}  # the modality is the client's own
    async with token_client(token).aio.live.connect(model=MODEL, config=config) as session:
        assert (await ask(session))[0] == "You said: "


async def test_resuming_a_token_session_takes_no_use() -> None:
    token = mint({"uses": 1})
    sdk = token_client(token)
    config: types.LiveConnectConfigDict = {**TEXT, "session_resumption": {}}
    async with sdk.aio.live.connect(model=MODEL, config=config) as session:
        _, messages = await ask(session, "which turn is this")
    handles = [m.session_resumption_update.new_handle for m in messages
               if m.session_resumption_update and m.session_resumption_update.new_handle]
    assert handles
    resume: types.LiveConnectConfigDict = {**TEXT, "session_resumption": {"handle": handles[-1]}}
    async with sdk.aio.live.connect(model=MODEL, config=resume) as session:
        assert (await ask(session, "ping"))[0] == "You said: ping"
    assert (await refused(sdk)).code == 1011  # a new session still needs a use


async def test_a_token_on_the_normal_path_is_refused(server: LocaliveServer) -> None:
    token = mint({"uses": 1})
    url = (f"wss://127.0.0.1:{server.port}/ws/google.ai.generativelanguage.v1alpha."
           f"GenerativeService.BidiGenerateContent?access_token={token.name}")
    async with connect(url, ssl=server.ssl_context()) as ws:
        await ws.send(json.dumps({"setup": {"model": MODEL}}))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert "Constrained" in closed.value.rcvd.reason


async def test_hundred_concurrent_redemptions_give_one_session(server: LocaliveServer) -> None:
    token = mint({"uses": 1})
    url = (f"wss://127.0.0.1:{server.port}//ws/google.ai.generativelanguage.v1alpha.{CONSTRAINED}"
           f"?access_token={token.name}")
    setup = json.dumps({"setup": {"model": f"models/{MODEL}", "generationConfig": {"responseModalities": ["TEXT"]}}})
    sockets = await asyncio.gather(*(connect(url, ssl=server.ssl_context(), open_timeout=30) for _ in range(100)))

    async def redeem(ws: Any) -> str:
        await ws.send(setup)
        try:
            return "ok" if "setupComplete" in json.loads(await asyncio.wait_for(ws.recv(), 30)) else "other"
        except ConnectionClosed as exc:
            return f"closed {exc.rcvd.code if exc.rcvd else None}"

    try:
        outcomes = await asyncio.gather(*(redeem(ws) for ws in sockets))
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))
    assert outcomes.count("ok") == 1, outcomes
    assert outcomes.count("closed 1011") == 99, outcomes


@pytest.mark.js
@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_js_sdk_mints_and_uses_a_token() -> None:
    if not (JS_DIR / "node_modules" / "@google" / "genai").is_dir():
        pytest.skip("the JS SDK is not installed in tests/js")
    script = """
import { GoogleGenAI } from '@google/genai';
const ai = new GoogleGenAI({});
const token = await ai.authTokens.create({ config: { uses: 1, liveConnectConstraints: {
  model: 'gemini-2.0-flash-live-001', config: { responseModalities: ['TEXT'] } } } });
const eph = new GoogleGenAI({ apiKey: token.name, httpOptions: { apiVersion: 'v1alpha' } });
let text = '';
let done;
const turn = new Promise((resolve) => { done = resolve; });
const session = await eph.live.connect({ model: 'gemini-2.0-flash-live-001', callbacks: {
  onmessage: (m) => { for (const p of m.serverContent?.modelTurn?.parts ?? []) text += p.text ?? '';
                      if (m.serverContent?.turnComplete) done(); },
  onclose: () => done() } });
session.sendClientContent({ turns: [{ role: 'user', parts: [{ text: 'ping' }] }], turnComplete: true });
await turn;
session.close();
let second = 'connected';
try { await eph.live.connect({ model: 'gemini-2.0-flash-live-001', callbacks: {} }); }
catch (e) { second = String(e.message ?? e); }
console.log(JSON.stringify({ name: token.name.slice(0, 12), text, second }));
process.exit(0);
"""
    env = {**os.environ, "GEMINI_API_KEY": KEY}
    proc = subprocess.run([str(NODE), "--input-type=module", "-e", script], cwd=JS_DIR, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["name"] == "auth_tokens/" and result["text"] == "You said: ping"
    assert "1011" in result["second"] and "used too many times" in result["second"], result


def test_no_key_or_token_reaches_the_log(server: LocaliveServer) -> None:
    token = mint({"uses": 1})
    assert token.name is not None
    deadline = time.monotonic() + 5
    log = server.log()
    while "auth_tokens" not in log and time.monotonic() < deadline:  # the mint's access line
        time.sleep(0.05)
        log = server.log()
    assert "POST /v1/auth_tokens" in log or "POST /v1alpha/auth_tokens" in log
    for secret in (KEY, FILE_KEY, token.name.removeprefix("auth_tokens/")):
        assert secret not in log


async def test_a_handle_made_with_one_key_is_refused_with_another() -> None:
    resumable: types.LiveConnectConfigDict = {**TEXT, "session_resumption": {}}
    async with client(KEY).aio.live.connect(model=MODEL, config=resumable) as session:
        _, messages = await ask(session)
    handle = [m.session_resumption_update.new_handle for m in messages
              if m.session_resumption_update and m.session_resumption_update.resumable][-1]
    error = await refused(client(FILE_KEY), {**TEXT, "session_resumption": {"handle": handle}})
    assert error.code == 1008 and "invalid or has expired" in str(error)
    async with client(KEY).aio.live.connect(model=MODEL, config={**TEXT, "session_resumption": {
            "handle": handle}}) as session:  # the key that made it still can
        assert (await ask(session))[0] == "You said: ping"
