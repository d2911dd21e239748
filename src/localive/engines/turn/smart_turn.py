"""Smart Turn v3.2 (pipecat's end-of-turn model) on onnxruntime, weights taken from the `pipecat-ai` wheel.

The model is a Whisper-tiny encoder with an attention-pooled linear head (~8 M parameters, int8 ONNX, 8.7 MB),
trained on human and synthetic speech in 23 languages. It listens to the last 8 s of a turn and returns the
sigmoid probability that the speaker has finished. It hears mostly prosody (pitch, pace, the fall at the end of a
sentence), not words: see docs/turn-taking.md for what it does on test speech.

Weights: `pip install --no-deps pipecat-ai==1.14.0` ships `pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx`.
The package is located, never imported (pipecat's own dependencies are not installed), and the file's SHA-256 is
checked before it is loaded. Nothing is downloaded at run time.

Input, as pipecat's `LocalSmartTurnAnalyzerV3` and Smart Turn's training prepare it: 16 kHz mono float32; the last
8 s kept, shorter audio zero-padded at the *start*; the 8 s window normalised to zero mean and unit variance;
Whisper log-mel features (80 mels, 25 ms Hann window, 10 ms hop, 800 frames, log10 clamped 8 below the maximum,
then (x + 4) / 4) — computed by faster-whisper's `FeatureExtractor`, which equals transformers'
`WhisperFeatureExtractor(chunk_length=8)` here to ~5e-6. Input `input_features` (batch, 80, 800) float32; output
`logits` (batch, 1), already a probability despite its name.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np

from localive.engines.turn.base import SAMPLE_RATE_HZ, Pcm, Samples, to_float32
from localive.models.errors import ModelNotInstalled

THRESHOLD = 0.5  # pipecat's: the turn is complete when probability > 0.5
WINDOW_S = 8  # the model sees the last 8 s
WINDOW_SAMPLES = WINDOW_S * SAMPLE_RATE_HZ
N_MELS = 80
N_FRAMES = 800  # 8 s at a 10 ms hop

PACKAGE = "pipecat-ai==1.14.0"
INSTALL_HINT = f"pip install --no-deps {PACKAGE}"
PACKAGE_MODULE = "pipecat"  # the import name the wheel installs
MODEL_RELPATH = "audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"  # inside the `pipecat` package folder
MODEL_SIZE = 8_679_182
MODEL_SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"
_NORMALIZE_EPS = 1e-7  # transformers' zero-mean unit-variance epsilon


def model_path(package_module: str = PACKAGE_MODULE) -> Path:
    """The checked ONNX file inside the installed `pipecat-ai` wheel. Raises ModelNotInstalled (with the install
    command) when it is missing or is not the pinned file. `pipecat` is located, not imported."""
    if "." in package_module:
        raise ValueError("a top-level package name is expected (finding a submodule would import its parents)")
    spec = importlib.util.find_spec(package_module)  # a top-level name: finding it runs none of its code
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    path = next((Path(f) / MODEL_RELPATH for f in folders if (Path(f) / MODEL_RELPATH).is_file()), None)
    if path is None:
        raise ModelNotInstalled(f"the Smart Turn end-of-turn model is not installed: {INSTALL_HINT}")
    size = path.stat().st_size
    digest = _sha256(path) if size == MODEL_SIZE else None
    if digest != MODEL_SHA256:
        found = f"sha256 {digest[:12]}…" if digest else f"{size} bytes, not {MODEL_SIZE}"
        raise ModelNotInstalled(
            f"{path} is not the pinned Smart Turn v3.2 model ({found}): {INSTALL_HINT} --force-reinstall"
        )
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def last_window(samples: Samples) -> Samples:
    """The last 8 s of `samples`; shorter audio is zero-padded at the start, so speech ends where the window ends."""
    if samples.size >= WINDOW_SAMPLES:
        return samples[-WINDOW_SAMPLES:]
    return np.concatenate([np.zeros(WINDOW_SAMPLES - samples.size, np.float32), samples])


class _Features:
    """Whisper log-mel features of one 8 s window, (80, 800) float32, through faster-whisper's extractor."""

    def __init__(self) -> None:
        try:
            from faster_whisper.feature_extractor import FeatureExtractor
        except ImportError as exc:
            raise ModelNotInstalled("Smart Turn's features need faster-whisper: pip install 'localive[voice]'") from exc
        self._extractor: Any = FeatureExtractor(
            feature_size=N_MELS, sampling_rate=SAMPLE_RATE_HZ, chunk_length=WINDOW_S
        )

    def __call__(self, window: Samples) -> Samples:
        normalized = (window - window.mean()) / np.sqrt(window.var() + np.float32(_NORMALIZE_EPS))
        # padding=0: transformers pads to exactly 8 s, faster-whisper's default adds 160 zeros (one frame more).
        mel = np.asarray(self._extractor(normalized, padding=0), dtype=np.float32)
        if mel.shape != (N_MELS, N_FRAMES):
            raise RuntimeError(f"unexpected Smart Turn feature shape {mel.shape}")
        return mel


def log_mel_features(samples: Samples) -> Samples:
    """The model's input for 16 kHz float32 audio of a turn: (80, 800) float32 (for tests and tools)."""
    return _Features()(last_window(samples))


class SmartTurn:
    """Implements EndOfTurn with Smart Turn v3.2. One inference thread by default (`threads`); a call takes
    ~26 ms on one core of a server CPU whatever the audio length (the window is always 8 s). Thread-safe."""

    name = "smart-turn-v3.2"
    sample_rate_hz = SAMPLE_RATE_HZ
    threshold = THRESHOLD

    def __init__(self, *, path: Path | None = None, threads: int = 1) -> None:
        self._path = path
        self._threads = threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._features: _Features | None = None

    def load(self) -> None:
        """Check and load the model and run it once (blocking, ~0.1 s). Idempotent. Raises ModelNotInstalled."""
        with self._lock:
            if self._session is not None:
                return
            try:
                import onnxruntime
            except ImportError as exc:
                raise ModelNotInstalled("Smart Turn needs onnxruntime: pip install 'localive[voice]'") from exc
            path = self._path or model_path()
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3
            # No spin-waiting between runs: the LLM and the other engines share these cores.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            features = _Features()
            session.run(None, {"input_features": np.zeros((1, N_MELS, N_FRAMES), np.float32)})  # warm up
            self._features, self._session = features, session

    def probability(self, pcm: Pcm) -> float:
        samples = to_float32(pcm)
        if samples.size == 0:
            return 0.0
        if self._session is None:
            self.load()
        session, features = self._session, self._features
        if session is None or features is None:  # closed by another thread meanwhile
            raise RuntimeError("Smart Turn was closed")
        mel = features(last_window(samples))
        output = session.run(None, {"input_features": mel[np.newaxis]})[0]
        return float(np.clip(np.asarray(output, dtype=np.float32).reshape(-1)[0], 0.0, 1.0))

    def is_complete(self, pcm: Pcm) -> bool:
        """pipecat's decision: probability above THRESHOLD."""
        return self.probability(pcm) > THRESHOLD

    def close(self) -> None:
        """Release the model; a later `probability` loads it again."""
        with self._lock:
            self._session = None
            self._features = None

