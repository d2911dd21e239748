"""Driving a LiveSession in-process (unit tests): send a client frame, read a turn's messages, make a tone."""

from __future__ import annotations

import asyncio
import base64
import json

import numpy as np

from localive.audio.pcm import Pcm16
from localive.clock import VirtualClock
from localive.protocol.errors import Close
from localive.protocol.parse import parse_client_message
from localive.session.live import LiveSession


async def send(session: LiveSession, frame: dict) -> None:
    await session.handle(parse_client_message(json.dumps(frame)))


async def drain_turn(session: LiveSession, timeout_s: float = 10, clock: VirtualClock | None = None,
                     step_s: float = 0.05) -> list[dict]:
    """The session's messages up to and including turnComplete (a close fails the test). With a virtual `clock`,
    time moves on by `step_s` whenever the session has nothing to send (up to `timeout_s` of virtual time)."""
    messages = []
    waited_s = 0.0
    while True:
        while clock is not None and len(session.outbox) == 0:
            assert waited_s < timeout_s, f"no turnComplete within {timeout_s} s of virtual time"
            await clock.advance(step_s)
            waited_s += step_s
        message = await asyncio.wait_for(session.outbox.get(), timeout_s)
        assert not isinstance(message, Close), message
        messages.append(message)
        if message.get("serverContent", {}).get("turnComplete"):
            return messages


def tone(seconds: float, loud: bool) -> dict:
    """A realtimeInput audio frame: a 220 Hz tone (loud) or silence, 16 kHz."""
    t = np.arange(int(16000 * seconds)) / 16000
    samples = (0.3 * np.sin(2 * np.pi * 220 * t)) if loud else np.zeros_like(t)
    data = Pcm16.from_float32(samples.astype(np.float32), 16000).data
    return {"realtimeInput": {"audio": {"data": base64.b64encode(data).decode(), "mimeType": "audio/pcm;rate=16000"}}}
