"""Drive a Live session in this process, without a server or a socket: send the client's wire messages, read what
the server would send, turn by turn.

    async with SessionHarness(llm=EmulatorLLM(EmulatorScript.from_dict({"default": "You said: {input}"}))) as s:
        await s.setup()                                  # TEXT responses; returns setupComplete
        messages = await s.say("hello")                  # a clientContent turn, up to turnComplete
        assert SessionHarness.text_of(messages) == "You said: hello"

The session is localive's own (`LiveSession`, as the server runs it for each WebSocket connection) on the engines
given: by default the emulator model alone (text only); pass `asr` and `tts` (the fakes in `localive.testing`,
or real engines) to send audio, or a whole `Engines`. With a `VirtualClock` as `clock`, the session's timers
(its lifetime, the turn watchdog, playback pacing) move only when the test advances the clock.

The lower-level `send` and `drain_turn` work on any `LiveSession`.
"""

from __future__ import annotations

import asyncio
import json
from types import TracebackType
from typing import Any

from localive.clock import Clock, VirtualClock
from localive.engines.asr.base import ASR
from localive.engines.llm.base import LLM
from localive.engines.llm.emulator import EmulatorLLM
from localive.engines.tts.base import TTS
from localive.engines.vad.base import VADFactory
from localive.models.registry import ModelRegistry
from localive.protocol.errors import Close
from localive.protocol.parse import parse_client_message
from localive.session.engines import Engines
from localive.session.live import LiveSession

__all__ = ["DEFAULT_MODEL", "SessionClosed", "SessionHarness", "drain_turn", "send"]

DEFAULT_MODEL = "models/gemini-2.0-flash-live-001"


class SessionClosed(AssertionError):
    """The session closed (a `Close`: code and reason) where the test expected a message."""

    def __init__(self, close: Close) -> None:
        super().__init__(f"the session closed: {close}")
        self.close = close


async def send(session: LiveSession, frame: dict[str, Any] | str) -> None:
    """Hand one client message (a dict, or JSON text as it comes off the socket) to the session, as the server
    does: parsed by the protocol, then `handle`d. A LiveError it raises is what would close the connection."""
    await session.handle(parse_client_message(frame if isinstance(frame, str) else json.dumps(frame)))


async def next_message(session: LiveSession, timeout_s: float = 10.0) -> dict[str, Any]:
    """The next message the session would send (SessionClosed if it closes instead)."""
    message = await asyncio.wait_for(session.outbox.get(), timeout_s)
    if isinstance(message, Close):
        raise SessionClosed(message)
    assert isinstance(message, dict)
    return message


async def drain_turn(session: LiveSession, timeout_s: float = 10.0, clock: VirtualClock | None = None,
                     step_s: float = 0.05) -> list[dict[str, Any]]:
    """The session's messages up to and including the next `serverContent.turnComplete` (each within
    `timeout_s`; a close raises SessionClosed). With a `VirtualClock`, time moves on by `step_s` whenever the
    session has nothing to send (up to `timeout_s` of virtual time in all), so timers and playout run at once."""
    messages = []
    waited_s = 0.0
    while True:
        while clock is not None and len(session.outbox) == 0:
            if waited_s >= timeout_s:
                raise TimeoutError(f"no turnComplete within {timeout_s} s of virtual time")
            await clock.advance(step_s)
            waited_s += step_s
        message = await next_message(session, timeout_s)
        messages.append(message)
        if message.get("serverContent", {}).get("turnComplete"):
            return messages


class SessionHarness:
    """One `LiveSession` on the given engines (see the module's doc); `async with` closes it at the end."""

    def __init__(self, *, llm: LLM | None = None, asr: ASR | None = None, tts: TTS | None = None,
                 vad_factory: VADFactory | None = None, engines: Engines | None = None,
                 registry: ModelRegistry | None = None, clock: Clock | None = None, session_id: str = "test",
                 **options: Any) -> None:
        if engines is None:
            model = llm or EmulatorLLM()
            if asr is not None and vad_factory is None:
                from localive.engines.vad.energy import EnergyVAD

                vad_factory = EnergyVAD
            engines = Engines(llm_for=lambda entry: model, asr=asr, tts=tts, vad_factory=vad_factory)
        elif llm is not None or asr is not None or tts is not None or vad_factory is not None:
            raise TypeError("pass either engines or llm/asr/tts/vad_factory, not both")
        self.engines = engines
        self.session = LiveSession(registry=registry or ModelRegistry(), engines=engines, session_id=session_id,
                                   clock=clock, **options)
        self.clock = clock

    async def send(self, frame: dict[str, Any] | str) -> None:
        await send(self.session, frame)

    async def setup(self, model: str = DEFAULT_MODEL, **fields: Any) -> dict[str, Any]:
        """Send `setup` (TEXT responses unless `generationConfig` says otherwise; camelCase fields as on the
        wire) and return the server's `setupComplete` message."""
        fields.setdefault("generationConfig", {"responseModalities": ["TEXT"]})
        await self.send({"setup": {"model": model, **fields}})
        message = await self.next_message()
        assert "setupComplete" in message, message
        return message

    async def say(self, text: str, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """One typed user turn (`clientContent`, turnComplete) and the server's messages up to its turnComplete."""
        await self.send({"clientContent": {"turns": [{"role": "user", "parts": [{"text": text}]}],
                                           "turnComplete": True}})
        return await self.drain_turn(timeout_s)

    async def next_message(self, timeout_s: float = 10.0) -> dict[str, Any]:
        return await next_message(self.session, timeout_s)

    async def drain_turn(self, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """With a VirtualClock, moves it on while the session has nothing to send (see drain_turn)."""
        clock = self.clock if isinstance(self.clock, VirtualClock) else None
        return await drain_turn(self.session, timeout_s, clock)

    async def aclose(self) -> None:
        """End the session (cancels what it was doing), as a disconnect does."""
        await self.session.aclose()

    async def __aenter__(self) -> SessionHarness:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.aclose()

    @staticmethod
    def text_of(messages: list[dict[str, Any]]) -> str:
        """The model's text in these messages (its modelTurn parts, thoughts left out)."""
        return "".join(part.get("text", "") for m in messages
                       for part in m.get("serverContent", {}).get("modelTurn", {}).get("parts", [])
                       if not part.get("thought"))

    @staticmethod
    def audio_of(messages: list[dict[str, Any]]) -> bytes:
        """The model's audio in these messages (the PCM of its modelTurn inlineData parts, in order)."""
        import base64

        return b"".join(base64.b64decode(part["inlineData"]["data"]) for m in messages
                        for part in m.get("serverContent", {}).get("modelTurn", {}).get("parts", [])
                        if "inlineData" in part)
