"""Video input: the frames a client streams (`realtimeInput.video`, image parts), kept as recent visual context.

Only the latest frame (and the one before it, to tell motion) is kept; when the model answers, the vision engine
describes the latest frame once and the description goes into the prompt. Frames count as prompt tokens at Gemini's
documented per-image rates, by `mediaResolution`.
"""

from __future__ import annotations

from localive.engines.vision.base import Frame, Vision
from localive.protocol.errors import InvalidArgument

IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")  # Gemini also takes HEIC/HEIF: no decoder here
TOKENS_PER_FRAME = {"MEDIA_RESOLUTION_LOW": 66}
DEFAULT_TOKENS_PER_FRAME = 258


class VideoInput:
    def __init__(self, vision: Vision, media_resolution: str | None = None) -> None:
        self._vision = vision
        self._tokens_per_frame = TOKENS_PER_FRAME.get(media_resolution or "", DEFAULT_TOKENS_PER_FRAME)
        self.latest: Frame | None = None
        self.previous: Frame | None = None
        self.frames = 0  # frames received in this session
        self._unbilled = 0  # frames not yet counted in a turn's usage
        self._described: tuple[int, str] | None = None

    def push(self, data: bytes, mime_type: str) -> None:
        mime = mime_type.split(";")[0].strip().lower()
        if mime not in IMAGE_TYPES:
            raise InvalidArgument(f"Video frames must be image/jpeg, image/png or image/webp, not '{mime_type[:40]}'.")
        if not data:
            raise InvalidArgument("A video frame is empty.")
        self.previous, self.latest = self.latest, Frame(data, mime)
        self.frames += 1
        self._unbilled += 1

    async def context(self) -> str:
        """The latest frame described for the model ('' before any frame); described once per frame."""
        if self.latest is None:
            return ""
        if self._described is None or self._described[0] != self.frames:
            try:
                text = await self._vision.describe(self.latest, self.previous)
            except ValueError as exc:
                raise InvalidArgument(str(exc)) from None
            self._described = (self.frames, text)
        return ("The user is showing you live video (a camera or their screen). What it shows now:\n"
                f"{self._described[1]}\nUse this when the user asks about what they show you.")

    def take_tokens(self) -> int:
        """Prompt tokens of the frames received since the last call."""
        tokens, self._unbilled = self._unbilled * self._tokens_per_frame, 0
        return tokens
