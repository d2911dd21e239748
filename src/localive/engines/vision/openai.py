"""A vision-language model behind an OpenAI-compatible chat endpoint (vLLM, llama.cpp's server with a VLM, …)."""

from __future__ import annotations

import base64

import httpx2

from localive.engines.vision.base import Frame

PROMPT = ("Describe this video frame for an assistant that cannot see it: the main things in it, their colours, "
          "and any text, quoted exactly. Be brief.")


class OpenAIVision:
    def __init__(self, base_url: str, model: str, timeout_s: float = 30.0) -> None:
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._model = model
        self._timeout_s = timeout_s

    async def describe(self, frame: Frame, previous: Frame | None = None) -> str:
        image = f"data:{frame.mime_type};base64,{base64.b64encode(frame.data).decode()}"
        body = {"model": self._model, "max_tokens": 300, "messages": [{"role": "user", "content": [
            {"type": "text", "text": PROMPT}, {"type": "image_url", "image_url": {"url": image}}]}]}
        async with httpx2.AsyncClient(timeout=self._timeout_s) as client:
            response = await client.post(self._url, json=body)
        response.raise_for_status()
        text = str(response.json()["choices"][0]["message"]["content"]).strip()
        return f"The latest video frame, as described by a vision model: {text}"
