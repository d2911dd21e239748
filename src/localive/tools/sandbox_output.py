"""What a sandboxed run printed, kept up to a limit, and the notes that say how it ended."""

from __future__ import annotations

import contextlib
import signal


class Output:
    """The program's output, kept up to a limit while it is read; the rest is counted and dropped."""

    def __init__(self, limit: int) -> None:
        self.limit, self.kept, self.dropped = limit, bytearray(), 0

    def feed(self, chunk: bytes) -> None:
        room = max(self.limit - len(self.kept), 0)
        self.kept += chunk[:room]
        self.dropped += max(len(chunk) - room, 0)

    def text(self, note: str = "") -> str:
        notes = [f"[output truncated: {self.dropped} more bytes not shown]"] if self.dropped else []
        notes += [note] if note else []
        text = self.kept.decode("utf-8", "replace")
        if notes and text and not text.endswith("\n"):
            text += "\n"
        return text + "\n".join(notes)


def exit_note(returncode: int) -> str:
    if returncode > 128:  # bwrap reports a program killed by a signal as 128 + the signal's number
        with contextlib.suppress(ValueError):
            name = signal.Signals(returncode - 128).name
            why = {"SIGXCPU": " (CPU time limit)", "SIGKILL": ""}.get(name, "")
            return f"[the program was killed by {name}{why}]"
    return ""


def size(n: int) -> str:
    """A size in the largest binary unit that divides it, or MiB: 2 GiB, 240 MiB."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n / 2**20:.0f} MiB"
