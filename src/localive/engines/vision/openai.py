"""A vision-language model behind an OpenAI-compatible chat endpoint (vLLM, llama.cpp's server with a VLM, …).

Each frame the model needs (the latest, once) is one `POST /chat/completions`: a user message with the
instruction and the frame as a `data:` URL (`image_url`), temperature 0. The API key comes only from the
environment (LOCALIVE_VISION_API_KEY) and is sent as a Bearer header, never logged. Connect within 5 s, the whole
answer within `timeout_s`; failures (unreachable, a timeout, an HTTP error — a server whose model cannot see
answers one —, an answer that is not a chat completion) raise BackendFailed: the session closes with 1011
"The vision backend failed: …", naming the stage, never the URL or the key.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

import httpx2

from localive.engines.speech_remote import (
    VISION_KEY_ENV,
    VISION_STAGE,
    BackendFailed,
    auth_headers,
    describe_failure,
    timeouts,
)
from localive.engines.vision.base import Frame

log = logging.getLogger("localive.engines")

PROMPT = ("Describe this video frame for an assistant that cannot see it: the main things in it, their colours, "
          "and any text, quoted exactly. Be brief.")
MAX_TOKENS = 300


def request_body(frame: Frame, model: str) -> dict[str, Any]:
    """The chat completion that asks for a frame's description."""
    image = f"data:{frame.mime_type};base64,{base64.b64encode(frame.data).decode()}"
    return {"model": model, "max_tokens": MAX_TOKENS, "temperature": 0.0, "stream": False, "messages": [
        {"role": "user", "content": [{"type": "text", "text": PROMPT},
                                     {"type": "image_url", "image_url": {"url": image}}]}]}


def answer_text(payload: object) -> str:
    """The description in a chat completion; raises BackendFailed for anything else."""
    try:
        content = payload["choices"][0]["message"]["content"]  # type: ignore[index]
    except (KeyError, IndexError, TypeError):
        raise BackendFailed(VISION_STAGE, "the answer was not a chat completion") from None
    if not isinstance(content, str) or not content.strip():
        raise BackendFailed(VISION_STAGE, "the answer had no description")
    return content.strip()


class OpenAIVision:
    """Implements the Vision interface over HTTP. `base_url` ends with the API root, e.g. http://host:8000/v1."""

    def __init__(self, base_url: str, model: str, timeout_s: float = 30.0) -> None:
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._model = model
        self._timeout_s = timeout_s
        self._client: httpx2.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> httpx2.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:  # one client (its connection pool) per event loop
            self._client = httpx2.AsyncClient(timeout=timeouts(self._timeout_s))
            self._loop = loop
        return self._client

    async def describe(self, frame: Frame, previous: Frame | None = None) -> str:
        body = request_body(frame, self._model)
        try:
            async with asyncio.timeout(self._timeout_s):
                response = await self._http().post(self._url, json=body, headers=auth_headers(VISION_KEY_ENV))
            response.raise_for_status()
            payload = response.json()
        except TimeoutError:
            log.warning("vision backend: no answer within %g s", self._timeout_s)
            raise BackendFailed(VISION_STAGE, "timed out") from None
        except httpx2.HTTPError as exc:
            log.warning("vision backend: %s", describe_failure(exc))
            raise BackendFailed(VISION_STAGE, describe_failure(exc)) from None
        except ValueError:  # not JSON
            raise BackendFailed(VISION_STAGE, "the answer was not JSON") from None
        return f"The latest video frame, as described by a vision model: {answer_text(payload)}"
