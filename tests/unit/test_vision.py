"""The embedded vision engine (Tesseract OCR + Pillow facts) and the session's video input."""

from __future__ import annotations

import re

import pytest

from localive.engines.vision.base import Frame
from localive.engines.vision.embedded import EmbeddedVision
from localive.protocol.errors import InvalidArgument
from localive.session.video_in import VideoInput
from tests.integration.test_video import red_frame, text_frame


@pytest.fixture(scope="module")
def vision() -> EmbeddedVision:
    engine = EmbeddedVision()
    engine.check()  # fails loudly where Pillow or tesseract-ocr is missing
    return engine


async def test_reads_text_and_tells_colours_and_motion(vision: EmbeddedVision) -> None:
    text = await vision.describe(Frame(text_frame("OPEN SESAME 42"), "image/jpeg"))
    # the words OCR read, however Tesseract's build spaces or punctuates them; the colour is computed
    assert {"OPEN", "SESAME", "42"} <= set(re.findall(r"\w+", text)) and "white" in text, text
    red = await vision.describe(Frame(red_frame(), "image/jpeg"), Frame(text_frame("X"), "image/jpeg"))
    assert "dominant colours: red" in red and "changed since the previous frame: a lot" in red
    assert "No readable text" in red


async def test_bad_frames_are_refused(vision: EmbeddedVision) -> None:
    with pytest.raises(ValueError, match="not a readable"):
        await vision.describe(Frame(b"\xff\xd8 broken", "image/jpeg"))
    video = VideoInput(vision)
    with pytest.raises(InvalidArgument, match="image/jpeg, image/png or image/webp"):
        video.push(b"GIF89a", "image/gif")
    video.push(b"\xff\xd8 broken", "image/jpeg")
    with pytest.raises(InvalidArgument, match="not a readable"):
        await video.context()


async def test_frames_are_described_once_and_billed_by_media_resolution(vision: EmbeddedVision) -> None:
    video = VideoInput(vision, "MEDIA_RESOLUTION_LOW")
    assert await video.context() == ""
    video.push(text_frame("HELLO"), "image/jpeg")
    video.push(text_frame("HELLO AGAIN"), "image/jpeg")
    first = await video.context()
    assert "HELLO AGAIN" in first and await video.context() == first
    assert video.take_tokens() == 2 * 66 and video.take_tokens() == 0


def huge_png(width: int, height: int) -> bytes:
    """A valid PNG header of `width`×`height` grey pixels with a few rows of data: a few hundred bytes that would
    decode to width×height bytes."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = zlib.compress(b"\0" * (width + 1) * 8)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


async def test_a_frame_of_too_many_pixels_is_refused_before_decoding(vision: EmbeddedVision) -> None:
    """The adversarial test's 170 KB PNG of 13,300² pixels took 0.8 GB and 2.8 s in the vision thread."""
    import psutil

    before = psutil.Process().memory_info().rss
    with pytest.raises(ValueError, match="million pixels"):
        await vision.describe(Frame(huge_png(13_300, 13_300), "image/png"))
    assert psutil.Process().memory_info().rss - before < 100 * 2**20


async def test_webp_frames_are_read_and_other_formats_are_not_decoded(vision: EmbeddedVision) -> None:
    """Gemini takes WebP images; a GIF (or any format a frame may not be) labelled image/png is not decoded."""
    import io

    from PIL import Image

    webp, gif = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (32, 32), (20, 40, 220)).save(webp, format="WEBP")
    Image.new("RGB", (32, 32), (20, 40, 220)).save(gif, format="GIF")
    assert "blue" in (await vision.describe(Frame(webp.getvalue(), "image/webp"))).lower()
    with pytest.raises(ValueError, match="not a readable"):
        await vision.describe(Frame(gif.getvalue(), "image/png"))


# --- a VLM over chat completions (--vision openai). No vision-capable model ships on PyPI, so no VLM server runs
# in the tests: the request is checked here, failures against real servers (a closed port here; a chat server
# whose model cannot see in tests/integration/test_remote_llm.py).


def test_the_vlm_request_carries_the_frame_and_the_key_only_in_its_header(monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    from localive.engines.speech_remote import VISION_KEY_ENV, auth_headers
    from localive.engines.vision.openai import PROMPT, request_body

    frame = Frame(text_frame("OPEN SESAME 42"), "image/jpeg")
    body = request_body(frame, "Qwen/Qwen2.5-VL-7B-Instruct")
    assert body["model"] == "Qwen/Qwen2.5-VL-7B-Instruct" and body["temperature"] == 0.0 and not body["stream"]
    [message] = body["messages"]
    text, image = message["content"]
    assert message["role"] == "user" and text == {"type": "text", "text": PROMPT}
    url = image["image_url"]["url"]
    assert image["type"] == "image_url" and url.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(url.removeprefix("data:image/jpeg;base64,")) == frame.data
    monkeypatch.setenv(VISION_KEY_ENV, "sk-vision")
    assert auth_headers(VISION_KEY_ENV) == {"Authorization": "Bearer sk-vision"} and "sk-vision" not in str(body)


def test_an_answer_that_is_not_a_description_fails_naming_the_stage() -> None:
    from localive.engines.speech_remote import BackendFailed
    from localive.engines.vision.openai import answer_text

    assert answer_text({"choices": [{"message": {"content": " A red square. "}}]}) == "A red square."
    for payload in ({}, {"choices": []}, {"choices": [{"message": {"content": None}}]}, ["x"]):
        with pytest.raises(BackendFailed, match=r"^The vision backend failed: "):
            answer_text(payload)


async def test_an_unreachable_vlm_fails_the_turn_naming_the_stage_not_the_url(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from localive.engines.speech_remote import VISION_KEY_ENV, BackendFailed
    from localive.engines.vision.loader import load_vision
    from localive.engines.vision.openai import OpenAIVision
    from localive.protocol.errors import INTERNAL
    from localive.testing.server import free_port

    monkeypatch.setenv(VISION_KEY_ENV, "sk-vision")
    url = f"http://user:pw@127.0.0.1:{free_port()}/v1"  # nothing listens there
    with pytest.raises(BackendFailed) as failed:
        await OpenAIVision(url, "vlm", timeout_s=5).describe(Frame(text_frame("HI"), "image/jpeg"))
    assert failed.value.close_code == INTERNAL
    assert str(failed.value) == "The vision backend failed: connection failed."
    with pytest.raises(ValueError, match=r"vision backend .* is not reachable") as refused:  # checked at start
        load_vision("openai", url=url, model="vlm")
    assert "pw" not in str(refused.value) and "sk-vision" not in str(refused.value)
