"""Video input through the official Python SDK, with the embedded vision engine (OCR + colour facts) and LLM."""

from __future__ import annotations

import io
import re

import pytest
from google import genai
from google.genai import types
from PIL import Image, ImageDraw, ImageFont

from localive.testing.server import LocaliveServer
from tests.support.server import sdk_client

MODEL = "gemini-2.0-flash-live-001"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def text_frame(text: str) -> bytes:
    image = Image.new("RGB", (768, 432), "white")
    try:
        font = ImageFont.truetype(FONT, 72)
    except OSError:
        font = ImageFont.load_default(size=72)
    ImageDraw.Draw(image).text((60, 160), text, fill="black", font=font)
    return jpeg(image)


def red_frame() -> bytes:
    image = Image.new("RGB", (768, 432), (205, 25, 30))
    ImageDraw.Draw(image).rectangle((600, 330, 760, 420), fill="white")  # mostly red, not only red
    return jpeg(image)


@pytest.fixture
def client(llm_server: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> genai.Client:
    return sdk_client(llm_server, monkeypatch)


async def ask_about(client: genai.Client, frame: bytes, question: str) -> tuple[str, types.UsageMetadata | None]:
    config = {"response_modalities": ["TEXT"], "temperature": 0.0}
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        await session.send_realtime_input(video=types.Blob(data=frame, mime_type="image/jpeg"))
        await session.send_client_content(turns={"role": "user", "parts": [{"text": question}]})
        messages = [m async for m in session.receive()]
    return "".join(m.text or "" for m in messages), messages[-1].usage_metadata


@pytest.mark.llm
async def test_the_model_reads_the_text_on_the_screen(client: genai.Client) -> None:
    answer, usage = await ask_about(client, text_frame("OPEN SESAME 42"), "What does the screen say?")
    # the words on the screen, however the model punctuates or cases them
    assert {"OPEN", "SESAME", "42"} <= set(re.findall(r"\w+", answer.upper())), answer
    assert usage and [(d.modality, d.token_count) for d in usage.prompt_tokens_details or []
                      if d.modality == types.MediaModality.VIDEO] == [(types.MediaModality.VIDEO, 258)]


@pytest.mark.llm
async def test_the_model_tells_the_colour(client: genai.Client) -> None:
    answer, _ = await ask_about(client, red_frame(), "What colour is this?")
    assert "red" in answer.lower()


async def test_a_frame_that_is_not_an_image_closes_with_1007(emulator_server: LocaliveServer,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    client = sdk_client(emulator_server, monkeypatch)
    async with client.aio.live.connect(model=MODEL, config={"response_modalities": ["TEXT"]}) as session:
        await session.send_realtime_input(video=types.Blob(data=b"not a jpeg", mime_type="image/jpeg"))
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "what is this?"}]})
        with pytest.raises(genai.errors.APIError) as error:
            async for _ in session.receive():
                pass
    assert error.value.code == 1007 and "not a readable JPEG, PNG or WebP" in str(error.value)
