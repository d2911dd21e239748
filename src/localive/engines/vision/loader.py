"""Pick the vision engine: the embedded OCR + scene facts, an OpenAI-compatible VLM endpoint, or none."""

from __future__ import annotations

from localive.engines.vision.base import Vision

VISION_HINT = "video needs Pillow and Tesseract: pip install 'localive[vision]', apt-get install tesseract-ocr"


def load_vision(kind: str, *, url: str | None = None, model: str | None = None) -> tuple[Vision | None, str]:
    """The engine and a one-line description of it (or of why there is none)."""
    if kind == "off":
        return None, "off (--vision off): video input is refused"
    if kind == "openai":
        from localive.engines.vision.openai import OpenAIVision

        if not url:
            raise ValueError("--vision openai needs --vision-url (an OpenAI-compatible /v1 endpoint)")
        return OpenAIVision(url, model or "default"), f"OpenAI-compatible VLM at {url}"
    from localive.engines.vision.embedded import EmbeddedVision, VisionNotInstalled

    engine = EmbeddedVision()
    try:
        engine.check()
    except VisionNotInstalled as exc:
        return None, f"unavailable: {exc}"
    return engine, "embedded OCR (Tesseract) and colour/brightness/motion facts; it does not recognise objects"
