"""Bad client input over a raw WebSocket: every case ends only its own session, with the right close code.

Each bad session is accompanied by a healthy session opened before it and used after it, which must still
complete a text turn: a client's bad input must never disturb other sessions or the server.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from localive.testing.server import LocaliveServer

MODEL = "models/gemini-2.0-flash-live-001"
METHOD = "GenerativeService.BidiGenerateContent"
TIMEOUT_S = 10.0
TOP_LEVEL_KEYS = {"setupComplete", "serverContent", "usageMetadata", "toolCall", "toolCallCancellation",
                  "goAway", "sessionResumptionUpdate"}
GERMANY = "What is the capital of Germany?"
GERMANY_REPLY = "The capital of Germany is Berlin."


def live_url(server: LocaliveServer, version: str = "v1beta", *, prefix: str = "/", query: str = "") -> str:
    base = server.plain_base_url.replace("http://", "ws://", 1)
    url = f"{base}{prefix}ws/google.ai.generativelanguage.{version}.{METHOD}"
    return f"{url}?{query}" if query else url


def setup_message(**overrides: Any) -> dict[str, Any]:
    setup: dict[str, Any] = {"model": MODEL, "generationConfig": {"responseModalities": ["TEXT"]}}
    setup.update(overrides)
    return {"setup": setup}


def user_turn(text: str) -> dict[str, Any]:
    return {"clientContent": {"turns": [{"role": "user", "parts": [{"text": text}]}], "turnComplete": True}}


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(TIMEOUT_S):
        frame = await ws.recv()
    message = json.loads(frame)
    assert isinstance(message, dict), frame
    return message


async def open_session(url: str,
                       setup: dict[str, Any] | None = None) -> tuple[ClientConnection, dict[str, Any]]:
    """Connect, send setup, return the socket and the first server message."""
    ws = await connect(url, open_timeout=TIMEOUT_S, max_size=2**20)
    await ws.send(json.dumps(setup or setup_message()))
    return ws, await recv_json(ws)


async def run_turn(ws: ClientConnection, prompt: str) -> list[dict[str, Any]]:
    """Send one user turn; return every server message up to and including the one with turnComplete."""
    await ws.send(json.dumps(user_turn(prompt)))
    messages = []
    while True:
        message = await recv_json(ws)
        messages.append(message)
        if message.get("serverContent", {}).get("turnComplete"):
            return messages


def turn_text(messages: list[dict[str, Any]]) -> str:
    return "".join(part.get("text", "")
                   for m in messages
                   for part in m.get("serverContent", {}).get("modelTurn", {}).get("parts", []))


def assert_text_turn(messages: list[dict[str, Any]], expected: str) -> None:
    """modelTurn text pieces, then generationComplete, then turnComplete (last)."""
    assert turn_text(messages) == expected, messages
    assert messages[-1]["serverContent"].get("turnComplete") is True, messages
    generation = [i for i, m in enumerate(messages) if m.get("serverContent", {}).get("generationComplete")]
    assert len(generation) == 1 and generation[0] < len(messages) - 1, messages
    text_positions = [i for i, m in enumerate(messages) if "modelTurn" in m.get("serverContent", {})]
    assert text_positions and max(text_positions) < generation[0], messages


@dataclass
class Healthy:
    """A well-behaved session, set up before the bad input and used after it."""

    ws: ClientConnection
    setup_reply: dict[str, Any] = field(default_factory=dict)

    async def assert_turn_works(self) -> None:
        assert_text_turn(await run_turn(self.ws, GERMANY), GERMANY_REPLY)


@asynccontextmanager
async def healthy_session(server: LocaliveServer) -> AsyncIterator[Healthy]:
    ws, first = await open_session(live_url(server))
    try:
        assert "setupComplete" in first, first
        yield Healthy(ws, first)
    finally:
        await ws.close()


@dataclass
class Closed:
    code: int
    reason: str
    messages: list[dict[str, Any]]


async def until_closed(ws: ClientConnection) -> Closed:
    """Read until the server closes; return its close code and reason and what it sent before."""
    messages = []
    try:
        while True:
            async with asyncio.timeout(TIMEOUT_S):
                frame = await ws.recv()
            messages.append(json.loads(frame))
    except ConnectionClosed as exc:
        assert exc.rcvd is not None, f"the server dropped the connection without a close frame: {exc!r}"
        return Closed(exc.rcvd.code, exc.rcvd.reason, messages)
    except TimeoutError:
        pytest.fail(f"the server did not close the session within {TIMEOUT_S} s (got {messages})")


async def send_quietly(ws: ClientConnection, frame: str | bytes) -> None:
    """Send a frame; the server may close before it has read all of it (that is fine here)."""
    try:
        async with asyncio.timeout(TIMEOUT_S):
            await ws.send(frame)
    except ConnectionClosed:
        pass


def assert_short_safe_reason(reason: str) -> None:
    assert reason, "the close frame should carry a reason"
    assert len(reason.encode("utf-8")) <= 123
    for leak in ("Traceback", 'File "', "pydantic", "Expecting value", "line 1 column", "\n"):
        assert leak not in reason, f"close reason leaks internals: {reason!r}"


# --- the bad inputs -----------------------------------------------------------------------------------------

def nested_lists(depth: int) -> str:
    return "[" * depth + "]" * depth


def nested_setup_label(depth: int) -> str:
    """A setup whose free-form labels value is nested `depth` deep (well under 1 MiB)."""
    return f'{{"setup":{{"model":"{MODEL}","labels":{{"x":{nested_lists(depth)}}}}}}}'


def nested_function_response(depth: int) -> str:
    """A toolResponse whose free-form `response` Struct is nested `depth` deep (parses fine as JSON)."""
    value = "1"
    for _ in range(depth):
        value = f'{{"a":{value}}}'
    message = {"toolResponse": {"functionResponses": [{"id": "x", "name": "f", "response": {}}]}}
    return json.dumps(message).replace('"response": {}', f'"response": {value}')


@dataclass(frozen=True)
class BadCase:
    code: int
    frames: tuple[str | bytes, ...]  # sent back to back
    setup_first: bool = False  # set up the session (and expect setupComplete) before sending `frames`
    reason_check: Callable[[str], bool] | None = None


BAD_CASES = {
    "malformed_json": BadCase(1007, ('{"setup": {"model": ',)),
    "not_json_at_all": BadCase(1007, ("hello there",)),
    "unknown_setup_field": BadCase(1007, (json.dumps(setup_message(notARealField=1)),),
                                   reason_check=lambda r: "notARealField" in r),
    "unknown_nested_setup_field": BadCase(
        1007, (json.dumps(setup_message(generationConfig={"responseModalities": ["TEXT"], "bogusKnob": 2})),),
        reason_check=lambda r: "bogusKnob" in r),
    "wrong_type_temperature": BadCase(
        1007,
        (json.dumps(setup_message(generationConfig={"responseModalities": ["TEXT"], "temperature": "hot"})),),
        reason_check=lambda r: "temperature" in r),
    "client_content_before_setup": BadCase(1007, (json.dumps(user_turn("hi")),)),
    "second_setup": BadCase(1007, (json.dumps(setup_message()),), setup_first=True),
    "two_response_modalities": BadCase(
        1007, (json.dumps(setup_message(generationConfig={"responseModalities": ["TEXT", "AUDIO"]})),)),
    "empty_text_frame": BadCase(1007, ("",)),
    "empty_text_frame_after_setup": BadCase(1007, ("",), setup_first=True),
    "deeply_nested_lists": BadCase(1007, (nested_lists(100_000),)),
    "deeply_nested_in_setup": BadCase(1007, (nested_setup_label(100_000),)),
    "nested_struct_in_tool_response": BadCase(1007, (nested_function_response(500),), setup_first=True),
    "unknown_model": BadCase(
        1008, (json.dumps(setup_message(model="models/no-such-model-xyz")),),
        reason_check=lambda r: r.startswith("models/no-such-model-xyz is not found for API version v1beta")),
    "message_too_big": BadCase(
        1009, (json.dumps(setup_message(systemInstruction={"parts": [{"text": "x" * (2 * 1024 * 1024)}]})),)),
}


@pytest.mark.parametrize("name", list(BAD_CASES))
async def test_bad_input_closes_only_that_session(emulator_server: LocaliveServer, name: str) -> None:
    case = BAD_CASES[name]
    for frame in case.frames:
        assert len(frame) < 1024 * 1024 or case.code == 1009, "keep the non-size cases under the size limit"
    async with healthy_session(emulator_server) as healthy:
        ws = await connect(live_url(emulator_server), open_timeout=TIMEOUT_S, max_size=2**20)
        try:
            if case.setup_first:
                await ws.send(json.dumps(setup_message()))
                assert "setupComplete" in await recv_json(ws)
            for frame in case.frames:
                await send_quietly(ws, frame)
            closed = await until_closed(ws)
        finally:
            await ws.close()

        assert closed.messages == [], f"nothing should be sent in reply to bad input: {closed.messages}"
        assert (closed.code, name) == (case.code, name), f"close reason: {closed.reason!r}"
        assert_short_safe_reason(closed.reason)
        if case.reason_check is not None:
            assert case.reason_check(closed.reason), f"unexpected reason: {closed.reason!r}"

        await healthy.assert_turn_works()


async def test_binary_setup_frame_is_accepted(emulator_server: LocaliveServer) -> None:
    """The JS SDK in a browser may send Blobs; a binary frame holding valid JSON is a valid message."""
    async with healthy_session(emulator_server) as healthy:
        ws = await connect(live_url(emulator_server), open_timeout=TIMEOUT_S, max_size=2**20)
        try:
            await ws.send(json.dumps(setup_message()).encode("utf-8"))
            first = await recv_json(ws)
            assert list(first) == ["setupComplete"], first
            await ws.send(json.dumps(user_turn("What is the capital of France?")).encode("utf-8"))
            messages = []
            while not (messages and messages[-1].get("serverContent", {}).get("turnComplete")):
                messages.append(await recv_json(ws))
            assert_text_turn(messages, "The capital of France is Paris.")
        finally:
            await ws.close()
        await healthy.assert_turn_works()


# --- URL handling -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["v1", "v1beta", "v1alpha"])
@pytest.mark.parametrize("prefix", ["/", "//"], ids=["single-slash", "double-slash"])
async def test_paths_and_api_versions(emulator_server: LocaliveServer, version: str, prefix: str) -> None:
    ws, first = await open_session(live_url(emulator_server, version, prefix=prefix))
    try:
        assert "setupComplete" in first, first
        messages = await run_turn(ws, "What is the capital of France?")
        assert_text_turn(messages, "The capital of France is Paris.")
    finally:
        await ws.close()


async def test_api_key_in_query_is_not_logged(emulator_server: LocaliveServer) -> None:
    secret = "secret-value-7f3a9c"
    url = live_url(emulator_server, "v1beta", prefix="//", query=f"key={secret}")
    ws, first = await open_session(url)
    try:
        session_id = first["setupComplete"]["sessionId"]
        assert_text_turn(await run_turn(ws, GERMANY), GERMANY_REPLY)
    finally:
        await ws.close()

    # The access line is written when the server has finished the session: wait for it (bounded).
    marker = f"session={session_id}"
    async with asyncio.timeout(TIMEOUT_S):
        while not (lines := [ln for ln in emulator_server.log().splitlines()  # noqa: ASYNC110  # no event to await
                             if marker in ln and '"WS ' in ln]):
            await asyncio.sleep(0.05)
    line, log = lines[0], emulator_server.log()
    assert f"/ws/google.ai.generativelanguage.v1beta.{METHOD}" in line, line
    assert secret not in log, "the API key from ?key= leaked into the server log"


# --- what the server sends ----------------------------------------------------------------------------------

async def test_first_message_is_exactly_setup_complete(emulator_server: LocaliveServer) -> None:
    ws, first = await open_session(live_url(emulator_server))
    try:
        assert list(first) == ["setupComplete"], first
        assert isinstance(first["setupComplete"], dict), first
        assert set(first["setupComplete"]) <= {"sessionId"}, first
    finally:
        await ws.close()


def _all_keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [*value, *(k for v in value.values() for k in _all_keys(v))]
    if isinstance(value, list):
        return [k for v in value for k in _all_keys(v)]
    return []


async def test_server_messages_are_camel_case(emulator_server: LocaliveServer) -> None:
    ws, first = await open_session(live_url(emulator_server))
    try:
        messages = [first, *await run_turn(ws, "What is the capital of France?")]
        messages += await run_turn(ws, "And of Germany?")
    finally:
        await ws.close()
    for message in messages:
        assert message, "empty server message"
        assert set(message) <= TOP_LEVEL_KEYS, f"unexpected top-level keys: {message}"
        snake = [k for k in _all_keys(message) if "_" in k or not re.match(r"^[a-z][A-Za-z0-9]*$", k)]
        assert not snake, f"non-camelCase keys {snake} in {message}"
    assert any("usageMetadata" in m for m in messages), messages
