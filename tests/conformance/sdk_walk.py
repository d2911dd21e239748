"""Drive every field the installed google-genai SDK can put on the Live wire into a running localive.

Run as a script under the SDK to test: the conformance test runs it with the newest SDK (the virtualenv's) and with
the oldest supported one (``.venv/oldest-sdk`` first on PYTHONPATH). It imports only that SDK and the standard
library, so it sees exactly that release's types.

It walks the SDK's own pydantic types (``LiveConnectConfig`` and the parameters of every ``AsyncSession.send_*``),
recursively, and makes one case per leaf field (per value, for enums). Each case goes through the SDK's real
``connect``/``send_*`` (its real converters) to a live server; the frames the SDK sent are captured at the socket.
Outcomes:
- ``ok``: a setup case got setupComplete; a runtime case was followed by a probe turn that was answered;
- ``closed N: reason``: the server closed the session;
- ``sdk: …``: the SDK refused the value before sending anything;
- ``timeout``: neither (a hang: always a failure).

Prints one JSON object per line: sdk, message, case, frame (the captured client frame) and outcome.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import enum
import json
import struct
import sys
import types as pytypes
import typing
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import websockets.asyncio.client
from google import genai
from google.genai import errors
from google.genai import types as t

HALF_CASCADE = "gemini-live-2.5-flash-preview"
NATIVE_AUDIO = "gemini-2.5-flash-native-audio-preview-12-2025"
PROBE = "conformance probe"
TIMEOUT_S = 20.0


def _png() -> bytes:
    """A 2×2 grey PNG, built here (no image library needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"\x80\x80\x80" * 2 for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


PNG = _png()
SILENCE = b"\x00\x00" * 1600  # 100 ms of 16 kHz PCM

# --- sample values -------------------------------------------------------------------------------------------
# Keys are SDK paths (snake_case, "[]" for a list item); a leaf with no entry gets a generic value of its type.
# Values that carry meaning get a meaningful sample: an app sends a real voice name, not "x".
SAMPLES: dict[str, Any] = {
    "speech_config.voice_config.prebuilt_voice_config.voice_name": "Puck",
    "speech_config.voice_config.voice": "Kore",
    "speech_config.language_code": "en-US",
    "speech_config.voice_config.replicated_voice_config.mime_type": "audio/pcm;rate=24000",
    "input_audio_transcription.language_codes[]": "en-US",
    "output_audio_transcription.language_codes[]": "en-US",
    "input_audio_transcription.language_hints.language_codes[]": "en-US",
    "output_audio_transcription.language_hints.language_codes[]": "en-US",
    "input_audio_transcription.custom_vocabulary[]": "localive",
    "output_audio_transcription.custom_vocabulary[]": "localive",
    "input_audio_transcription.adaptation_phrases[]": "localive",
    "output_audio_transcription.adaptation_phrases[]": "localive",
    "translation_config.target_language_code": "es",
    "temperature": 0.7,
    "top_p": 0.9,
    "top_k": 40.0,
    "max_output_tokens": 256,
    "seed": 7,
    "thinking_config.thinking_budget": 128,
    "context_window_compression.trigger_tokens": 25600,
    "context_window_compression.sliding_window.target_tokens": 12800,
    "realtime_input_config.automatic_activity_detection.prefix_padding_ms": 100,
    "realtime_input_config.automatic_activity_detection.silence_duration_ms": 800,
    "avatar_config.audio_bitrate_bps": 64000,
    "avatar_config.video_bitrate_bps": 500000,
    "labels": {"team": "voice"},
    "tools[].function_declarations[].name": "get_weather",
    "google_search.time_range_filter.start_time": "2026-01-01T00:00:00Z",
    "google_search.time_range_filter.end_time": "2026-02-01T00:00:00Z",
    "partial_args[].null_value": "NULL_VALUE",
    "session_resumption.handle": "",  # a new session: a made-up handle is (rightly) refused
    "inline_data.mime_type": "image/png",
    "inline_data.data": PNG,
}
# Objects that only make sense whole: a leaf case inside one starts from this base (SDK path suffix → base).
BASES: dict[str, dict[str, Any]] = {
    "inline_data": {"mime_type": "image/png", "data": PNG},
    "file_data": {"file_uri": "https://example.com/a.png", "mime_type": "image/png"},
    "function_declarations[]": {"name": "get_weather", "description": "Weather in a city."},
    "function_call": {"name": "get_weather", "args": {"city": "Paris"}},
    "function_response": {"name": "get_weather", "response": {"temperature": 21}},
    "executable_code": {"code": "print(1)", "language": "PYTHON"},
    "code_execution_result": {"outcome": "OUTCOME_OK", "output": "1"},
    "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}},
    "replicated_voice_config": {"mime_type": "audio/pcm;rate=24000", "voice_sample_audio": SILENCE},
    "customized_avatar": {"image_mime_type": "image/png", "image_data": PNG},
    "safety_settings[]": {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"},
    "mcp_servers[]": {"name": "weather"},
    "translation_config": {"target_language_code": "es"},
}
# Part fields that describe the part's data rather than being data (a Part's data is a oneof)
PART_METADATA = {"thought", "thought_signature", "video_metadata", "media_resolution", "part_metadata",
                 "media_processing", "speech_metadata", "document_metadata", "spreadsheet_metadata", "audio_metadata"}
NOT_ON_THE_WIRE = {"http_options"}  # client-side settings, never sent
# Fields whose cases run on the native-audio model (they are refused on half-cascade models, by design).
NATIVE_ONLY = ("proactivity", "enable_affective_dialog", "generation_config.enable_affective_dialog")


def _sample(path: str) -> Any:
    """The sample for a path: the entry for the path or for its end (after a "."); the deprecated
    generation_config passthrough takes the same samples."""
    path = path.removeprefix("generation_config.")
    for key, value in SAMPLES.items():
        if path == key or path.endswith("." + key):
            return value
    return _NONE


_NONE = object()


def _generic(tp: Any, path: str) -> Any:
    if (sample := _sample(path)) is not _NONE:
        return sample
    if tp is bool:
        return True
    if tp is int:
        return 1
    if tp is float:
        return 0.5
    if tp is bytes:
        return SILENCE
    if tp is str:
        return "sample"
    return {"key": "value"}  # Any, dict[str, Any]


def _members(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) in (typing.Union, pytypes.UnionType):
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def _pick(annotation: Any) -> Any:
    """The one type of a Union the walk follows: a pydantic model if there is one (Content over str)."""
    members = _members(annotation)
    models = [m for m in members if isinstance(m, type) and issubclass(m, pydantic.BaseModel)]
    lists = [m for m in members if typing.get_origin(m) is list]
    return (models or lists or members)[0]


def _base(path: str) -> dict[str, Any]:
    for suffix, base in BASES.items():
        if path == suffix or path.endswith("." + suffix):
            return dict(base)
    return {}


# Fields typed loosely by the SDK (validated by a function): the type the walk follows instead
TYPES: dict[str, Any] = {"tools": list[t.Tool], "generation_config.tools": list[t.Tool]}


def leaves(annotation: Any, path: str, stack: tuple[type, ...] = ()) -> Iterator[tuple[str, Any]]:
    """(case name, value) for every leaf field under a type; the case name is its SDK path (and enum value)."""
    tp = _pick(TYPES.get(path, annotation))
    origin = typing.get_origin(tp)
    if (sample := _sample(path)) is not _NONE:
        yield path, sample
    elif isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
        if tp in stack:  # a recursive type (Schema in Schema): one level is enough
            return
        if not tp.model_fields:  # an empty message ({} on the wire, as languageAuto or activityStart)
            yield path, {}
        for name, field in tp.model_fields.items():
            if name in NOT_ON_THE_WIRE:
                continue
            sub = f"{path}.{name}" if path else name
            for case, value in leaves(field.annotation, sub, (*stack, tp)):
                base = _base(path)
                if tp.__name__ == "Part" and name in PART_METADATA:  # metadata describes a part's data: text here
                    base["text"] = "Be brief."
                base[name] = value
                yield case, base
    elif origin is list:
        for case, value in leaves(typing.get_args(tp)[0], path + "[]", stack):
            yield case, [value]
    elif origin is dict:
        _, value_type = typing.get_args(tp)
        picked = _pick(value_type)
        if isinstance(picked, type) and issubclass(picked, pydantic.BaseModel):
            for case, value in leaves(picked, path + ".*", stack):
                yield case, {"key": value}
        else:
            yield path, {"key": _generic(picked, path + ".*") if picked is not Any else "value"}
    elif origin is typing.Literal:
        for literal in typing.get_args(tp):
            yield f"{path}={literal}", literal
    elif isinstance(tp, type) and issubclass(tp, enum.Enum):
        for member in tp:
            if "UNSPECIFIED" not in member.value:
                yield f"{path}={member.value}", member.value
    else:
        yield path, _generic(tp, path)


# --- the socket ---------------------------------------------------------------------------------------------

SENT: list[str] = []
_send = websockets.asyncio.client.ClientConnection.send


async def _recording_send(self: Any, message: Any, *args: Any, **kwargs: Any) -> Any:
    SENT.append(message if isinstance(message, str) else bytes(message).decode())
    return await _send(self, message, *args, **kwargs)


websockets.asyncio.client.ClientConnection.send = _recording_send  # type: ignore[method-assign]


def _closed(exc: BaseException) -> str | None:
    if isinstance(exc, errors.APIError):
        return f"closed {exc.code}: {exc.message or exc.details or ''}".strip()
    return None


def _sdk_outcome(exc: BaseException) -> str:
    return f"sdk: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


# --- cases ----------------------------------------------------------------------------------------------------

class Runner:
    def __init__(self, client: genai.Client, version: str) -> None:
        self.client = client
        self.version = version
        self._frames: list[str] = []
        self.messages: set[str] = set()
        self._probes = 0

    def emit(self, message: str, case: str, frames: list[str], outcome: str) -> None:
        frame = json.loads(frames[0]) if frames else None
        print(json.dumps({"sdk": self.version, "message": message, "case": case, "frame": frame,
                          "outcome": outcome}), flush=True)

    async def setup_case(self, case: str, config: dict[str, Any]) -> None:
        model = NATIVE_AUDIO if case.startswith(NATIVE_ONLY) else HALF_CASCADE
        SENT.clear()
        outcome = "ok"
        try:
            live_config = t.LiveConnectConfig.model_validate(config)
            async with asyncio.timeout(TIMEOUT_S), self.client.aio.live.connect(model=model, config=live_config):
                pass
        except TimeoutError:
            outcome = "timeout"
        except Exception as exc:  # noqa: BLE001 - every failure is an outcome to record
            outcome = _closed(exc) or _sdk_outcome(exc)
        self.emit("setup", case, SENT[:1], outcome)

    async def runtime_cases(self, message: str, cases: list[tuple[str, Any]], config: dict[str, Any]) -> None:
        """Runtime cases share a session until one closes it; each is followed by a probe turn."""
        pending = list(cases) if message in self.messages else []
        while pending:
            SENT.clear()
            try:
                async with asyncio.timeout(TIMEOUT_S * (len(pending) + 1)), self.client.aio.live.connect(
                        model=HALF_CASCADE, config=t.LiveConnectConfig.model_validate(config)) as session:
                    while pending:
                        case, value = pending[0]
                        outcome = await self._one(session, message, value)
                        self.emit(message, case, list(self._frames), outcome)
                        pending.pop(0)
                        if outcome != "ok" and not outcome.startswith("sdk:"):
                            break
            except Exception as exc:  # noqa: BLE001 - a broken session is reported by the case that broke it
                print(json.dumps({"sdk": self.version, "message": message, "case": "(session)",
                                  "frame": None, "outcome": _closed(exc) or _sdk_outcome(exc)}), flush=True)
                pending.pop(0) if pending else None

    async def _one(self, session: Any, message: str, value: Any) -> str:
        start = len(SENT)
        try:
            async with asyncio.timeout(TIMEOUT_S):
                if message == "toolResponse":
                    call = await self._await_call(session)
                    value = {**value, "id": (value.get("id") and call.id) or call.id, "name": call.name}
                    start = len(SENT)
                    await session.send_tool_response(function_responses=[value])
                elif message == "clientContent":
                    await session.send_client_content(turns=[value["turns"]], turn_complete=value["turn_complete"])
                elif message == "realtimeInput":
                    await session.send_realtime_input(**value)
                elif message == "contextUpdate":
                    await session.send_context_update(**value)
                self._frames = SENT[start:]
                if message == "realtimeInput" and "activity_start" in value:
                    await session.send_realtime_input(activity_end={})
                self._probes += 1  # numbered: the answer to an earlier probe (a later turn may repeat it) is not this
                await session.send_realtime_input(text=f"{PROBE} {self._probes}")
                return await self._await_probe(session)
        except TimeoutError:
            self._frames = SENT[start:]
            return "timeout"
        except Exception as exc:  # noqa: BLE001
            self._frames = SENT[start:]
            closed = _closed(exc)
            if closed is None and not self._frames:
                return _sdk_outcome(exc)
            return closed or f"error: {exc!r}"

    async def _await_call(self, session: Any) -> Any:
        await session.send_realtime_input(text="turn on the lights")
        while True:
            async for msg in session.receive():
                if msg.tool_call and msg.tool_call.function_calls:
                    return msg.tool_call.function_calls[0]

    async def _await_probe(self, session: Any) -> str:
        """Wait for the answer to the probe: text that echoes it (the emulator says "You said: …")."""
        heard = ""
        while True:
            async for msg in session.receive():
                content = msg.server_content
                parts = content.model_turn.parts if content and content.model_turn else None
                heard += "".join(p.text or "" for p in parts or [])
                if f"{PROBE} {self._probes}" in heard:
                    return "ok"
            heard = ""


def plan(only: str = "") -> list[tuple[str, dict[str, Any] | None, list[tuple[str, Any]]]]:
    """(message, the session's config or None for setup cases, [(case, value)]) in the order they run."""
    text = {"response_modalities": ["TEXT"]}
    setups = [(c, v) for c, v in leaves(t.LiveConnectConfig, "") if c.startswith(only)]
    # the model's own parts (calls it made, code it ran) come in a model turn, as in the history they replay
    content = [(f"turns[].{c}", {"turns": {**v, "role": "model"} if _models_part(c) else v, "turn_complete": True})
               for c, v in leaves(t.Content, "") if not c.startswith("role")]
    content += [("turns[].role=user", {"turns": {"role": "user", "parts": [{"text": "hi"}]}, "turn_complete": True}),
                ("turns[].role=model", {"turns": {"role": "model", "parts": [{"text": "hi"}]},
                                        "turn_complete": False}),
                ("turn_complete=false", {"turns": {"role": "user", "parts": [{"text": "hi"}]},
                                         "turn_complete": False})]
    realtime = [(c, _realtime_value(c, v)) for c, v in leaves(t.LiveSendRealtimeInputParameters, "")]
    manual = {**text, "realtime_input_config": {"automatic_activity_detection": {"disabled": True}}}
    tool = {**text, "tools": [{"function_declarations": [{"name": "turn_on_the_lights",
                                                           "description": "Turns on the lights."}]}]}
    updates = [(f"system_instruction.{c}", {"system_instruction": v}) for c, v in leaves(t.Content, "")]
    updates += [(f"tools[].{c}", {"tools": [v]}) for c, v in leaves(t.Tool, "")]
    steps: list[tuple[str, dict[str, Any] | None, list[tuple[str, Any]]]] = [
        ("setup", None, setups),
        ("clientContent", text, content),
        ("realtimeInput", text, [c for c in realtime if "activity" not in c[0]]),
        ("realtimeInput", manual, [c for c in realtime if "activity" in c[0]]),
        # a function response carries its result (the JS SDK refuses one without it)
        ("toolResponse", tool, [(c, {"response": {"result": "ok"}, **v}) for c, v in leaves(t.FunctionResponse, "")]),
        ("contextUpdate", text, updates),
    ]
    return [(m, config, [c for c in cases if c[0].startswith(only)]) for m, config, cases in steps]


def _models_part(case: str) -> bool:
    return case.startswith(("parts[].function_call", "parts[].executable_code"))


def _jsonable(value: Any) -> Any:
    """A case as the JS SDK takes it: camelCase keys, bytes as base64 (free-form keys are left as they are)."""
    if isinstance(value, dict):
        return {(k if "_" not in k else _camel(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default="", help="run only cases whose name starts with this")
    parser.add_argument("--message", action="append", help="run only cases of this message (setup, clientContent, …)")
    parser.add_argument("--dump-cases", metavar="FILE", help="write the cases as JSON (for tests/conformance/"
                        "js_walk.mjs, with the JS SDK's camelCase names) instead of running them")
    args = parser.parse_args()
    messages = set(args.message or ["setup", "clientContent", "realtimeInput", "toolResponse", "contextUpdate"])
    steps = [(m, config, cases) for m, config, cases in plan(args.only) if m in messages]
    if args.dump_cases:
        dump = [{"message": m, "config": _jsonable(config),
                 "cases": [{"case": c, "value": _jsonable(v)} for c, v in cases]} for m, config, cases in steps]
        Path(args.dump_cases).write_text(json.dumps({"sdk": genai.__version__, "steps": dump}))  # noqa: ASYNC240
        return
    client = genai.Client()  # configured by the environment, as an app is after `eval "$(localive env)"`
    runner = Runner(client, genai.__version__)
    runner.messages = messages
    for message, config, cases in steps:
        if config is None:
            for case, value in cases:
                await runner.setup_case(case, value)
        else:
            await runner.runtime_cases(message, cases, config)


def _realtime_value(case: str, value: dict[str, Any]) -> dict[str, Any]:
    """Realtime blobs carry real media: audio is PCM, video a PNG frame."""
    for key in ("audio", "media"):
        if key in value and isinstance(value[key], dict):
            value[key] = {"mime_type": "audio/pcm;rate=16000", "data": SILENCE, **{
                k: v for k, v in value[key].items() if k not in ("mime_type", "data") or case.endswith(k)}}
            if case.endswith("mime_type"):
                value[key]["mime_type"] = "audio/pcm"
    if "video" in value and isinstance(value["video"], dict):
        value["video"] = {"mime_type": "image/png", "data": PNG, **{
            k: v for k, v in value["video"].items() if k not in ("mime_type", "data")}}
    return value


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
