"""Cut a stream of LLM text into pieces worth synthesising: speak the first clause as soon as it exists.

The first piece ends at a clause mark (, ; :) once it has at least `first_min_words` words, or at a sentence end;
later pieces end at sentence ends (or clause marks once they are long), so speech starts early and then flows
in natural units.
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*\s")
_CLAUSE_END = re.compile(r"[,;:—]\s")


class ClauseSplitter:
    def __init__(self, first_min_words: int = 3, later_clause_min_words: int = 12) -> None:
        self._buffer = ""
        self._first = True
        self._first_min_words = first_min_words
        self._later_clause_min_words = later_clause_min_words

    def push(self, text: str) -> list[str]:
        """Add streamed text; return the pieces that are complete."""
        self._buffer += text
        pieces = []
        while piece := self._take():
            pieces.append(piece)
        return pieces

    def flush(self) -> list[str]:
        """The rest, at the end of the stream."""
        rest, self._buffer = self._buffer.strip(), ""
        return [rest] if rest and any(c.isalnum() for c in rest) else []

    def _take(self) -> str | None:
        cut = None
        for match in _SENTENCE_END.finditer(self._buffer):
            if len(self._buffer[: match.end()].split()) >= 1:
                cut = match.end()
                break
        min_words = self._first_min_words if self._first else self._later_clause_min_words
        for match in _CLAUSE_END.finditer(self._buffer):
            if cut is not None and match.end() >= cut:
                break
            if len(self._buffer[: match.end()].split()) >= min_words:
                cut = match.end()
                break
        if cut is None:
            return None
        piece, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:]
        self._first = False
        return piece if any(c.isalnum() for c in piece) else self._take()
