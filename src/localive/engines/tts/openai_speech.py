"""Speech synthesis behind an OpenAI-compatible `/v1/audio/speech` endpoint (a Kokoro or Piper server, speaches,
OpenAI itself).

The session asks for one clause at a time, so each clause is one POST: `model`, `voice` (the Live voice name
mapped to one of the server's voices), `input` (the clause), `response_format` and, when affective dialog changes
the pace, `speed`. The answer is read as it streams in and converted to the Live API's 24 kHz mono 16-bit PCM:
`wav` (the default: its header says the rate, any rate and 8/16/32-bit PCM or float) or `pcm` (raw 16-bit at
24 kHz, as OpenAI defines it). Cancelling the awaiting task — a barge-in — closes the HTTP stream at once.

Voices: every Live voice name is offered; by default Google's female voices map to OpenAI's female voices (nova,
shimmer, coral, sage) and the male ones to its male voices (onyx, echo, ash, fable), in turn. A voice-map TOML
(`--tts-voice-map`) overrides names one by one (`Puck = "am_adam"`) or all at once (`"*" = "en_US-joe-medium"`).
Delivery: the rate is sent as `speed`, the gain applied here; a pitch change is not available through the
endpoint and is left out.

Failures raise BackendFailed (the session closes 1011 naming the stage); a refused connection also marks the
server down, so that new sessions that speak are refused with 1013 until it answers (speech_remote.py).

Languages: the server is assumed to speak the languages given (`--tts-languages`, English by default);
`speaks()` answers for those, so a session in another language is refused at setup as with the embedded voices.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Mapping

import httpx2
import numpy as np

from localive.audio.pcm import Pcm16
from localive.audio.resample import resample_float
from localive.engines.speech_remote import (
    TTS_KEY_ENV,
    TTS_STAGE,
    BackendFailed,
    RemoteSpeechEngine,
    auth_headers,
)
from localive.engines.tts.base import NEUTRAL, OUTPUT_SAMPLE_RATE_HZ, Delivery, UnsupportedLanguage
from localive.engines.tts.voices import CATALOG, resolve_voice, voice_names, voice_spec

FEMALE_VOICES = ("nova", "shimmer", "coral", "sage")
MALE_VOICES = ("onyx", "echo", "ash", "fable")
FORMATS = ("wav", "pcm")
PCM_RATE_HZ = 24000  # OpenAI's `pcm`: 24 kHz, 16-bit signed little-endian, mono
_MAX_HEADER_BYTES = 64 * 1024


def default_voice_map() -> dict[str, str]:
    """Live voice name → OpenAI voice name, female to female and male to male, in turn."""
    mapping: dict[str, str] = {}
    counts = {"female": 0, "male": 0}
    for spec in CATALOG:
        pool = FEMALE_VOICES if spec.gender == "female" else MALE_VOICES
        mapping[spec.name] = pool[counts[spec.gender] % len(pool)]
        counts[spec.gender] += 1
    return mapping


class WavError(ValueError):
    pass


def parse_wav_header(data: bytes) -> tuple[int, int, int, int, int] | None:
    """(offset of the samples, sample rate, channels, bits per sample, format tag) once `data` holds the whole
    header, None while more is needed. A streamed WAV's sizes may be placeholders: they are not used."""
    if len(data) < 12:
        return None
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavError("not a WAV stream")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while len(data) >= pos + 8:
        chunk, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if chunk == b"data":
            if fmt is None:
                raise WavError("WAV data before its format")
            tag, channels, rate, bits = fmt
            return pos + 8, rate, channels, bits, tag
        if len(data) < pos + 8 + size:
            return None
        if chunk == b"fmt ":
            tag, channels, rate = struct.unpack("<HHI", data[pos + 8:pos + 16])
            bits = struct.unpack("<H", data[pos + 22:pos + 24])[0]
            if tag == 0xFFFE and size >= 40:  # WAVE_FORMAT_EXTENSIBLE: the real tag starts the sub-format GUID
                tag = struct.unpack("<H", data[pos + 32:pos + 34])[0]
            fmt = (tag, channels, rate, bits)
        pos += 8 + size + (size & 1)
    return None


def decode_samples(data: bytes, channels: int, bits: int, tag: int) -> np.ndarray:
    """Interleaved PCM (tag 1: 8/16/24/32-bit) or float (tag 3: 32/64-bit) → mono float32."""
    width = bits // 8
    usable = len(data) - len(data) % (width * channels)
    raw = data[:usable]
    if tag == 3 and bits in (32, 64):
        samples = np.frombuffer(raw, dtype="<f4" if bits == 32 else "<f8").astype(np.float32)
    elif tag == 1 and bits == 16:
        samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif tag == 1 and bits == 32:
        samples = (np.frombuffer(raw, dtype="<i4").astype(np.float64) / 2147483648.0).astype(np.float32)
    elif tag == 1 and bits == 8:
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif tag == 1 and bits == 24:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        samples = (np.where(value >= 1 << 23, value - (1 << 24), value) / float(1 << 23)).astype(np.float32)
    else:
        raise WavError(f"unsupported WAV encoding (format {tag}, {bits} bits)")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype(np.float32)
    return samples


def to_output(samples: np.ndarray, rate_hz: int, gain_db: float) -> Pcm16:
    """Mono float samples at `rate_hz` → 24 kHz Pcm16, with `gain_db` applied."""
    out = resample_float(samples.astype(np.float32), rate_hz, OUTPUT_SAMPLE_RATE_HZ)
    if gain_db:
        out = np.clip(out * 10.0 ** (gain_db / 20.0), -1.0, 1.0).astype(np.float32)
    return Pcm16.from_float32(out, OUTPUT_SAMPLE_RATE_HZ)


class OpenAISpeechTTS(RemoteSpeechEngine):
    """Implements the TTS interface over HTTP. `base_url` ends with the API root, e.g. http://host:8880/v1.
    `max_sessions`: how many sessions may use it at once (None: no limit)."""

    def __init__(self, base_url: str, model: str, *, voice_map: Mapping[str, str] | None = None,
                 response_format: str = "wav", languages: tuple[str, ...] = ("en",), timeout_s: float = 30.0,
                 max_sessions: int | None = None) -> None:
        if response_format not in FORMATS:
            raise ValueError(f"response format must be one of {', '.join(FORMATS)}, not {response_format!r}")
        super().__init__(base_url, TTS_STAGE, TTS_KEY_ENV, timeout_s=timeout_s, max_sessions=max_sessions)
        self.name = f"openai-speech:{model}"
        self._url = self._base_url + "/audio/speech"
        self._model = model
        self._format = response_format
        self._languages = frozenset(lang.strip().lower() for lang in languages if lang.strip())
        overrides = dict(voice_map or {})
        everyone = overrides.pop("*", None)
        known = {name.casefold(): name for name in voice_names()}
        unknown = [name for name in overrides if name.casefold() not in known]
        if unknown:
            raise ValueError(f"the voice map names voices Live does not have: {', '.join(sorted(unknown))[:200]}")
        base = default_voice_map() if everyone is None else dict.fromkeys(voice_names(), everyone)
        base.update({known[name.casefold()]: server for name, server in overrides.items()})
        self.voice_map = base

    def voices(self) -> list[str]:
        return voice_names()

    def resolve_voice(self, name: str | None) -> str:
        return resolve_voice(name)

    def speaks(self, language: str | None) -> bool:
        if language is None or "*" in self._languages:
            return True
        tag = language.strip().replace("_", "-").lower()
        return tag in self._languages or tag.split("-")[0] in self._languages

    async def synthesize(self, text: str, voice: str, language: str | None = None,
                         delivery: Delivery = NEUTRAL) -> Pcm16:
        """One clause → 24 kHz mono PCM (empty for text with nothing to say). Raises UnknownVoice,
        UnsupportedLanguage, BackendFailed. Cancelling closes the HTTP stream."""
        spec = voice_spec(voice)
        if not self.speaks(language):
            raise UnsupportedLanguage(f"the speech synthesis backend is configured for {sorted(self._languages)}, "
                                      f"not {language!r:.24}")
        if not text.strip():
            return Pcm16(b"", OUTPUT_SAMPLE_RATE_HZ)
        body: dict[str, object] = {"model": self._model, "voice": self.voice_map[spec.name], "input": text,
                                   "response_format": self._format}
        if delivery.rate != 1.0:
            body["speed"] = round(delivery.rate, 3)
        audio, rate, channels, bits, tag = await self._fetch(body)
        if not audio:
            return Pcm16(b"", OUTPUT_SAMPLE_RATE_HZ)
        if (rate, channels, bits, tag) == (OUTPUT_SAMPLE_RATE_HZ, 1, 16, 1) and not delivery.gain_db:
            return Pcm16(audio[: len(audio) - len(audio) % 2], OUTPUT_SAMPLE_RATE_HZ)
        try:
            samples = decode_samples(audio, channels, bits, tag)
        except WavError as exc:
            raise BackendFailed(TTS_STAGE, str(exc)) from exc
        return await asyncio.to_thread(to_output, samples, rate, delivery.gain_db)

    async def _fetch(self, body: dict[str, object]) -> tuple[bytes, int, int, int, int]:
        """The answer's samples and their (rate, channels, bits, format tag), read as they stream in."""
        received = bytearray()
        header: tuple[int, int, int, int, int] | None = None
        try:
            async with self._http().stream("POST", self._url, json=body,
                                           headers=auth_headers(TTS_KEY_ENV)) as response:
                if response.status_code >= 400:
                    await response.aread()
                response.raise_for_status()
                async for chunk in response.aiter_bytes():
                    received += chunk
                    if self._format == "wav" and header is None:
                        header = parse_wav_header(bytes(received[:_MAX_HEADER_BYTES]))
                        if header is None and len(received) > _MAX_HEADER_BYTES:
                            raise WavError("no WAV header in the answer")
        except httpx2.HTTPError as exc:
            raise self._failed(exc) from exc
        except WavError as exc:
            raise BackendFailed(TTS_STAGE, str(exc)) from exc
        if self._format == "pcm":
            return bytes(received), PCM_RATE_HZ, 1, 16, 1
        if header is None:
            if not received:
                return b"", OUTPUT_SAMPLE_RATE_HZ, 1, 16, 1
            raise BackendFailed(TTS_STAGE, "the answer was not a complete WAV")
        offset, rate, channels, bits, tag = header
        if rate <= 0 or channels <= 0 or bits <= 0:
            raise BackendFailed(TTS_STAGE, "the answer's WAV header is invalid")
        return bytes(received[offset:]), rate, channels, bits, tag
