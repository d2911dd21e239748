"""`--ws-compression`: permessage-deflate is declined by default (clients that offer it, as both SDKs do, go on
uncompressed) and accepted with `on`; a session works either way."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect

from localive.testing.server import LocaliveServer, start_server

PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
SETUP = json.dumps({"setup": {"model": "gemini-2.0-flash-live-001",
                              "generationConfig": {"responseModalities": ["TEXT"]}}})


@pytest.fixture(scope="module")
def compressing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    server = start_server(tmp_path_factory.mktemp("compressing"), "--llm", "emulator", "--ws-compression", "on")
    yield server
    server.stop()


async def _extensions(server: LocaliveServer) -> list[str]:
    """The extensions negotiated by a client that offers permessage-deflate, after a setup answered."""
    async with connect(f"ws://127.0.0.1:{server.plain_port}{PATH}", compression="deflate") as ws:
        await ws.send(SETUP)
        assert "setupComplete" in json.loads(await ws.recv())
        return [extension.name for extension in ws.protocol.extensions]


async def test_compression_is_declined_by_default(emulator_server: LocaliveServer) -> None:
    assert await _extensions(emulator_server) == []


async def test_compression_is_accepted_when_on(compressing_server: LocaliveServer) -> None:
    assert await _extensions(compressing_server) == ["permessage-deflate"]
