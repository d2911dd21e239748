"""The vision interface: a frame (JPEG/PNG bytes) in, a short text description out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Frame:
    data: bytes
    mime_type: str  # image/jpeg | image/png


class Vision(Protocol):
    async def describe(self, frame: Frame, previous: Frame | None = None) -> str:
        """What the frame shows (text on it, colours, size, change since `previous`), for the LLM's context.
        Runs blocking work off the event loop. Raises ValueError for bytes that are not an image."""
        ...
