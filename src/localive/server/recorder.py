"""`localive relay --record DIR`: each relayed session written to a cassette (cassette/format.py) as it happens.

Files are numbered in the order their sessions began, after the highest number already in DIR (0001.jsonl,
0002.jsonl, …), so a replay answers them in the order they were recorded. Each line is written and flushed when
its message passes through the relay, so a session that ends badly (the relay killed) still leaves everything up
to that point. What is never written (keys, tokens, handles; audio with --no-audio) is cassette/redact.py's.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, TextIO

from localive.cassette.format import SUFFIX, Event, Side, header_line
from localive.cassette.redact import Handles, redact_client, redact_server, scrub
from localive.clock import Clock

log = logging.getLogger("localive.record")
_NUMBERED = re.compile(r"(\d+)" + re.escape(SUFFIX))


class Recorder:
    def __init__(self, folder: Path, *, keep_audio: bool, clock: Clock) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.keep_audio = keep_audio
        self.clock = clock
        self.handles = Handles()  # shared by all sessions: a resumption names the session it resumes
        self._next = 1 + max((int(m.group(1)) for p in folder.iterdir() if (m := _NUMBERED.fullmatch(p.name))),
                             default=0)

    def start(self, api_version: str, secrets: list[str]) -> Recording:
        """A new cassette for a session that starts now; `secrets` are cut out of everything written."""
        path = self.folder / f"{self._next:04d}{SUFFIX}"
        self._next += 1
        return Recording(path, api_version, self, [s for s in secrets if s])


class Recording:
    def __init__(self, path: Path, api_version: str, recorder: Recorder, secrets: list[str]) -> None:
        self.path = path
        self._recorder = recorder
        self._secrets = secrets
        self._started = recorder.clock.monotonic()
        self._file: TextIO | None = path.open("x", encoding="utf-8")
        self._write(header_line(api_version, audio_kept=recorder.keep_audio))

    def message(self, side: Side, message: dict[str, Any]) -> None:
        keep, handles = self._recorder.keep_audio, self._recorder.handles
        redacted = (redact_client if side == "client" else redact_server)(message, handles, keep_audio=keep)
        self._write(Event(self._elapsed(), side, redacted).line())

    def frame(self, side: Side, frame: str | bytes) -> None:
        """A frame as it passed: recorded if it is a JSON object (a Live message), else noted in the log."""
        try:
            message = json.loads(frame)
        except (ValueError, UnicodeDecodeError):
            message = None
        if isinstance(message, dict):
            self.message(side, message)
        else:
            log.warning("%s: a %s frame that is not a JSON object was not recorded", self.path.name, side)

    def close(self, side: Side, code: int, reason: str) -> None:
        self._write(Event(self._elapsed(), side, close=(code, reason)).line())

    def finish(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _elapsed(self) -> float:
        return max(0.0, self._recorder.clock.monotonic() - self._started)

    def _write(self, line: str) -> None:
        if self._file is None:
            return
        self._file.write(scrub(line, self._secrets) + "\n")
        self._file.flush()
