"""A scripted client for property-based tests of `LiveSession` (tests/unit/test_session_fuzz.py): it sends the
frames of a scenario through the protocol's parser and the session's public surface (`handle`, `outbox`,
`aclose`), reads the outbox as the transport's writer does, and checks what a client may count on.

Frames are JSON-like dicts in which a few markers stand for values only known when the frame is sent (the id of a
function call the session made) or too big to print in a failing example (audio, a long text); `render` fills
them in. `Mutation`s turn a frame into an invalid one (unknown field, wrong type, broken JSON, …).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from localive.audio.pcm import Pcm16
from localive.engines.asr.base import Transcript
from localive.engines.llm.emulator import EmulatorLLM, EmulatorScript
from localive.engines.tts.fake import ToneTTS
from localive.engines.turn.base import FakeEndOfTurn
from localive.engines.vad.energy import EnergyVAD
from localive.engines.vision.base import Frame
from localive.models.registry import FAMILIES, ModelRegistry
from localive.protocol import errors
from localive.protocol import messages as wire
from localive.protocol.errors import Close, LiveError, close_for
from localive.protocol.parse import parse_client_message
from localive.protocol.server_messages import dumps
from localive.session.engines import Engines
from localive.session.lifetime import LOCAL_LIMITS, Limits
from localive.session.live import LiveSession
from localive.tools.loader import ToolEngines
from tests.support.virtual_time import InlineExecutor, LoopClock
from tests.unit.test_server_signals import sdk
from tests.unit.test_session_tools import FakeSandbox

# --- the server: fakes -------------------------------------------------------------------------------------

SCRIPT = EmulatorScript.from_dict({"default": "I heard you, turn {turn}.", "reply": [
    {"match": "lights", "call": "turn_on_the_lights", "text": "Done: {result}"},
    {"match": "weather", "call": "get_weather", "args": {"city": "Paris"}, "text": "Weather: {result}"},
    {"match": "bad args", "call": "get_weather", "args": {"town": 3}, "text": "never said"},
    {"match": "long task", "call": "long_task", "text": "Report: {result}", "pending": "Started it."},
    {"match": "slow", "text": "one, two, three, four, five, six, seven, eight, nine, ten.", "delay_ms": 200},
    {"match": "primes", "code": "print(5117)", "text": "The sum is {result}."},
]})
# what the recogniser "hears" in an utterance depends only on its length (tenths of a second)
UTTERANCES = ("", "hello there", "mm-hm", "turn on the lights", "what is the weather", "start the long task",
              "yeah", "count slowly please", "add up the primes", "bad args please", "stop", "Huh?")
PROBE = "Please answer this probe."


class WordsByLength:
    """Speech recognition stand-in: the words depend on the utterance's length; takes 50 ms (virtual)."""

    name = "words-by-length"
    sample_rate_hz = 16000

    async def transcribe(self, audio: Pcm16, language: str | None = None, expect: str | None = None, *,
                         detect_among: tuple[str, ...] | None = None) -> Transcript:
        await asyncio.sleep(0.05)
        words = UTTERANCES[int(audio.duration_s * 10) % len(UTTERANCES)]
        return Transcript(words, language="en" if detect_among is not None else None, audio_s=audio.duration_s)

    def close(self) -> None:
        pass


class PngOnlyVision:
    async def describe(self, frame: Frame, previous: Frame | None = None) -> str:
        if not frame.data.startswith(PNG_MAGIC):
            raise ValueError("The frame is not an image.")
        return "a test card"


class MemoryStore:
    """SessionStore in a dict. (SqliteStore works on a thread of its own, which virtual time would run ahead of;
    it is tested on its own in test_resumption.py.)"""

    def __init__(self) -> None:
        self.saved: dict[str, tuple[str, str]] = {}

    async def save(self, handle: str, *, session_key: str, principal: str, state: str) -> None:
        self.saved[handle] = (principal, state)

    async def load(self, handle: str, principal: str) -> str | None:
        entry = self.saved.get(handle)
        return entry[1] if entry is not None and entry[0] == principal else None

    async def session_ended(self, session_key: str) -> None:
        pass

    async def ping(self) -> None:
        pass


@dataclass(frozen=True)
class Server:
    """Which engines the server has. `end_of_turn`: semantic turn-taking for every model family, with this fixed
    probability that a pause ends the turn (None: silence alone ends turns)."""

    voice: bool = True
    vision: bool = True
    sandbox: bool = True
    end_of_turn: float | None = None
    context_tokens: int = 32768

    def engines(self) -> Engines:
        llm = EmulatorLLM(replace(SCRIPT, context_tokens=self.context_tokens))
        voice: dict[str, Any] = {}
        if self.voice:
            voice = {"asr": WordsByLength(), "tts": ToneTTS(ms_per_char=5.0, delay_s=0.005), "vad_factory": EnergyVAD,
                     "vad_executor": InlineExecutor()}
            if self.end_of_turn is not None:
                voice |= {"end_of_turn": FakeEndOfTurn(self.end_of_turn), "semantic_families": frozenset(FAMILIES)}
        return Engines(llm_for=lambda entry: llm, tools=ToolEngines(sandbox=FakeSandbox() if self.sandbox else None),
                       vision=PngOnlyVision() if self.vision else None, **voice)  # type: ignore[arg-type]


# --- frames ------------------------------------------------------------------------------------------------

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_MARKER = re.compile(r"<<(\w+)(?::([^>]*))?>>")


@functools.lru_cache(maxsize=256)
def pcm_base64(kind: str, ms: int, rate: int) -> str:
    """`ms` of 16-bit PCM at `rate`: silence, a tone the VAD hears as speech, a hum below its floor; `odd`: a
    tone one byte short (not whole samples)."""
    t = np.arange(rate * ms // 1000) / rate
    amplitude = {"silence": 0.0, "tone": 0.3, "hum": 0.002, "odd": 0.3}[kind]
    data = Pcm16.from_float32((amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate).data
    return base64.b64encode(data[:-1] if kind == "odd" else data).decode()


@dataclass
class Seen:
    """What the client has learnt so far, for the markers: the function calls it was sent, the newest handle."""

    calls: list[tuple[str, str]] = field(default_factory=list)  # (id, name)
    handle: str | None = None


class NothingToAnswer(Exception):
    """A toolResponse for the client's k-th function call, before it was sent any: the client sends nothing."""


def render(value: Any, seen: Seen) -> Any:
    """The frame with its markers filled in: <<audio:kind:ms:rate>>, <<png>>, <<notpng>>, <<words:n>> (n words),
    <<call:k>> and <<callname:k>> (the k-th function call the client was sent, from the end if negative; when there
    is none: NothingToAnswer), <<handle>> (the newest resumption handle; a field holding it is left out while
    there is none)."""
    if isinstance(value, dict):  # {"handle": "<<handle>>"} before any handle was sent: no handle
        return {k: render(v, seen) for k, v in value.items() if not (v == "<<handle>>" and seen.handle is None)}
    if isinstance(value, list):
        return [render(v, seen) for v in value]
    if not isinstance(value, str) or not (match := _MARKER.fullmatch(value)):
        return value
    kind, arg = match.group(1), match.group(2) or ""
    if kind == "audio":
        sound, ms, rate = arg.split(":")
        return pcm_base64(sound, int(ms), int(rate))
    if kind in ("png", "notpng"):
        return base64.b64encode(PNG_MAGIC + bytes(16) if kind == "png" else b"hello").decode()
    if kind == "words":
        return " ".join(["word"] * int(arg))
    if kind in ("call", "callname"):
        if not seen.calls:
            raise NothingToAnswer()
        call_id, name = seen.calls[int(arg) % len(seen.calls)]
        return call_id if kind == "call" else name
    if kind == "handle":
        return seen.handle or "no-such-handle"
    raise ValueError(f"unknown marker {value}")


MUTATIONS = ("unknown_field", "wrong_type", "null_body", "truncated", "array", "two_keys", "not_utf8", "deep",
             "snake_case")


def mutate(frame: dict[str, Any], mutation: str | None) -> str | bytes:
    """The frame as sent: JSON, or made invalid by `mutation` (snake_case keys are valid: the protocol takes
    them)."""
    (key, body), = frame.items() if len(frame) == 1 else [("_", frame)]
    match mutation:
        case None:
            return json.dumps(frame)
        case "unknown_field":
            return json.dumps({key: {**body, "fuzzUnknownField": 1}} if isinstance(body, dict) else frame)
        case "wrong_type":
            return json.dumps({key: [body]})
        case "null_body":
            return json.dumps({key: None})
        case "truncated":
            text = json.dumps(frame)
            return text[: len(text) // 2]
        case "array":
            return json.dumps([frame])
        case "two_keys":
            return json.dumps({**frame, "toolResponse": {}})
        case "not_utf8":
            return b"\xff\xfe" + json.dumps(frame).encode()
        case "deep":
            return "[" * 100_000 + "]" * 100_000
        case "snake_case":
            return json.dumps(_snake(frame))
    raise ValueError(mutation)


def _snake(value: Any) -> Any:
    if isinstance(value, dict):
        return {re.sub(r"(?<!^)([A-Z])", r"_\1", k).lower(): _snake(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snake(v) for v in value]
    return value


# --- the steps of a scenario --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Send:
    frame: dict[str, Any]
    mutation: str | None = None


@dataclass(frozen=True)
class Speak:
    """Speech the VAD hears (a tone), then silence, in chunks of `chunk_ms` at `rate` Hz."""

    speech_ms: int
    silence_ms: int
    chunk_ms: int = 100
    rate: int = 16000

    def frames(self) -> Iterator[dict[str, Any]]:
        for sound, total in (("tone", self.speech_ms), ("silence", self.silence_ms)):
            for _ in range(total // self.chunk_ms):
                yield {"realtimeInput": {"audio": {"mimeType": f"audio/pcm;rate={self.rate}",
                                                   "data": f"<<audio:{sound}:{self.chunk_ms}:{self.rate}>>"}}}


@dataclass(frozen=True)
class Wait:
    """The client sends nothing for this long (virtual seconds; 0: lets the loop run once)."""

    seconds: float


@dataclass(frozen=True)
class StopReading:
    """The client stops reading its socket for this long (the session's outbox fills up)."""

    seconds: float


@dataclass(frozen=True)
class Disconnect:
    """The client leaves. `during`: while the session handles this frame, after `yields` passes of the loop."""

    during: Send | None = None
    yields: int = 0


Step = Send | Speak | Wait | StopReading


@dataclass(frozen=True)
class Connection:
    setup: Send
    steps: tuple[Step, ...] = ()
    end: Disconnect | None = None  # None: the client finishes well (a last question, and it waits for answers)


@dataclass(frozen=True)
class Scenario:
    server: Server = field(default_factory=Server)
    outbox_size: int = 256
    connections: tuple[Connection, ...] = ()
    lifetime_s: float | None = None  # connections (and sessions without compression) last this long (goAway first)


# --- running one and checking it ----------------------------------------------------------------------------

ALLOWED_CLOSE_CODES = {errors.NORMAL, errors.INVALID_ARGUMENT, errors.POLICY, errors.MESSAGE_TOO_BIG,
                       errors.INTERNAL, errors.OVERLOADED}
HANDLE_BOUND_S = 120.0  # virtual seconds handle() may take (a client that stops reading stalls it, ≤ 20 s)
QUIET_S = 30.0  # the session is idle once it has sent nothing for this long (and the client answered every call)
SETTLE_BOUND_S = 1800.0
ACLOSE_BOUND_S = 60.0
TURN_CONTENT = ("modelTurn", "inputTranscription", "outputTranscription", "generationComplete", "interrupted",
                "groundingMetadata", "urlContextMetadata")


class ErrorLog(logging.Handler):
    """ERROR records of localive's loggers: an unexpected exception caught and logged (its traceback), a turn that
    did not stop. The fakes never fail, so each one is a bug."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @contextmanager
    def watching(self) -> Iterator[list[logging.LogRecord]]:
        logger = logging.getLogger("localive")
        self.records = []
        logger.addHandler(self)
        try:
            yield self.records
        finally:
            logger.removeHandler(self)


@dataclass
class Client:
    """One connection's client: reads the outbox as the transport's writer does (until a Close) and keeps what
    it was sent."""

    session: LiveSession
    seen: Seen
    delivered: list[dict[str, Any]] = field(default_factory=list)
    close: Close | None = None
    reading_from: float = 0.0  # loop time: StopReading

    async def read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if (pause := self.reading_from - loop.time()) > 0:
                await asyncio.sleep(pause)
            message = await self.session.outbox.get()
            if isinstance(message, Close):
                self.close = message
                return
            self.delivered.append(message)
            if calls := message.get("toolCall"):
                self.seen.calls += [(c["id"], c["name"]) for c in calls["functionCalls"]]
            update = message.get("sessionResumptionUpdate", {})
            if update.get("resumable") and update.get("newHandle"):
                self.seen.handle = update["newHandle"]


class Driver:
    """Sends one connection's frames; records every close the client would see."""

    def __init__(self, session: LiveSession, client: Client, seeding: bool) -> None:
        self.session = session
        self.client = client
        self.closes: list[Close] = []
        self.seeding = seeding  # historyConfig.initialHistoryInClientContent: clientContent is history until complete
        self.answered: set[str] = set()
        self.handled = 0  # frames the session took without closing

    @property
    def ended(self) -> bool:
        return bool(self.closes) or self.client.close is not None

    def parse(self, frame: dict[str, Any], mutation: str | None = None) -> wire.ClientMessage | None:
        try:
            return parse_client_message(mutate(render(frame, self.client.seen), mutation))
        except NothingToAnswer:
            return None
        except LiveError as exc:  # a frame the protocol refuses: the transport closes with its code
            self.closes.append(close_for(exc))
            return None

    async def send(self, frame: dict[str, Any], mutation: str | None = None) -> None:
        message = self.parse(frame, mutation)
        if message is None:
            return
        try:
            async with asyncio.timeout(HANDLE_BOUND_S):
                await self.session.handle(message)
        except LiveError as exc:
            self.closes.append(close_for(exc))
            return
        except TimeoutError:
            raise AssertionError(f"handle() took over {HANDLE_BOUND_S} s (virtual): {frame}") from None
        self.handled += 1
        if isinstance(message, wire.ToolResponse):
            self.answered.update(r.id or "" for r in message.function_responses)
        if isinstance(message, wire.ClientContent) and message.turn_complete:
            self.seeding = False

    async def step(self, step: Step) -> None:
        match step:
            case Send(frame, mutation):
                await self.send(frame, mutation)
            case Speak():
                for frame in step.frames():
                    if self.ended:
                        return
                    await self.send(frame)
            case Wait(seconds):
                await asyncio.sleep(seconds)
            case StopReading(seconds):
                self.client.reading_from = asyncio.get_running_loop().time() + seconds

    async def disconnect_during(self, end: Disconnect) -> None:
        """The client leaves while the session handles a frame (the connection's task is cancelled in it)."""
        message = self.parse(end.during.frame, end.during.mutation) if end.during else None
        if message is None:
            return
        task = asyncio.create_task(self.session.handle(message), name="fuzz-handle")
        for _ in range(end.yields):
            await asyncio.sleep(0)
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, LiveError):
            pass

    async def answer_calls(self) -> None:
        """A well-behaved client answers each function call it was sent, once (SILENT: no new turn)."""
        cancelled = {i for m in self.client.delivered for i in m.get("toolCallCancellation", {}).get("ids", [])}
        for call_id, name in list(self.client.seen.calls):
            if call_id not in self.answered and call_id not in cancelled and not self.ended:
                await self.send({"toolResponse": {"functionResponses": [
                    {"id": call_id, "name": name, "response": {"output": "ok"}, "scheduling": "SILENT"}]}})
                self.answered.add(call_id)

    async def settle(self) -> None:
        """Wait (answering function calls) until the session has been quiet for QUIET_S."""
        loop = asyncio.get_running_loop()
        started = quiet_since = loop.time()
        count = len(self.client.delivered)
        while not self.ended and loop.time() - quiet_since < QUIET_S:
            assert loop.time() - started < SETTLE_BOUND_S, "the session never goes quiet"
            await self.answer_calls()
            await asyncio.sleep(1.0)
            if len(self.client.delivered) != count:
                count, quiet_since = len(self.client.delivered), loop.time()

    async def finish(self, manual_activity: bool) -> None:
        """The client's good end: it ends its speech, lets the session finish, asks one last question and
        waits for its answer, which must come (a turnComplete not interrupted) unless the session closes."""
        await self.send({"realtimeInput": {"audioStreamEnd": True}})
        if manual_activity and not self.ended:
            await self.send({"realtimeInput": {"activityEnd": {}}})
        await self.settle()
        for _ in range(2 if self.seeding else 1):  # while seeding, the first clientContent only completes history
            if self.ended:
                return
            asked = len(self.client.delivered)
            await self.send({"clientContent": {"turns": [{"role": "user", "parts": [{"text": PROBE}]}],
                                               "turnComplete": True}})
            await self.settle()
        if not self.ended:
            answered = [s for s in segments(self.client.delivered) if s.end > asked and s.complete
                        and not s.interrupted]
            assert answered, f"no answer to the last question: {self.client.delivered[asked:]}"


@dataclass(frozen=True)
class Segment:
    """The turn messages up to and including a turnComplete (or the end of the stream)."""

    kinds: tuple[str, ...]
    end: int  # index in the stream of its last message, +1
    complete: bool

    @property
    def interrupted(self) -> bool:
        return "interrupted" in self.kinds


def kinds_of(message: dict[str, Any]) -> list[str]:
    content = message.get("serverContent", {})
    found = [k for k in TURN_CONTENT if k in content]
    found += [k for k in ("toolCall", "toolCallCancellation") if k in message]
    if content.get("turnComplete"):
        found.append("turnComplete")
    return found


def segments(delivered: list[dict[str, Any]]) -> list[Segment]:
    out: list[Segment] = []
    current: list[str] = []
    for i, message in enumerate(delivered):
        kinds = kinds_of(message)
        current += kinds
        if "turnComplete" in kinds:
            out.append(Segment(tuple(current), i + 1, True))
            current = []
    if current:
        out.append(Segment(tuple(current), len(delivered), False))
    return out


def check_stream(delivered: list[dict[str, Any]], connection_ended: bool) -> None:
    """What the client was sent is well-formed, and every model turn ends with turnComplete (or the connection
    ended first)."""
    for message in delivered:
        dumps(message)  # as the transport sends it
        sdk(message)  # and as google-genai reads it
    if delivered:
        assert "setupComplete" in delivered[0], delivered[0]
        assert not any("setupComplete" in m for m in delivered[1:])
    for segment in segments(delivered):
        kinds = segment.kinds
        if not segment.complete:
            assert connection_ended, f"a model turn without turnComplete: {kinds}"
            continue
        if segment.interrupted:
            assert kinds.count("interrupted") == 1 and kinds.index("interrupted") == len(kinds) - 2, kinds
        assert kinds.count("generationComplete") <= 1, kinds
        if "generationComplete" in kinds:
            assert "modelTurn" not in kinds[kinds.index("generationComplete"):], kinds


def check_close(close: Close) -> None:
    assert close.code in ALLOWED_CLOSE_CODES, close
    assert len(close.reason.encode()) <= errors.MAX_REASON_BYTES, close
    # the fakes never fail, so a close the server is to blame for is an unexpected exception or a lost engine
    assert close.blame != "server", close


async def run_connection(connection: Connection, session: LiveSession, seen: Seen) -> list[str]:
    """Run one connection and check it; returns what happened in it, in a few words (test statistics)."""
    before = asyncio.all_tasks()
    client = Client(session, seen)
    reader = asyncio.create_task(client.read(), name="fuzz-client")
    setup = render(connection.setup.frame, seen).get("setup", {})
    seeded = setup.get("historyConfig", {}).get("initialHistoryInClientContent") is True
    driver = Driver(session, client, seeding=seeded and not setup.get("sessionResumption", {}).get("handle"))
    try:
        await driver.send(connection.setup.frame, connection.setup.mutation)
        for step in connection.steps:
            if driver.ended:
                break
            await driver.step(step)
        if connection.end is not None and not driver.ended:
            await driver.disconnect_during(connection.end)
        elif not driver.ended:
            aad = setup.get("realtimeInputConfig", {}).get("automaticActivityDetection", {})
            await driver.finish(manual_activity=aad.get("disabled") is True)
    finally:
        async with asyncio.timeout(ACLOSE_BOUND_S):
            await session.aclose()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    left = [t for t in asyncio.all_tasks() if t not in before]
    assert not left, f"tasks left running after aclose(): {[t.get_name() for t in left]}"
    closes = [*driver.closes, *([client.close] if client.close else [])]
    for close in closes:
        check_close(close)
    check_stream(client.delivered, connection_ended=driver.ended or connection.end is not None)
    turns = segments(client.delivered)
    end = "disconnect" if connection.end else "good end"
    if closes:
        end = f"close {closes[0].code} {closes[0].reason[:30]}"
    return [end, f"turns completed: {min(sum(s.complete for s in turns), 5)}",
            *(["interrupted"] if any(s.interrupted for s in turns) else []),
            *(["tool call"] if any("toolCall" in s.kinds for s in turns) else []),
            *(["resumed"] if seen.handle and "<<handle>>" in str(connection.setup.frame) else [])]


async def run_scenario(scenario: Scenario, registry: ModelRegistry) -> list[str]:
    engines = scenario.server.engines()
    store = MemoryStore()
    seen = Seen()
    happened = []
    for number, connection in enumerate(scenario.connections):
        limits = LOCAL_LIMITS if scenario.lifetime_s is None else Limits(
            max_connection_s=scenario.lifetime_s, goaway_before_s=scenario.lifetime_s / 4,
            max_session_s=scenario.lifetime_s * 1.5)
        session = LiveSession(registry=registry, engines=engines, session_id=f"fuzz-{number}", store=store,
                              outbox_size=scenario.outbox_size, principal="fuzzer", limits=limits,
                              clock=LoopClock())
        seen.calls = []
        happened += await run_connection(connection, session, seen)
    return happened
