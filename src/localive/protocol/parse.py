"""Parse one client frame into a validated message (pure: no I/O)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from localive.protocol.b64 import decode_lenient
from localive.protocol.errors import InvalidArgument
from localive.protocol.keys import normalise_keys
from localive.protocol.messages import TOP_LEVEL, ClientMessage, RealtimeInput, audio_chunk_input

_TYPE_NAMES = {
    "bool": "TYPE_BOOL",
    "string": "TYPE_STRING",
    "int": "TYPE_INT32",
    "float": "TYPE_FLOAT",
    "dict": "TYPE_MESSAGE",
    "model": "TYPE_MESSAGE",
    "list": "TYPE_REPEATED",
    "literal": "TYPE_ENUM",
}


def parse_client_message(frame: str | bytes) -> ClientMessage:
    """Decode, normalise and validate one client frame. Raises InvalidArgument with a short reason."""
    try:
        text = frame.decode("utf-8") if isinstance(frame, bytes | bytearray) else frame
        raw = json.loads(text)
    except UnicodeDecodeError as exc:
        raise InvalidArgument("Invalid JSON payload received: not UTF-8.") from exc
    except RecursionError as exc:
        raise InvalidArgument("Request is nested too deeply.") from exc
    except ValueError as exc:
        raise InvalidArgument("Invalid JSON payload received.") from exc
    if not isinstance(raw, dict):
        raise InvalidArgument("Invalid JSON payload received: expected an object.")
    chunk = audio_chunk(raw)
    if chunk is not None:
        return chunk
    message = normalise_keys(raw)
    if len(message) != 1:
        keys = ", ".join(sorted(message)) or "none"
        raise InvalidArgument(f"A client message must hold exactly one of setup, clientContent, "
                              f"realtimeInput, toolResponse, contextUpdate (got: {keys}).")
    (key, body), = message.items()
    model = TOP_LEVEL.get(key)
    if model is None:
        raise InvalidArgument(f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.')
    if not isinstance(body, dict):
        raise InvalidArgument(f"Invalid value at '{key}': expected an object.")
    try:
        return model.model_validate(body)  # type: ignore[return-value]  # TOP_LEVEL maps to ClientMessage types
    except ValidationError as exc:
        raise InvalidArgument(describe_validation_error(key, exc)) from None
    except InvalidArgument:
        raise


def audio_chunk(raw: dict[str, Any]) -> RealtimeInput | None:
    """The commonest message, a realtimeInput holding one audio chunk and nothing else
    (``{"realtimeInput": {"audio": {"data": "<base64>", "mimeType": "<type>"}}}``, keys in either spelling), checked
    here without the generic path's key normalisation and model validation (half of the parse's cost); every
    check of that path holds (strings only, valid base64, no other field). None for any other message, or one that
    fails a check: the generic path validates it and reports what is wrong exactly as it always does."""
    body = raw.get("realtimeInput") or raw.get("realtime_input")
    if len(raw) != 1 or type(body) is not dict or len(body) != 1:
        return None
    blob = body.get("audio")
    if type(blob) is not dict or len(blob) != 2:
        return None
    data = blob.get("data")
    mime_type = blob.get("mimeType") or blob.get("mime_type")
    if type(data) is not str or type(mime_type) is not str:
        return None
    try:
        decoded = decode_lenient(data)
    except InvalidArgument:
        return None
    return audio_chunk_input(mime_type, decoded)


def describe_validation_error(root: str, exc: ValidationError) -> str:
    """One short line, in the style of Google's invalid-argument reasons, for the first error."""
    error: Any = exc.errors(include_url=False, include_input=False)[0]
    loc = [str(part) for part in error["loc"]]
    kind = error["type"]
    if kind == "extra_forbidden":
        where = ".".join([root, *loc[:-1]])
        return f"Invalid JSON payload received. Unknown name \"{loc[-1]}\" at '{where}': Cannot find field."
    where = ".".join([root, *loc])
    if kind == "missing":
        return f"Missing required field at '{where}'."
    ctx = error.get("ctx") or {}
    if kind == "too_long" and "max_length" in ctx:
        return f"Invalid value at '{where}': at most {ctx['max_length']} items are allowed."
    if "error" in ctx and kind == "value_error":
        return f"Invalid value at '{where}': {ctx['error']}"
    type_name = next((name for prefix, name in _TYPE_NAMES.items() if kind.startswith(prefix)), "")
    return f"Invalid value at '{where}' ({type_name or kind})." if type_name else f"Invalid value at '{where}'."
