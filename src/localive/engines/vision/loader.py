"""Pick the vision engine: the embedded OCR + scene facts, an OpenAI-compatible VLM endpoint, or none."""

from __future__ import annotations

from localive.engines.vision.base import Vision

VISION_HINT = "video needs Pillow and Tesseract: pip install 'localive[vision]', apt-get install tesseract-ocr"


def load_vision(kind: str, *, url: str | None = None, model: str | None = None,
                timeout_s: float = 30.0) -> tuple[Vision | None, str]:
    """The engine and a one-line description of it (or of why there is none). Raises ValueError for a
    misconfigured or unreachable --vision-url (checked now, as the other remote stages are)."""
    if kind == "off":
        return None, "off (--vision off): video input is refused"
    if kind == "openai":
        from localive.engines.speech_remote import VISION_KEY_ENV, VISION_STAGE, check_reachable, redact
        from localive.engines.vision.openai import OpenAIVision

        if not url:
            raise ValueError("--vision openai needs --vision-url (an OpenAI-compatible /v1 endpoint)")
        if not url.startswith(("http://", "https://")):
            raise ValueError("--vision-url must be an http(s) URL")
        problem = check_reachable(url, VISION_STAGE, VISION_KEY_ENV)
        if problem:
            raise ValueError(problem)
        return OpenAIVision(url, model or "default", timeout_s), f"OpenAI-compatible VLM at {redact(url)}"
    from localive.engines.vision.embedded import EmbeddedVision, VisionNotInstalled

    engine = EmbeddedVision()
    try:
        engine.check()
    except VisionNotInstalled as exc:
        return None, f"unavailable: {exc}"
    return engine, "embedded OCR (Tesseract) and colour/brightness/motion facts; it does not recognise objects"
