"""Test speech: espeak-ng + sox through the bench's helper, padded with silence (so VAD can end the turn)."""

from __future__ import annotations

import functools
import hashlib
import re
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

from localive.audio.pcm import Pcm16
from localive.audio.resample import resample
from localive.bench import speech as espeak

CACHE = espeak.CACHE.parent / "localive-test-speech"


def speech_wav(text: str, *, rate_hz: int = 16000, voice: str = "en-us", words_per_minute: int = 160,
               lead_s: float = 0.3, trail_s: float = 1.2) -> Path:
    """A mono 16-bit WAV of `text` with silence before and after."""
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


@functools.cache
def expressive_pcm(text: str, *, words_per_minute: int = 160, pitch: int = 50, amplitude: int = 100,
        voice: str = "en-us") -> bytes:
    """16 kHz 16-bit PCM of espeak-ng saying `text` (-s speed, -p pitch 0-99, -a amplitude), 0.3 s silence around."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("the affect tests need espeak-ng (Debian: apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-p", str(pitch), "-a", str(amplitude),
                        "-w", str(out), text], check=True, capture_output=True)
        with wave.open(str(out), "rb") as wav:
            raw = Pcm16(wav.readframes(wav.getnframes()), wav.getframerate())
    pad = Pcm16.silence(0.3, 16000)
    return (pad + resample(raw, 16000) + pad).data


def speech_pcm(text: str, **kwargs: object) -> bytes:
    """Raw little-endian 16-bit PCM of `speech_wav`."""
    return read_wav(speech_wav(text, **kwargs))[0]  # type: ignore[arg-type]


def read_wav(path: Path) -> tuple[bytes, int]:
    with wave.open(str(path), "rb") as wav:
        assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
        return wav.readframes(wav.getnframes()), wav.getframerate()


# A transcript a user would read as what was said: at most a quarter of its words wrong (2 in 8), whatever one
# build of Whisper makes of a word on one CPU.
CLOSE_WER = 0.25


def spoken_words(text: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level edit distance over the reference's length (Levenshtein on lowercased words)."""
    ref, hyp = spoken_words(reference), spoken_words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        diagonal, row[0] = row[0], i
        for j in range(1, len(hyp) + 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (ref[i - 1] != hyp[j - 1]))
    return row[len(hyp)] / max(1, len(ref))
