"""Test audio: speech made with espeak-ng and sox, silence, tones and room noise, as 16-bit mono PCM.

All functions return little-endian 16-bit PCM bytes (16 kHz unless `rate_hz` says otherwise), what a Live client
sends in `realtimeInput.audio` (`audio_frame` wraps them in that message; `silence` and `tone` come from
localive.testing.audio, which needs no audio library). Speech is deterministic (espeak-ng, then
`sox -D`, no dither) and cached in the temporary directory; it needs the espeak-ng and sox programs (Debian:
`apt-get install espeak-ng sox`) and raises a RuntimeError naming what is missing. Resampling needs numpy and soxr
(localive's `voice` extra).
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

from localive.audio.pcm import Pcm16
from localive.audio.resample import resample
from localive.bench import speech as espeak
from localive.bench.speech import room_noise, speech_bounds
from localive.testing.audio import RATE_HZ, audio_frame, silence, tone

__all__ = ["RATE_HZ", "audio_frame", "expressive_pcm", "read_wav", "room_noise", "silence", "speech_bounds",
           "speech_pcm", "speech_wav", "tone"]  # silence, tone and audio_frame: from localive.testing.audio

CACHE = Path(tempfile.gettempdir()) / "localive-test-speech"


def speech_wav(text: str, *, rate_hz: int = RATE_HZ, voice: str = "en-us", words_per_minute: int = 160,
               lead_s: float = 0.3, trail_s: float = 1.2) -> Path:
    """A mono 16-bit WAV file of espeak-ng saying `text`, with `lead_s` of silence before and `trail_s` after
    (enough for voice activity detection to end the turn)."""
    CACHE.mkdir(exist_ok=True)
    key = hashlib.sha256(f"{text}|{rate_hz}|{voice}|{words_per_minute}|{lead_s}|{trail_s}".encode()).hexdigest()[:16]
    out = CACHE / f"{key}.wav"
    if not out.exists():
        rate = espeak.RATE_HZ
        words = Pcm16(espeak.speech_pcm(text, voice=voice, words_per_minute=words_per_minute), rate)
        audio = resample(Pcm16.silence(lead_s, rate) + words + Pcm16.silence(trail_s, rate), rate_hz)
        part = out.with_suffix(".part")
        with wave.open(str(part), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(rate_hz)
            wav.writeframes(audio.data)
        part.replace(out)
    return out


def speech_pcm(text: str, *, rate_hz: int = RATE_HZ, voice: str = "en-us", words_per_minute: int = 160,
               lead_s: float = 0.3, trail_s: float = 1.2) -> bytes:
    """The PCM of `speech_wav`: `text` spoken, with silence around it."""
    return read_wav(speech_wav(text, rate_hz=rate_hz, voice=voice, words_per_minute=words_per_minute,
                               lead_s=lead_s, trail_s=trail_s))[0]


def read_wav(path: Path) -> tuple[bytes, int]:
    """(PCM, sample rate) of a mono 16-bit WAV file."""
    with wave.open(str(path), "rb") as wav:
        if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise ValueError(f"{path} is not mono 16-bit PCM")
        return wav.readframes(wav.getnframes()), wav.getframerate()


@functools.cache
def expressive_pcm(text: str, *, words_per_minute: int = 160, pitch: int = 50, amplitude: int = 100,
                   voice: str = "en-us") -> bytes:
    """16 kHz PCM of espeak-ng saying `text` at this speed (-s), pitch (-p, 0-99) and amplitude (-a), with 0.3 s
    of silence around it: speech whose delivery (fast, high, loud, …) a test chooses."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("expressive test speech needs espeak-ng (Debian: apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-p", str(pitch), "-a", str(amplitude),
                        "-w", str(out), text], check=True, capture_output=True)
        with wave.open(str(out), "rb") as wav:
            raw = Pcm16(wav.readframes(wav.getnframes()), wav.getframerate())
    pad = Pcm16.silence(0.3, RATE_HZ)
    return (pad + resample(raw, RATE_HZ) + pad).data
