"""The embedded vision engine: OCR (Tesseract) plus simple scene facts (Pillow). No model can "see" here.

What it can tell: the text on the frame (screens, signs, documents), its size, how bright it is, its dominant
colours by name, and how much changed since the previous frame. What it cannot: objects, people, scenes, anything
that is not text or colour. The README says so.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from localive.engines.vision.base import Frame

OCR_TIMEOUT_S = 10.0
MAX_PIXELS = 1600 * 1600  # frames are scaled down to this before analysis
MAX_FRAME_PIXELS = 40_000_000  # larger frames are refused before decoding (8K UHD is 33 million)
FORMATS = ("JPEG", "PNG", "WEBP")  # what a frame may be (image/jpeg, image/png, image/webp), whatever its label
# Named colours for "what colour is this" (sRGB).
COLOURS = {
    "black": (0, 0, 0), "white": (255, 255, 255), "grey": (128, 128, 128), "red": (220, 30, 30),
    "orange": (245, 140, 20), "yellow": (240, 220, 30), "green": (40, 170, 60), "blue": (30, 80, 220),
    "light blue": (120, 180, 240), "purple": (130, 50, 170), "pink": (240, 130, 190), "brown": (130, 80, 40),
}


class VisionNotInstalled(RuntimeError):
    """Pillow or Tesseract is missing; the message says what to install."""


def _image_module() -> Any:
    try:
        from PIL import Image
    except ImportError as exc:
        raise VisionNotInstalled("video input needs Pillow: pip install 'localive[vision]'") from exc
    return Image


class EmbeddedVision:
    def __init__(self, tesseract: str | None = None, language: str = "eng") -> None:
        self._tesseract = tesseract or shutil.which("tesseract")
        self._language = language
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vision")

    def check(self) -> None:
        _image_module()
        if self._tesseract is None:
            raise VisionNotInstalled("OCR needs Tesseract: apt-get install tesseract-ocr")

    async def describe(self, frame: Frame, previous: Frame | None = None) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._describe, frame, previous)

    def _describe(self, frame: Frame, previous: Frame | None) -> str:
        image = self._open(frame)
        facts = [f"a {image.width}×{image.height} image", f"brightness {_brightness(image)}",
                 f"dominant colours: {', '.join(_dominant_colours(image))}"]
        if previous is not None:
            try:
                facts.append(f"changed since the previous frame: {_change(self._open(previous), image)}")
            except ValueError:
                pass
        text = self._ocr(image)
        lines = [f"The latest video frame shows {'; '.join(facts)}."]
        lines.append(f"Text read on it (OCR): \"{text}\"" if text else "No readable text on it.")
        return "\n".join(lines)

    def _open(self, frame: Frame):  # type: ignore[no-untyped-def]
        image_module = _image_module()
        too_big = ValueError(f"the video frame has more than {MAX_FRAME_PIXELS // 10**6} million pixels")
        try:
            with warnings.catch_warnings():  # Pillow warns of "decompression bombs" from 89 million pixels
                warnings.simplefilter("error", image_module.DecompressionBombWarning)
                # the header only, and only the formats a frame may be (no TIFF, GIF, … decoders reachable)
                image = image_module.open(io.BytesIO(frame.data), formats=FORMATS)
        except (image_module.DecompressionBombWarning, image_module.DecompressionBombError):
            raise too_big from None
        except Exception as exc:  # Pillow raises many types for bad data
            raise ValueError("the video frame is not a readable JPEG, PNG or WebP image") from exc
        if image.width * image.height > MAX_FRAME_PIXELS:  # a 170 KB PNG of 13,300² pixels decoded to 0.8 GB
            raise too_big
        try:
            image.draft("RGB", (1600, 1600))  # a JPEG is decoded at a reduced scale where that is enough
            image.load()
        except Exception as exc:
            raise ValueError("the video frame is not a readable JPEG, PNG or WebP image") from exc
        image = image.convert("RGB")
        if image.width * image.height > MAX_PIXELS:
            scale = (MAX_PIXELS / (image.width * image.height)) ** 0.5
            image = image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))))
        return image

    def _ocr(self, image) -> str:  # type: ignore[no-untyped-def]
        if self._tesseract is None:
            return ""
        png = io.BytesIO()
        image.convert("L").save(png, format="PNG")
        result = subprocess.run([self._tesseract, "stdin", "stdout", "-l", self._language, "--psm", "3"],
                                input=png.getvalue(), capture_output=True, timeout=OCR_TIMEOUT_S, check=False)
        text = result.stdout.decode("utf-8", "replace")
        return " ".join(text.split())[:2000]

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _brightness(image) -> str:  # type: ignore[no-untyped-def]
    from PIL import ImageStat

    level = sum(ImageStat.Stat(image.convert("L")).mean) / 255
    return "dark" if level < 0.3 else "bright" if level > 0.7 else "medium"


def _dominant_colours(image, count: int = 3) -> list[str]:  # type: ignore[no-untyped-def]
    raw = image.resize((64, 64)).tobytes()  # RGB triples
    votes: dict[str, int] = {}
    for pixel in zip(raw[0::3], raw[1::3], raw[2::3], strict=True):
        name = min(COLOURS, key=lambda n: sum((a - b) ** 2 for a, b in zip(pixel, COLOURS[n], strict=True)))
        votes[name] = votes.get(name, 0) + 1
    total = sum(votes.values())
    ranked = sorted(votes.items(), key=lambda item: -item[1])[:count]
    return [f"{name} ({round(100 * n / total)}%)" for name, n in ranked if n / total >= 0.05]


def _change(before, after) -> str:  # type: ignore[no-untyped-def]
    from PIL import ImageChops, ImageStat

    a, b = before.convert("L").resize((64, 64)), after.convert("L").resize((64, 64))
    diff = sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 255
    return "nothing" if diff < 0.02 else "a little" if diff < 0.1 else "a lot"
