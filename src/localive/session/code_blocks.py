"""Split a streamed model answer into prose and the first Python code block (for the codeExecution tool).

The model writes code as a Markdown fence (```python … ```). Prose before it streams on at once, except a
possible fence opening that is held back until it is complete; the block itself is never streamed as text: the
session sends it as an `executableCode` part, runs it, and lets the model continue with the output. Fences in
other languages (```json, ```bash) are prose.
"""

from __future__ import annotations

FENCE = "```"
PYTHON = ("python", "py", "python3", "")


class CodeBlocks:
    def __init__(self) -> None:
        self._buffer = ""
        self._in_other_block = False
        self.code: str | None = None  # set once a complete Python block has been read

    def push(self, piece: str) -> str:
        """Take the next piece of the answer; return the prose that may be shown now."""
        if self.code is not None:
            return ""
        self._buffer += piece
        shown: list[str] = []
        while True:
            start = self._buffer.find(FENCE)
            if start < 0:
                keep = _partial_fence_len(self._buffer)
                shown.append(self._buffer[: len(self._buffer) - keep])
                self._buffer = self._buffer[len(self._buffer) - keep:]
                break
            line_end = self._buffer.find("\n", start)
            if self._in_other_block:  # the closing fence of a non-Python block: prose, as it is
                shown.append(self._buffer[: start + len(FENCE)])
                self._buffer = self._buffer[start + len(FENCE):]
                self._in_other_block = False
                continue
            if line_end < 0:  # the fence's language is not known yet
                shown.append(self._buffer[:start])
                self._buffer = self._buffer[start:]
                break
            language = self._buffer[start + len(FENCE): line_end].strip().lower()
            if language not in PYTHON:
                shown.append(self._buffer[:line_end + 1])
                self._buffer = self._buffer[line_end + 1:]
                self._in_other_block = True
                continue
            shown.append(self._buffer[:start])
            body = self._buffer[line_end + 1:]
            close = body.find(FENCE)
            if close < 0:
                self._buffer = self._buffer[start:]
                break
            self.code = body[:close].rstrip("\n")
            self._buffer = ""
            break
        return "".join(shown)

    def flush(self) -> str:
        """The answer ended: return held-back prose; an unclosed Python block still counts as code."""
        rest, self._buffer = self._buffer, ""
        if self.code is None and rest.startswith(FENCE) and not self._in_other_block:
            first_line, _, body = rest.partition("\n")
            if first_line[len(FENCE):].strip().lower() in PYTHON and body.strip():
                self.code = body.rstrip("`\n")
                return ""
        return rest


def _partial_fence_len(text: str) -> int:
    """How many trailing backticks could start a fence with the next piece."""
    count = 0
    while count < min(len(text), len(FENCE) - 1) and text[-1 - count] == "`":
        count += 1
    return count
