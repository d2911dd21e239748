"""A minimal raw Live API client (websockets) that times turns: cheap enough to run many sessions at once."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from localive.bench.server import BenchError

MODEL = "models/gemini-2.0-flash-live-001"


@dataclass(frozen=True)
class TurnTiming:
    first_text_s: float | None  # send → first modelTurn text (None if the turn had no text)
    complete_s: float  # send → serverContent.turnComplete
    messages: int  # server messages received for this turn
    text: str


class LiveClient:
    """One Live session: `open()` sends setup and waits for setupComplete; `turn()` runs one text turn."""

    def __init__(self, ws: ClientConnection, timeout_s: float, setup_s: float) -> None:
        self._ws = ws
        self._timeout_s = timeout_s
        self.setup_s = setup_s  # connect → setupComplete

    @classmethod
    async def open(cls, url: str, *, timeout_s: float, generation_config: dict[str, Any] | None = None) -> LiveClient:
        config: dict[str, Any] = {"responseModalities": ["TEXT"], **(generation_config or {})}
        started = time.perf_counter()
        try:
            # proxy=None: only ever talk to the local server, whatever HTTPS_PROXY says.
            ws = await connect(url, proxy=None, open_timeout=timeout_s, close_timeout=timeout_s)
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise BenchError(f"cannot connect to {url}: {exc}") from exc
        client = cls(ws, timeout_s, 0.0)
        try:
            await ws.send(json.dumps({"setup": {"model": MODEL, "generationConfig": config}}))
            first = await client._receive(deadline=started + timeout_s)
        except BaseException:
            await client.close()
            raise
        if "setupComplete" not in first:
            await client.close()
            raise BenchError(f"expected setupComplete first, got {sorted(first)}")
        client.setup_s = time.perf_counter() - started
        return client

    async def turn(self, text: str) -> TurnTiming:
        """Send a complete user turn and read until turnComplete."""
        message = {"clientContent": {"turns": [{"role": "user", "parts": [{"text": text}]}], "turnComplete": True}}
        started = time.perf_counter()
        deadline = started + self._timeout_s
        await self._ws.send(json.dumps(message))
        first_text: float | None = None
        pieces: list[str] = []
        count = 0
        while True:
            received = await self._receive(deadline=deadline)
            now = time.perf_counter()
            count += 1
            content = received.get("serverContent")
            if not isinstance(content, dict):
                continue
            for part in (content.get("modelTurn") or {}).get("parts") or []:
                if part.get("text"):
                    if first_text is None:
                        first_text = now - started
                    pieces.append(part["text"])
            if content.get("turnComplete"):
                return TurnTiming(first_text, now - started, count, "".join(pieces))

    async def _receive(self, *, deadline: float) -> dict[str, Any]:
        return (await receive_json(self._ws, deadline=deadline, timeout_s=self._timeout_s))[1]

    async def close(self) -> None:
        await self._ws.close()


async def receive_json(ws: ClientConnection, *, deadline: float, timeout_s: float) -> tuple[float, dict[str, Any]]:
    """The next server message (a JSON object) and the moment it arrived; BenchError on timeout or close."""
    try:
        async with asyncio.timeout(max(0.0, deadline - time.perf_counter())):
            frame = await ws.recv()
    except TimeoutError:
        raise BenchError(f"no server message within {timeout_s:.0f} s") from None
    except ConnectionClosed as exc:
        close = exc.rcvd
        detail = f"{close.code} {close.reason!r}" if close else "no close frame"
        raise BenchError(f"the server closed the session ({detail})") from None
    now = time.perf_counter()
    value = json.loads(frame)
    if not isinstance(value, dict):
        raise BenchError(f"server sent a non-object message: {str(frame)[:80]!r}")
    return now, value
