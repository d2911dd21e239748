"""Test speech made with espeak-ng and sox (deterministic: `sox -D` turns dithering off)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

CACHE = Path(tempfile.gettempdir()) / "localive-test-speech"


def require_tools() -> None:
    missing = [t for t in ("espeak-ng", "sox") if shutil.which(t) is None]
    if missing:
        raise RuntimeError(f"test speech needs {', '.join(missing)}: apt-get install espeak-ng sox")


def speech_wav(text: str, *, rate_hz: int = 16000, voice: str = "en-us", words_per_minute: int = 160,
               lead_s: float = 0.3, trail_s: float = 1.2) -> Path:
    """A mono 16-bit WAV of `text` with silence before and after (so automatic VAD can end the turn)."""
    require_tools()
    CACHE.mkdir(exist_ok=True)
    key = hashlib.sha256(f"{text}|{rate_hz}|{voice}|{words_per_minute}|{lead_s}|{trail_s}".encode()).hexdigest()[:16]
    out = CACHE / f"{key}.wav"
    if not out.exists():
        raw = CACHE / f"{key}.raw.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(raw), text], check=True)
        subprocess.run(["sox", "-D", str(raw), "-r", str(rate_hz), "-c", "1", "-b", "16", str(out),
                        "pad", str(lead_s), str(trail_s)], check=True)
        raw.unlink()
    return out


def speech_pcm(text: str, **kwargs: object) -> bytes:
    """Raw little-endian 16-bit PCM of `speech_wav`."""
    with wave.open(str(speech_wav(text, **kwargs)), "rb") as wav:  # type: ignore[arg-type]
        return wav.readframes(wav.getnframes())


def read_wav(path: Path) -> tuple[bytes, int]:
    with wave.open(str(path), "rb") as wav:
        assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
        return wav.readframes(wav.getnframes()), wav.getframerate()
