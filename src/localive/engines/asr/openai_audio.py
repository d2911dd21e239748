"""Speech recognition behind an OpenAI-compatible `/v1/audio/transcriptions` endpoint (faster-whisper-server,
speaches, vLLM's Whisper, OpenAI itself).

Each utterance is one multipart POST: the audio as a 16 kHz mono WAV, `model`, `language` (the primary subtag of
the session's BCP-47 hint, 'pt-BR' → 'pt'; left out when the session asks for detection), `prompt` (the session's
vocabulary and what typically precedes the utterance: Whisper's previous text), `temperature` 0 and
`response_format` verbose_json, whose `language` is the detected one. A server that refuses verbose_json is asked
again with json (no detected language then) and from then on.

Detection among several languages: the server detects among all it knows; a detected language outside the
session's list is reported as detected (the endpoint has no way to restrict it).

The request runs on the event loop as non-blocking I/O (httpx2); cancelling the awaiting task closes the
connection. Failures raise BackendFailed (the session closes 1011 naming the stage); a refused connection also
marks the server down, so that new sessions are refused with 1013 until it answers (speech_remote.py).
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import time
import wave
from typing import Any

import httpx2

from localive.audio.pcm import Pcm16
from localive.audio.resample import resample
from localive.engines.asr.base import Transcript
from localive.engines.speech_remote import (
    ASR_KEY_ENV,
    ASR_STAGE,
    BackendFailed,
    RemoteSpeechEngine,
    auth_headers,
)

log = logging.getLogger("localive.engines")
SAMPLE_RATE_HZ = 16000

# OpenAI's own endpoint reports the detected language by name ("english"); servers built on faster-whisper by code.
_LANGUAGE_NAMES = {
    "english": "en", "chinese": "zh", "german": "de", "spanish": "es", "russian": "ru", "korean": "ko",
    "french": "fr", "japanese": "ja", "portuguese": "pt", "turkish": "tr", "polish": "pl", "catalan": "ca",
    "dutch": "nl", "arabic": "ar", "swedish": "sv", "italian": "it", "indonesian": "id", "hindi": "hi",
    "finnish": "fi", "vietnamese": "vi", "hebrew": "he", "ukrainian": "uk", "greek": "el", "malay": "ms",
    "czech": "cs", "romanian": "ro", "danish": "da", "hungarian": "hu", "tamil": "ta", "norwegian": "no",
    "thai": "th", "urdu": "ur", "croatian": "hr", "bulgarian": "bg", "lithuanian": "lt", "latin": "la",
    "welsh": "cy", "slovak": "sk", "telugu": "te", "persian": "fa", "latvian": "lv", "bengali": "bn",
    "serbian": "sr", "slovenian": "sl", "estonian": "et", "tagalog": "tl", "filipino": "tl",
}


def primary_subtag(tag: str | None) -> str | None:
    """'en-US' → 'en'; None or '' → None."""
    if not tag or not tag.strip():
        return None
    return re.split(r"[-_]", tag.strip().lower(), maxsplit=1)[0] or None


def language_code(reported: Any) -> str | None:
    """The ISO-639-1 code of the language a server reports ('en', 'english', 'en-US')."""
    if not isinstance(reported, str) or not reported.strip():
        return None
    value = reported.strip().lower()
    return _LANGUAGE_NAMES.get(value) or primary_subtag(value)


def wav_bytes(audio: Pcm16) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(audio.sample_rate_hz)
        wav.writeframes(audio.data)
    return buffer.getvalue()


class OpenAITranscriptionASR(RemoteSpeechEngine):
    """Implements the ASR interface over HTTP. `base_url` ends with the API root, e.g. http://host:8000/v1.
    `max_sessions`: how many sessions may use it at once (None: no limit)."""

    sample_rate_hz = SAMPLE_RATE_HZ

    def __init__(self, base_url: str, model: str, *, timeout_s: float = 30.0,
                 max_sessions: int | None = None) -> None:
        super().__init__(base_url, ASR_STAGE, ASR_KEY_ENV, timeout_s=timeout_s, max_sessions=max_sessions)
        self.name = f"openai-transcriptions:{model}"
        self._url = self._base_url + "/audio/transcriptions"
        self._model = model
        self._verbose = True

    async def transcribe(self, audio: Pcm16, language: str | None = None, expect: str | None = None, *,
                         detect_among: tuple[str, ...] | None = None) -> Transcript:
        started = time.perf_counter()
        audio_s = audio.duration_s
        if not audio.data:
            return Transcript("", None, 0.0, 0.0)
        if audio.sample_rate_hz != SAMPLE_RATE_HZ:
            audio = await asyncio.to_thread(resample, audio, SAMPLE_RATE_HZ)
        body = await asyncio.to_thread(wav_bytes, audio)
        hint = None if detect_among is not None else primary_subtag(language)
        if detect_among is not None and len(detect_among) == 1:
            hint = primary_subtag(detect_among[0])  # "detect" among one language is that language
        fields: dict[str, str] = {"model": self._model, "temperature": "0"}
        if hint:
            fields["language"] = hint
        if expect and expect.strip():
            fields["prompt"] = expect.strip()
        result = await self._post(body, fields)
        text = str(result.get("text") or "").strip()
        detected = language_code(result.get("language")) or hint
        return Transcript(text=text, language=detected, audio_s=audio_s, compute_s=time.perf_counter() - started)

    async def _post(self, body: bytes, fields: dict[str, str]) -> dict[str, Any]:
        client = self._http()
        for attempt in range(2):
            data = {**fields, "response_format": "verbose_json" if self._verbose else "json"}
            try:
                response = await client.post(self._url, data=data, files={"file": ("speech.wav", body, "audio/wav")},
                                             headers=auth_headers(ASR_KEY_ENV))
                if (response.status_code in (400, 422) and self._verbose and attempt == 0
                        and ("response_format" in response.text or "verbose" in response.text)):
                    log.warning("the speech recognition backend refused verbose_json (HTTP %d): asking for json "
                                "from now on (no detected language)", response.status_code)
                    self._verbose = False
                    continue
                response.raise_for_status()
                payload = response.json()
            except httpx2.HTTPError as exc:
                raise self._failed(exc) from exc
            except ValueError as exc:  # not JSON
                raise BackendFailed(ASR_STAGE, "the answer was not JSON") from exc
            if not isinstance(payload, dict):
                raise BackendFailed(ASR_STAGE, "unexpected answer")
            return payload
        raise BackendFailed(ASR_STAGE, "the request was refused")
