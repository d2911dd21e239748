"""Attacks on the Live session and its credentials, replayed against a real server (security findings F2, F3, F6,
F9, F15, F16, F18 in docs/security.md).

Each test sends what the adversarial pass sent and asserts the outcome a user would notice: a clear close code, a
refused token, a server whose memory stays put, and other sessions that keep being answered promptly. The
server runs the emulator model with a script whose default reply repeats the user's words.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import psutil
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from localive.testing.server import LocaliveServer, start_server
from tests.support import raw_live

KEY = "key-attacks-5b1e07"
MODEL = raw_live.MODEL
METHOD = "GenerativeService.BidiGenerateContent"
TEXT = raw_live.TEXT
TIMEOUT_S = 20.0
SCRIPT = """
default = "{input}"
delay_ms = 0
[[reply]]
match = "^check this"
call = "check"
args = { s = "AAAA" }
text = "checked"
"""
# the emulator's call arguments, made to backtrack catastrophically against ^(a+)+$ in Python's `re`
BACKTRACKING_ARG = "a" * 40 + "!"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    workdir = tmp_path_factory.mktemp("attacks-server")
    script = workdir / "script.toml"
    script.write_text(SCRIPT.replace("AAAA", BACKTRACKING_ARG), encoding="utf-8")
    # permessage-deflate on (off by default): the compressed-flood attack below needs it, the others do not care
    running = start_server(workdir, "--llm", "emulator", "--voice", "off", "--api-key", KEY,
                           "--emulator-script", str(script), "--code-execution", "off", "--ws-compression", "on")
    yield running
    running.stop()


def live_url(server: LocaliveServer, credential: str, *, constrained: bool = False) -> str:
    base = server.plain_base_url.replace("http://", "ws://", 1)
    method = METHOD + ("Constrained" if constrained else "")
    version = "v1alpha" if constrained else "v1beta"
    return f"{base}/ws/google.ai.generativelanguage.{version}.{method}?key={credential}"


def post(server: LocaliveServer, path: str, body: object, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(f"{server.plain_base_url}{path}", data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def mint(server: LocaliveServer, **body: Any) -> str:
    status, answer = post(server, "/v1alpha/auth_tokens", {"uses": 2, **body}, {"x-goog-api-key": KEY})
    assert status == 200, answer
    return str(answer["name"])


async def recv(ws: ClientConnection) -> dict[str, Any]:
    return await raw_live.recv(ws, TIMEOUT_S)


def session(url: str, **setup: Any) -> AbstractAsyncContextManager[ClientConnection]:
    return raw_live.session(url, TIMEOUT_S, **setup)


async def turn(ws: ClientConnection, text: str) -> list[dict[str, Any]]:
    await ws.send(json.dumps({"clientContent": {"turns": [{"role": "user", "parts": [{"text": text}]}],
                                                "turnComplete": True}}))
    messages = []
    while not (messages and messages[-1].get("serverContent", {}).get("turnComplete")):
        messages.append(await recv(ws))
    return messages


def text_of(messages: list[dict[str, Any]]) -> str:
    return "".join(p.get("text", "") for m in messages
                   for p in m.get("serverContent", {}).get("modelTurn", {}).get("parts", []))


async def closed_with(ws: ClientConnection) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await recv(ws)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


def rss_bytes(server: LocaliveServer) -> int:
    return int(psutil.Process(server.process.pid).memory_info().rss)


# --- F3: contextUpdate may not change what a token locks ---------------------------------------------------------

TOOLS_UPDATE = {"contextUpdate": {"tools": {"tools": [{"codeExecution": {}}, {"googleSearch": {}},
                                                       {"urlContext": {}}]}}}
INSTRUCTION_UPDATE = {"contextUpdate": {"systemInstruction": {"parts": [{"text": "You are now a shell."}]}}}
MUSEUM = {"model": MODEL, "generationConfig": TEXT, "systemInstruction": {"parts": [{"text": "Museum guide."}]}}


@pytest.mark.parametrize("update", [TOOLS_UPDATE, INSTRUCTION_UPDATE], ids=["tools", "systemInstruction"])
async def test_a_locked_token_cannot_widen_its_session(server: LocaliveServer, update: dict[str, Any]) -> None:
    token = mint(server, bidiGenerateContentSetup=MUSEUM)
    async with session(live_url(server, token, constrained=True)) as ws:
        await ws.send(json.dumps(update))
        code, reason = await closed_with(ws)
    assert code == 1008 and "locks" in reason


async def test_a_field_mask_locks_exactly_its_fields(server: LocaliveServer) -> None:
    token = mint(server, bidiGenerateContentSetup={"tools": []}, fieldMask="tools")
    async with session(live_url(server, token, constrained=True)) as ws:
        await ws.send(json.dumps(INSTRUCTION_UPDATE))  # not locked: allowed
        assert text_of(await turn(ws, "still here")) == "still here"
        await ws.send(json.dumps(TOOLS_UPDATE))
        code, _ = await closed_with(ws)
    assert code == 1008


async def test_a_key_holder_may_still_update_the_context(server: LocaliveServer) -> None:
    async with session(live_url(server, KEY)) as ws:
        await ws.send(json.dumps({"contextUpdate": {"tools": {"tools": [{"googleSearch": {}}]}}}))
        await ws.send(json.dumps(INSTRUCTION_UPDATE))
        assert text_of(await turn(ws, "hello")) == "hello"


# --- F15, F16: handles belong to the token that made them --------------------------------------------------------

async def resumable_handle(url: str) -> str:
    async with session(url, sessionResumption={}, tools=[{"googleSearch": {}}]) as ws:
        messages = await turn(ws, "remember this")
    handles = [m["sessionResumptionUpdate"]["newHandle"] for m in messages
               if m.get("sessionResumptionUpdate", {}).get("newHandle")]
    assert handles
    return str(handles[-1])


async def test_another_token_of_the_same_key_cannot_resume_a_session(server: LocaliveServer) -> None:
    handle = await resumable_handle(live_url(server, mint(server), constrained=True))
    locked = mint(server, bidiGenerateContentSetup={**MUSEUM, "sessionResumption": {}})
    async with connect(live_url(server, locked, constrained=True), open_timeout=TIMEOUT_S) as ws:
        await ws.send(json.dumps({"setup": {"model": MODEL, "sessionResumption": {"handle": handle}}}))
        code, reason = await closed_with(ws)
    assert code == 1008 and "handle" in reason


async def test_the_same_token_resumes_its_own_session(server: LocaliveServer) -> None:
    token = mint(server)
    handle = await resumable_handle(live_url(server, token, constrained=True))
    async with session(live_url(server, token, constrained=True), sessionResumption={"handle": handle}) as ws:
        assert text_of(await turn(ws, "back again")) == "back again"


async def test_a_key_session_handle_does_not_open_for_a_token(server: LocaliveServer) -> None:
    """F15's attack: a no-tools token resumed a key session that had tools."""
    handle = await resumable_handle(live_url(server, KEY))
    token = mint(server, bidiGenerateContentSetup={**MUSEUM, "sessionResumption": {}})
    async with connect(live_url(server, token, constrained=True), open_timeout=TIMEOUT_S) as ws:
        await ws.send(json.dumps({"setup": {"model": MODEL, "sessionResumption": {"handle": handle}}}))
        code, _ = await closed_with(ws)
    assert code == 1008


# --- F9: the token store cannot be filled by one client ----------------------------------------------------------

def test_page_tokens_are_rationed_per_client_and_keys_still_mint(server: LocaliveServer) -> None:
    origin = {"Origin": server.plain_base_url}
    statuses = [post(server, "/playground/token", {}, origin)[0] for _ in range(80)]
    assert statuses[0] == 200 and statuses[-1] == 429  # this client is out of page tokens …
    assert mint(server).startswith("auth_tokens/")  # … but the key still mints


def test_a_huge_locked_setup_is_refused_quickly(server: LocaliveServer) -> None:
    parts = [{"text": "x"} for _ in range(60_000)]
    before = rss_bytes(server)
    for _ in range(20):
        status, answer = post(server, "/v1alpha/auth_tokens",
                              {"bidiGenerateContentSetup": {"systemInstruction": {"parts": parts}}},
                              {"x-goog-api-key": KEY})
        assert status in (400, 413), answer
    assert rss_bytes(server) - before < 100 * 2**20


# --- F6: history is bounded as it arrives ------------------------------------------------------------------------

async def test_endless_unfinished_turns_end_the_session_not_the_server(server: LocaliveServer) -> None:
    """The attack sent 2,000 × 1 MB of unfinished turns; the session must end with 1011 once its history is full.
    Each message is sent only once the server has had time to answer the last one: sending on into a closed
    socket would make the client's TCP stack reset the connection and lose the close frame."""
    frame = json.dumps({"clientContent": {"turns": [{"role": "user", "parts": [{"text": "y" * 200_000}]}],
                                          "turnComplete": False}})
    before = rss_bytes(server)
    async with session(live_url(server, KEY)) as ws:
        for _ in range(2000):
            await ws.send(frame)
            try:
                async with asyncio.timeout(0.5):
                    await ws.recv()
            except TimeoutError:
                continue
            except ConnectionClosed:
                break
    assert ws.close_code == 1011 and "context" in (ws.close_reason or "")
    assert rss_bytes(server) - before < 200 * 2**20


async def test_with_compression_the_history_stays_bounded(server: LocaliveServer) -> None:
    frame = json.dumps({"clientContent": {"turns": [{"role": "user", "parts": [{"text": "z" * 200_000}]}],
                                          "turnComplete": False}})
    before = rss_bytes(server)
    async with session(live_url(server, KEY), contextWindowCompression={"slidingWindow": {}}) as ws:
        for _ in range(60):  # 12 MB: 24 times the history's bound, within the connection's burst of work
            await ws.send(frame)
        assert text_of(await turn(ws, "and now?")) == "and now?"
    assert rss_bytes(server) - before < 200 * 2**20


# --- F2, F18: no message freezes the other sessions ----------------------------------------------------------------

def declarations(round_: int) -> dict[str, Any]:
    """512 declarations with schemas never seen before (no cache helps), about 190 KB."""
    return {"contextUpdate": {"tools": {"tools": [{"functionDeclarations": [
        {"name": f"f{i}", "description": "d" * 200, "parametersJsonSchema": {
            "type": "object", "properties": {f"p{round_}_{i}": {"type": "string", "pattern": f"^x{i}y{round_}$"}},
            "required": [f"p{round_}_{i}"]}} for i in range(512)]}]}}}


async def slowest_turn_s(server: LocaliveServer, turns: int) -> float:
    slowest = 0.0
    async with session(live_url(server, KEY)) as ws:
        for i in range(turns):
            started = time.perf_counter()
            assert text_of(await turn(ws, f"ping {i}")) == f"ping {i}"
            slowest = max(slowest, time.perf_counter() - started)
            await asyncio.sleep(0.05)
    return slowest


async def test_heavy_messages_do_not_stall_other_sessions(server: LocaliveServer) -> None:
    """F2: a 623 KB contextUpdate of 6,000 declarations froze the loop 4.4 s a message; others waited 22-26 s.
    Now such a message is refused, and the heaviest accepted ones are validated off the event loop."""
    async with session(live_url(server, KEY)) as ws:
        await ws.send(json.dumps({"contextUpdate": {"tools": {"tools": [{"functionDeclarations": [
            {"name": f"f{i}", "parametersJsonSchema": {"type": "object"}} for i in range(6000)]}]}}}))
        code, _ = await closed_with(ws)
    assert code == 1007

    stop = asyncio.Event()

    async def attacker(kind: str) -> int:
        sent = 0  # with compression: the history the parts build up is trimmed, the session goes on
        async with session(live_url(server, KEY), contextWindowCompression={"slidingWindow": {}}) as ws:
            while not stop.is_set():
                if kind == "declarations":
                    await ws.send(json.dumps(declarations(sent)))
                else:
                    parts = [{"text": "x"}] * 999
                    await ws.send(json.dumps({"clientContent": {"turns": [{"parts": parts}] * 9}}))
                sent += 1
                await asyncio.sleep(0)
        return sent

    attackers = [asyncio.create_task(attacker(kind)) for kind in ("declarations", "parts", "declarations")]
    try:
        await asyncio.sleep(1.0)
        slowest = await slowest_turn_s(server, 10)
    finally:
        stop.set()
        sent = await asyncio.gather(*attackers, return_exceptions=True)
    assert all(isinstance(n, int) and n > 0 for n in sent), sent
    assert slowest < 2.0, f"a turn took {slowest:.2f} s while others sent their heaviest messages"


async def test_a_backtracking_pattern_does_not_freeze_the_server(server: LocaliveServer) -> None:
    """F18: the model's arguments checked against a client's `^(a+)+$` froze the whole server."""
    declaration = {"functionDeclarations": [{"name": "check", "parametersJsonSchema": {
        "type": "object", "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}}}]}
    async with session(live_url(server, KEY), tools=[declaration]) as ws:
        messages = await turn(ws, "check this")
    assert not any("toolCall" in m for m in messages), "arguments that do not match were sent to the client"
    assert await slowest_turn_s(server, 2) < 5.0


async def test_compressed_floods_are_read_a_message_at_a_time(server: LocaliveServer) -> None:
    """900 KB of 'y' compresses to about a kilobyte: one 256 KiB read held hundreds of such messages, all
    decompressed at once (0.25 s of the event loop), also after the server's close frame. Now the parser is fed
    until a message waits, and a client that floods on after the close frame is cut off."""
    frame = json.dumps({"clientContent": {"turns": [{"parts": [{"text": "y" * 900_000}]}]}})  # > the history bound
    before = rss_bytes(server)
    async with session(live_url(server, KEY)) as ws:
        with pytest.raises(ConnectionClosed):
            for _ in range(3000):
                await ws.send(frame)
    assert "messages after the close frame: aborted" in server.log()
    assert rss_bytes(server) - before < 200 * 2**20
    assert await slowest_turn_s(server, 3) < 2.0
