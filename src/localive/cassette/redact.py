"""What a cassette never holds: API keys, ephemeral tokens and session resumption handles; and, with `--no-audio`,
the audio itself (replaced by its length and SHA-256).

* Handles: each handle the upstream gives (`sessionResumptionUpdate.newHandle`) is written as a placeholder,
  ``<handle N>``, numbered in the order the recorder first saw it, and a client's setup that resumes with it is
  written with the same placeholder, so a replay knows which recorded session a resumption continues
  (`Handles`, one per recorder: they outlive a session). The replay server hands out ``replay-handle-N`` for
  ``<handle N>`` (`replay_handle`, `placeholder_of`).
* Secrets: the credentials a session used (its client's key or token, the relay's upstream key) are cut out of
  every line wherever they appear, JSON-escaped or not (`scrub`): an app that echoes its key in a prompt does not
  leak it into a cassette.
* Audio: with `keep_audio` False, every ``{"mimeType": "audio/…", "data": BASE64}`` becomes
  ``{"mimeType": "audio/…", "bytes": N, "sha256": HEX}``; the replay matches a client's audio by that hash (or its
  length) and sends silence of that length for the server's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

PLACEHOLDER = re.compile(r"<handle (\d+)>")
REPLAY_HANDLE = re.compile(r"replay-handle-(\d+)")
REDACTED = "<redacted>"
MAX_HANDLES = 100_000  # remembered per recorder; the oldest are forgotten (their resumptions get new numbers)
MIN_SECRET_CHARS = 10  # shorter "secrets" (a placeholder key such as "localive") are not cut out of text


class Handles:
    """Handles seen by one recorder and their placeholders."""

    def __init__(self) -> None:
        self._numbers: OrderedDict[str, int] = OrderedDict()
        self._next = 1

    def placeholder(self, handle: str) -> str:
        number = self._numbers.get(handle)
        if number is None:
            number, self._next = self._next, self._next + 1
            self._numbers[handle] = number
            if len(self._numbers) > MAX_HANDLES:
                self._numbers.popitem(last=False)
        return f"<handle {number}>"


def replay_handle(placeholder: str) -> str:
    """The handle a replay gives out for a recorded placeholder (anything else passes as it is)."""
    found = PLACEHOLDER.fullmatch(placeholder)
    return f"replay-handle-{found.group(1)}" if found else placeholder


def placeholder_of(handle: str) -> str:
    """A replay's handle back as the placeholder it stands for (anything else passes as it is)."""
    found = REPLAY_HANDLE.fullmatch(handle)
    return f"<handle {found.group(1)}>" if found else handle


def redact_client(message: dict[str, Any], handles: Handles, *, keep_audio: bool) -> dict[str, Any]:
    """A client message as a cassette holds it: its resumption handle as a placeholder, audio hashed if asked."""
    message = _audio(message, keep_audio)
    setup = message.get("setup")
    resumption = setup.get("sessionResumption") if isinstance(setup, dict) else None
    if isinstance(resumption, dict) and isinstance(resumption.get("handle"), str) and resumption["handle"]:
        message = {**message, "setup": {**setup, "sessionResumption": {  # type: ignore[dict-item]
            **resumption, "handle": handles.placeholder(resumption["handle"])}}}
    return message


def redact_server(message: dict[str, Any], handles: Handles, *, keep_audio: bool) -> dict[str, Any]:
    """A server message as a cassette holds it: a new resumption handle as a placeholder, audio hashed if asked."""
    message = _audio(message, keep_audio)
    update = message.get("sessionResumptionUpdate")
    if isinstance(update, dict) and isinstance(update.get("newHandle"), str) and update["newHandle"]:
        message = {**message, "sessionResumptionUpdate": {**update,
                                                           "newHandle": handles.placeholder(update["newHandle"])}}
    return message


def scrub(line: str, secrets: Iterable[str]) -> str:
    """The line with every secret (as itself and JSON-escaped) replaced by <redacted>."""
    for secret in secrets:
        if len(secret) < MIN_SECRET_CHARS:
            continue
        for form in {secret, json.dumps(secret, ensure_ascii=False)[1:-1], json.dumps(secret)[1:-1]}:
            line = line.replace(form, REDACTED)
    return line


def audio_digest(data: bytes) -> dict[str, Any]:
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def decoded(blob: dict[str, Any]) -> bytes | None:
    """The bytes of an inline blob's base64 `data` (None: none, or not base64)."""
    data = blob.get("data")
    if not isinstance(data, str):
        return None
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


def is_audio_blob(value: object) -> bool:
    return isinstance(value, dict) and str(value.get("mimeType", "")).startswith("audio/")


def _audio(value: Any, keep_audio: bool) -> Any:
    """`value` with each audio blob's data replaced by its digest (unless `keep_audio`)."""
    if keep_audio:
        return value
    if is_audio_blob(value) and "data" in value:
        data = decoded(value)
        rest = {k: v for k, v in value.items() if k != "data"}
        return {**rest, **audio_digest(data if data is not None else str(value["data"]).encode())}
    if isinstance(value, dict):
        return {k: _audio(v, keep_audio) for k, v in value.items()}
    if isinstance(value, list):
        return [_audio(v, keep_audio) for v in value]
    return value
