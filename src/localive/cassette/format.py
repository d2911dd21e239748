"""The cassette format: one recorded Live session, JSON Lines.

The first line is the header; each further line is one event of the session, in the order it happened::

    {"cassette": 1, "api": "v1beta", "audio": "kept"}
    {"t": 0.0, "from": "client", "message": {"setup": {"model": "models/gemini-2.0-flash-live-001"}}}
    {"t": 0.004, "from": "server", "message": {"setupComplete": {}}}
    {"t": 2.51, "from": "client", "close": {"code": 1000, "reason": ""}}

`t` is seconds since the session's setup arrived; `from` says who sent it; an event holds a `message` (the JSON
object as it went over the wire, less what redact.py takes out) or a `close` (the WebSocket close frame's code and
reason). The header may also hold `faults`, the same table as an emulator script's [faults] (protocol/faults.py,
docs/testing.md), applied when the cassette is replayed; and
a client event may hold `match`, its own rules for matching the client's message (match.py).

A cassette is a file the developer gives the server: it is read whole, but still bounded (MAX_CASSETTE_BYTES, and
the size of one line) so that a wrong path is refused with a clear error instead of filling memory.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from localive.protocol.faults import NO_FAULTS, Faults, FaultsError, parse_faults

FORMAT_VERSION = 1
MAX_CASSETTE_BYTES = 512 * 1024 * 1024
SUFFIX = ".jsonl"

Side = Literal["client", "server"]


class CassetteError(ValueError):
    """A cassette file that cannot be read: the message names the file and the line."""


@dataclass(frozen=True)
class Event:
    t: float
    side: Side
    message: dict[str, Any] | None = None  # None: a close
    close: tuple[int, str] | None = None  # (code, reason)
    match: dict[str, Any] | None = None  # a client event's own matching rules (match.py)

    def line(self) -> str:
        """The event as a cassette line (no newline)."""
        body: dict[str, Any] = {"t": round(self.t, 4), "from": self.side}
        if self.message is not None:
            body["message"] = self.message
        if self.close is not None:
            body["close"] = {"code": self.close[0], "reason": self.close[1]}
        if self.match is not None:
            body["match"] = self.match
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Cassette:
    name: str  # the file's name
    header: dict[str, Any]
    events: tuple[Event, ...] = field(default_factory=tuple)
    faults: Faults = NO_FAULTS  # the header's [faults] (protocol/faults.py)

    @property
    def setup(self) -> dict[str, Any]:
        """The recorded setup message (the first client event)."""
        first = self.events[0].message
        assert first is not None
        return first



def header_line(api_version: str, *, audio_kept: bool) -> str:
    return json.dumps({"cassette": FORMAT_VERSION, "api": api_version, "audio": "kept" if audio_kept else "hashed"},
                      separators=(",", ":"))


def read_cassette(path: Path) -> Cassette:
    """Read and check one cassette file (CassetteError naming what is wrong and where)."""
    try:
        size = path.stat().st_size
        if size > MAX_CASSETTE_BYTES:
            raise CassetteError(f"{path}: {size} bytes, over the {MAX_CASSETTE_BYTES >> 20} MiB a cassette may hold")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CassetteError(f"cannot read cassette {path}: {exc}") from exc
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise CassetteError(f"{path}: empty (a cassette starts with its header line)")
    header = _json(path, *lines[0])
    if header.get("cassette") != FORMAT_VERSION:
        raise CassetteError(f"{path}:{lines[0][0]}: not a cassette header (expected {{\"cassette\": "
                            f"{FORMAT_VERSION}, ...}})")
    try:
        faults = parse_faults(header.get("faults"), source=f"{path}:{lines[0][0]}")
    except FaultsError as exc:
        raise CassetteError(str(exc)) from None
    events = tuple(_event(path, n, _json(path, n, line)) for n, line in lines[1:])
    if not events or events[0].side != "client" or not isinstance((events[0].message or {}).get("setup"), dict):
        raise CassetteError(f"{path}: the first event must be the client's setup message")
    for n, (event, after) in enumerate(itertools.pairwise(events), start=2):
        if after.t < event.t:
            raise CassetteError(f"{path}: event {n} goes back in time ({after.t} after {event.t})")
    return Cassette(path.name, header, events, faults)


def read_cassettes(folder: Path) -> list[Cassette]:
    """Every cassette in `folder` (its *.jsonl files), in the order of their names: the order they were recorded."""
    if not folder.is_dir():
        raise CassetteError(f"{folder}: not a directory of cassettes")
    cassettes = [read_cassette(path) for path in sorted(folder.glob(f"*{SUFFIX}"))]
    if not cassettes:
        raise CassetteError(f"{folder}: no cassettes (*{SUFFIX}) in it")
    return cassettes


def _json(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CassetteError(f"{path}:{number}: not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise CassetteError(f"{path}:{number}: each line must be a JSON object")
    return value


def _event(path: Path, number: int, body: dict[str, Any]) -> Event:
    where = f"{path}:{number}"
    if unknown := set(body) - {"t", "from", "message", "close", "match"}:
        raise CassetteError(f"{where}: unknown keys {sorted(unknown)}")
    t, side = body.get("t"), body.get("from")
    if not isinstance(t, int | float) or isinstance(t, bool) or t < 0:
        raise CassetteError(f"{where}: 't' must be a number of seconds >= 0")
    if side not in ("client", "server"):
        raise CassetteError(f"{where}: 'from' must be \"client\" or \"server\"")
    message, close, match = body.get("message"), body.get("close"), body.get("match")
    if (message is None) == (close is None):
        raise CassetteError(f"{where}: an event holds either a 'message' or a 'close'")
    if message is not None and not isinstance(message, dict):
        raise CassetteError(f"{where}: 'message' must be an object")
    parsed_close = None
    if close is not None:
        code = close.get("code") if isinstance(close, dict) else None
        reason = close.get("reason", "") if isinstance(close, dict) else None
        if not isinstance(code, int) or not 1000 <= code <= 4999 or not isinstance(reason, str):
            raise CassetteError(f"{where}: 'close' must be {{\"code\": 1000-4999, \"reason\": text}}")
        parsed_close = (code, reason)
    if match is not None and (side != "client" or not isinstance(match, dict)):
        raise CassetteError(f"{where}: 'match' is an object, on a client event")
    return Event(float(t), side, message, parsed_close, match)
