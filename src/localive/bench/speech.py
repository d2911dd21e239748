"""Test speech for the voice benchmark: espeak-ng + sox, 16 kHz 16-bit mono PCM, and where its speech ends.

No padding: the benchmark adds its own lead-in and trailing audio and needs to know where the spoken words end.
localive.testing.speech builds its test speech (padded with silence) on `speech_pcm` here.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from localive.bench.server import BenchError

RATE_HZ = 16000
CACHE = Path(tempfile.gettempdir()) / "localive-bench-speech"
TOOLS = ("espeak-ng", "sox")
_FRAME_S = 0.01  # speech bounds are found on 10 ms frames
_BELOW_LOUDEST_DB = 40.0  # a frame more than this below the loudest one is not speech


def require_tools() -> None:
    """Raise BenchError (one line) when espeak-ng or sox is missing."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise BenchError(f"the voice benchmark makes its test speech with espeak-ng and sox; missing: "
                         f"{', '.join(missing)} (e.g. apt-get install espeak-ng sox)")


def speech_pcm(text: str, *, voice: str = "en-us", words_per_minute: int = 160) -> bytes:
    """Little-endian 16-bit mono PCM at 16 kHz of espeak-ng saying `text` (cached in the temp directory)."""
    require_tools()
    CACHE.mkdir(exist_ok=True)
    key = hashlib.sha256(f"{text}|{RATE_HZ}|{voice}|{words_per_minute}".encode()).hexdigest()[:16]
    out = CACHE / f"{key}.wav"
    if not out.exists():
        raw = CACHE / f"{key}.raw.wav"
        part = CACHE / f"{key}.part.wav"
        try:
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(raw), text],
                           check=True, capture_output=True)
            subprocess.run(["sox", "-D", str(raw), "-r", str(RATE_HZ), "-c", "1", "-b", "16", str(part)],
                           check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise BenchError(f"cannot make test speech with espeak-ng/sox: {exc}") from None
        finally:
            raw.unlink(missing_ok=True)
        part.replace(out)
    with wave.open(str(out), "rb") as wav:
        if wav.getnchannels() != 1 or wav.getsampwidth() != 2 or wav.getframerate() != RATE_HZ:
            raise BenchError(f"unexpected test speech format in {out}")
        return wav.readframes(wav.getnframes())


def speech_bounds(pcm: bytes, rate_hz: int = RATE_HZ) -> tuple[float, float]:
    """(start, end) in seconds of the speech in `pcm`: the first and last 10 ms frame within 40 dB of the loudest.

    espeak-ng ends its output with ~0.3 s of silence; the voice benchmark times automatic activity detection
    from the end of the words, not from the end of the file.
    """
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0
    frame = max(1, round(_FRAME_S * rate_hz))
    count = samples.size // frame
    if count == 0:
        raise ValueError("no audio")
    level_db = 10.0 * np.log10(np.mean(samples[: count * frame].reshape(count, frame) ** 2, axis=1) + 1e-20)
    loud = np.flatnonzero(level_db >= level_db.max() - _BELOW_LOUDEST_DB)
    return int(loud[0]) * frame / rate_hz, (int(loud[-1]) + 1) * frame / rate_hz


def room_noise(seconds: float, *, dbfs: float = -60.0, seed: int = 0, rate_hz: int = RATE_HZ) -> bytes:
    """White noise at `dbfs` RMS: a quiet microphone. The VAD scores it like any audio but hears no speech."""
    rng = np.random.default_rng(seed)
    rms = 32768.0 * 10.0 ** (dbfs / 20.0)
    samples = np.clip(rng.normal(0.0, rms, round(seconds * rate_hz)), -32768, 32767)
    return samples.astype("<i2").tobytes()
