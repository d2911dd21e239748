"""A raw Live API client for attack tests (websockets, no SDK): it must send what an SDK never would."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

MODEL = "models/gemini-2.0-flash-live-001"
TEXT = {"responseModalities": ["TEXT"]}


async def recv(ws: ClientConnection, timeout_s: float) -> dict[str, Any]:
    """The next server message, within `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        message = json.loads(await ws.recv())
    assert isinstance(message, dict)
    return message


@asynccontextmanager
async def session(url: str, timeout_s: float, **setup: Any) -> AsyncIterator[ClientConnection]:
    """A TEXT session on `url` whose setup (with these extra fields) was answered with setupComplete."""
    async with connect(url, open_timeout=timeout_s, max_size=2**22) as ws:
        await ws.send(json.dumps({"setup": {"model": MODEL, "generationConfig": TEXT, **setup}}))
        assert "setupComplete" in await recv(ws, timeout_s)
        yield ws
