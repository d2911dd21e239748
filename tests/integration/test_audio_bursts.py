"""Audio chunks that arrive faster than real time (a client catching up, a slow server) are joined by the reader
(server/live_ws.py `_join_audio`); what follows them is still applied after them, and refused as it always was."""

from __future__ import annotations

import base64
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from localive.testing.server import LocaliveServer

PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
SETUP = json.dumps({"setup": {"model": "gemini-2.0-flash-live-001",
                              "generationConfig": {"responseModalities": ["TEXT"]}}})
SILENCE = json.dumps({"realtimeInput": {"audio": {"data": base64.b64encode(b"\0" * 640).decode(),
                                                  "mimeType": "audio/pcm;rate=16000"}}})
ODD = json.dumps({"realtimeInput": {"audio": {"data": base64.b64encode(b"\0" * 641).decode(),
                                              "mimeType": "audio/pcm;rate=16000"}}})


@pytest.mark.parametrize(("last", "reason"), [(ODD, "even number of bytes"), (SETUP, "only be sent once")])
async def test_a_burst_of_audio_then_a_wrong_message_is_refused(emulator_server: LocaliveServer, last: str,
                                                                 reason: str) -> None:
    async with connect(f"ws://127.0.0.1:{emulator_server.plain_port}{PATH}") as ws:
        await ws.send(SETUP)
        assert "setupComplete" in json.loads(await ws.recv())
        for _ in range(200):  # 4 s of audio at once
            await ws.send(SILENCE)
        await ws.send(last)
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1007
    assert reason in info.value.rcvd.reason


async def test_a_burst_of_audio_then_text_is_answered(emulator_server: LocaliveServer) -> None:
    async with connect(f"ws://127.0.0.1:{emulator_server.plain_port}{PATH}") as ws:
        await ws.send(SETUP)
        assert "setupComplete" in json.loads(await ws.recv())
        for _ in range(200):
            await ws.send(SILENCE)
        await ws.send(json.dumps({"realtimeInput": {"text": "Hello"}}))
        while True:
            message = json.loads(await ws.recv())
            if message.get("serverContent", {}).get("turnComplete"):
                break
