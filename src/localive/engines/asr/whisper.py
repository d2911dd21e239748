"""Embedded speech recognition: Whisper on CTranslate2 (faster-whisper), on one dedicated worker thread.

Decoding paths
- Short window (default): faster-whisper's `transcribe()` always pads the encoder input to 30 s, which costs
  ~0.4-0.6 s per pass on 2 cores. CTranslate2 accepts shorter input, so this path encodes only
  max(`min_window_s`, audio + 0.5 s) of log-Mel features and decodes with `model.model.generate()` directly
  (greedy, with timestamp tokens on: without them decoding loops more). `min_window_s` is 5 s: on espeak test
  speech a 3 s window doubled the word errors (loops, clipped short words) while the encoder costs ~20 ms
  either way; decoding (~6 ms a token) dominates. Guards against the repetition loops short windows
  invite: `max_length` is capped by the audio duration, segments whose start timestamp lies past the end of
  the audio are dropped, and repeated sentences are dropped. A pass whose text still loops (highly compressible,
  or a word four times in a row: "Can Can Can Can …" for "Can you tell me the weather in Paris today?", seen with
  the utterance cut at the pause's first silent frame, without reaching the length cap) is redone on the 30 s
  path. Audio longer than ~29 s always takes the 30 s path.
- `short_window=False`: faster-whisper's `transcribe()` (30 s windows, temperature fallback), the reference.

Silence: the caller normally sends only speech (a VAD ends the turn), but this engine guards on its own:
audio with no 20 ms frame louder than `silence_dbfs` (RMS) is not decoded at all; leading and trailing
stretches more than 35 dB below the loudest frame are trimmed (keeping a margin), because Whisper loops on
short windows that start with seconds of silence; and a pass with Whisper's no-speech probability above
`no_speech_threshold` and a low average log-probability (Whisper's own rule) yields "".

Language: a BCP-47 hint ('en-US', 'pt-BR') maps to its primary subtag when this model knows it; no hint, or
a language the model lacks, uses `default_language` ('en'). `default_language=None` detects the language
from the same encoder pass instead (one extra decoder step). `detect_among` asks for detection whatever the
hint: among the given languages (the most probable of them), or among all of them when it is empty.

Threads: everything (loading, warming, resampling, features, inference) runs on one worker thread, so
requests from all sessions queue there, one at a time, and the event loop never waits on the model.
CTranslate2 uses `cpu_threads` OpenMP threads (intra-op) for that one pass. Default: 1 for the short window
(on 2 cores its greedy decoding of small matrices was faster on one thread than on two, ~90 vs ~105 ms per
utterance, also while llama.cpp generated next to it, and it leaves a core to the LLM), 2 for the 30 s path
(~0.45 s vs ~0.62 s). CTranslate2 ships its own OpenMP runtime: do not set OMP_WAIT_POLICY=ACTIVE in a
process that runs both it and llama.cpp: their spinning threads then take turns on the cores and both
roughly doubled their latency.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from localive.audio.pcm import Pcm16
from localive.audio.resample import resample
from localive.engines.asr.base import Transcript
from localive.engines.worker import CountedWorker
from localive.models.errors import ModelNotInstalled

SAMPLE_RATE_HZ = 16000
_FRAMES_PER_S = 100  # log-Mel frames (10 ms hop)
_TIME_PRECISION_S = 0.02  # one timestamp token step
_TAIL_S = 0.5  # encoded after the end of the audio
_MAX_WINDOW_FRAMES = 3000  # Whisper's 30 s
_MAX_SHORT_AUDIO_S = 29.0  # longer audio takes the 30 s path (it splits into windows)
_MAX_LENGTH = 448  # Whisper's decoder context, prompt included
_MAX_PROMPT_TOKENS = 223  # of `expect` (Whisper keeps at most half its context for the previous text)
_TOKENS_PER_S = 12  # generous: fast speech is ~5 text tokens/s, plus timestamp tokens
_MAX_INITIAL_TIMESTAMP_S = 1.0
_COMPRESSION_RATIO_LIMIT = 2.4  # faster-whisper's threshold for "too repetitive"
_LOOP_WORDS = 4  # the same word this many times in a row: a repetition loop
_FRAME_S = 0.02  # silence trimming works on 20 ms frames
_TRIM_BELOW_LOUDEST_DB = 35.0
_KEEP_BEFORE_S = 0.25  # kept around the speech when trimming
_KEEP_AFTER_S = 0.35
_LANGUAGE_ALIASES = {"iw": "he", "jv": "jw", "nb": "no", "nn": "no", "fil": "tl", "yue": "zh", "cmn": "zh"}


def _import_faster_whisper() -> Any:
    try:
        import faster_whisper
    except ImportError as exc:
        raise ModelNotInstalled(
            "the embedded speech recognizer is not installed: pip install 'localive[voice]' (faster-whisper)"
        ) from exc
    return faster_whisper


def whisper_languages(hints: tuple[str, ...], known: frozenset[str]) -> frozenset[str]:
    """Whisper's codes for BCP-47 tags it knows ('es-MX', 'fr' → {'es', 'fr'}); unknown ones are left out."""
    codes = (whisper_language(h, known, None) for h in hints)
    return frozenset(c for c in codes if c is not None)


def pick_language(probabilities: list[tuple[str, float]], allowed: frozenset[str], known: frozenset[str]) -> str:
    """The most probable language of Whisper's detection (`[("<|xx|>", p), …]`, most probable first) within
    `allowed` (any language this model knows when empty); 'en' if none qualifies."""
    for token, _ in probabilities:
        code = token[2:-2] if token.startswith("<|") else token
        if code in known and (not allowed or code in allowed):
            return code
    return "en"


def whisper_language(hint: str | None, known: frozenset[str], default: str | None) -> str | None:
    """Whisper's code for a BCP-47 hint ('en-US' → 'en'), or `default` when there is none or it is unknown."""
    if not hint:
        return default
    primary = re.split(r"[-_]", hint.strip().lower(), maxsplit=1)[0]
    primary = primary if primary in known else _LANGUAGE_ALIASES.get(primary, primary)
    return primary if primary in known else default


def trim_silence(samples: npt.NDArray[np.float32], sample_rate_hz: int,
                 silence_dbfs: float) -> npt.NDArray[np.float32]:
    """The samples without quiet lead-in and tail (empty if no frame is louder than `silence_dbfs`)."""
    frame = round(_FRAME_S * sample_rate_hz)
    count = samples.size // frame
    if count == 0:
        return samples[:0]
    frames = samples[: count * frame].reshape(count, frame).astype(np.float64)
    level_db = 10.0 * np.log10(np.mean(frames * frames, axis=1) + 1e-20)
    loudest = float(level_db.max())
    if loudest < silence_dbfs:
        return samples[:0]
    loud = np.flatnonzero(level_db >= max(silence_dbfs, loudest - _TRIM_BELOW_LOUDEST_DB))
    start = max(0, int(loud[0]) * frame - round(_KEEP_BEFORE_S * sample_rate_hz))
    end = min(samples.size, (int(loud[-1]) + 1) * frame + round(_KEEP_AFTER_S * sample_rate_hz))
    return samples[start:end]


def _normalised(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def join_segments(texts: list[str]) -> str:
    """Segment texts joined by single spaces, with every sentence that repeats an earlier one dropped."""
    seen: set[str] = set()
    kept: list[str] = []
    for text in texts:
        for sentence in _sentences(text):
            key = _normalised(sentence)
            if not key or key in seen:
                continue
            seen.add(key)
            kept.append(sentence)
    return " ".join(kept)


def split_timestamped(tokens: list[int], timestamp_begin: int, eot: int) -> list[tuple[float, list[int]]]:
    """(start time, text tokens) of each segment of a timestamped decode."""
    segments: list[tuple[float, list[int]]] = []
    start = 0.0
    text: list[int] = []
    for token in tokens:
        if token >= timestamp_begin:
            time_s = (token - timestamp_begin) * _TIME_PRECISION_S
            if text:
                segments.append((start, text))
                text = []
            start = time_s  # a closing timestamp is followed by the next segment's opening one
        elif token < eot:
            text.append(token)
    if text:
        segments.append((start, text))
    return segments


def _compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def looks_like_a_loop(text: str) -> bool:
    """Whether a short-window pass's text shows Whisper's repetition loop: text that compresses as well as
    faster-whisper's "too repetitive" threshold, or a word said `_LOOP_WORDS` times in a row ("Can Can Can Can…",
    "radio radio radio radio"), which a short utterance rarely has and which is too short to compress well."""
    if _compression_ratio(text) > _COMPRESSION_RATIO_LIMIT:
        return True
    run, previous = 0, None
    for word in (w.strip(".,!?;:").casefold() for w in text.split()):
        run = run + 1 if word and word == previous else 1
        if run >= _LOOP_WORDS:
            return True
        previous = word
    return False


class WhisperASR:
    """Implements the ASR interface on a CTranslate2 Whisper model directory (see `ensure_model_dir`)."""

    sample_rate_hz = SAMPLE_RATE_HZ

    def __init__(self, model_dir: Path, *, name: str = "whisper-base", short_window: bool = True,
                 min_window_s: float = 5.0, cpu_threads: int | None = None, compute_type: str = "int8",
                 beam_size: int = 1, default_language: str | None = "en", no_speech_threshold: float = 0.6,
                 log_prob_threshold: float = -1.0, silence_dbfs: float = -60.0) -> None:
        self.name = name
        self.model_dir = model_dir
        self.compute_type = compute_type
        self.cpu_threads = cpu_threads or (1 if short_window else 2)
        self.short_window = short_window
        self.min_window_s = min_window_s
        self.beam_size = beam_size
        self.default_language = default_language
        self.no_speech_threshold = no_speech_threshold
        self.log_prob_threshold = log_prob_threshold
        self.silence_dbfs = silence_dbfs
        self._worker = CountedWorker(thread_name_prefix=f"asr-{name}")
        self._closed = False
        # Worker-thread state: only touched by functions that run on `_worker`.
        self._model: Any = None
        self._languages: frozenset[str] = frozenset()
        self._tokenizers: dict[str | None, Any] = {}
        self._suppress: dict[str | None, tuple[int, ...]] = {}

    # --- loading (on the worker thread) -----------------------------------------------------------------

    def load(self) -> None:
        """Load the model and warm it with one short pass, on the worker thread; blocks the caller until done."""
        self._worker.submit(self._load_on_worker).result()

    def _load_on_worker(self) -> None:
        if self._model is not None:
            return
        if not (self.model_dir / "model.bin").is_file():
            raise ModelNotInstalled(f"no Whisper model in {self.model_dir}: run `localive models prepare`")
        faster_whisper = _import_faster_whisper()
        # A directory path: faster-whisper loads it as is and never contacts a model hub.
        self._model = faster_whisper.WhisperModel(str(self.model_dir), device="cpu", compute_type=self.compute_type,
                                                  cpu_threads=self.cpu_threads, num_workers=1,
                                                  local_files_only=True)
        vocabulary = self._model.hf_tokenizer
        codes = faster_whisper.tokenizer._LANGUAGE_CODES if self._model.model.is_multilingual else ("en",)
        self._languages = frozenset(c for c in codes if vocabulary.token_to_id(f"<|{c}|>") is not None)
        warm = np.random.default_rng(0).normal(0.0, 0.05, SAMPLE_RATE_HZ).astype(np.float32)
        self._decode(warm, self.default_language or "en")

    # --- transcription ---------------------------------------------------------------------------------

    async def transcribe(self, audio: Pcm16, language: str | None = None, expect: str | None = None, *,
                         detect_among: tuple[str, ...] | None = None) -> Transcript:
        """Text of the utterance ("" for silence). `expect` is given to Whisper as the previous text (its
        usual prompt), which steers how short, unclear words are spelled. `detect_among` (not None): detect the
        language, within these tags (any when empty); the transcript's `language` is the one used. Cancelling
        abandons the result; a pass that has started finishes on the worker thread, a queued one never starts."""
        if self._closed:
            raise RuntimeError(f"ASR '{self.name}' is closed")
        future = self._worker.submit(self._transcribe_on_worker, audio, language, expect, detect_among)
        return await asyncio.wrap_future(future)

    @property
    def idle(self) -> bool:
        """No pass is waiting or running, for anyone (one whose caller gave up counts until it has finished)."""
        return self._worker.idle

    def _transcribe_on_worker(self, audio: Pcm16, language: str | None, expect: str | None = None,
                              detect_among: tuple[str, ...] | None = None) -> Transcript:
        started = time.perf_counter()
        self._load_on_worker()
        audio_s = audio.duration_s
        if audio.sample_rate_hz != SAMPLE_RATE_HZ:
            audio = resample(audio, SAMPLE_RATE_HZ)
        samples = trim_silence(audio.to_float32(), SAMPLE_RATE_HZ, self.silence_dbfs)
        allowed: frozenset[str] = frozenset()
        if detect_among is not None:
            lang = None
            allowed = whisper_languages(detect_among, self._languages)
        else:
            lang = whisper_language(language, self._languages, self.default_language)
        text = ""
        if samples.size:
            text, lang = self._decode(samples, lang, expect, allowed)
        return Transcript(text=text, language=lang, audio_s=audio_s, compute_s=time.perf_counter() - started)

    def _decode(self, samples: npt.NDArray[np.float32], language: str | None, expect: str | None = None,
                allowed: frozenset[str] = frozenset()) -> tuple[str, str | None]:
        """`language` None: detected (within `allowed`, when not empty)."""
        duration_s = samples.size / SAMPLE_RATE_HZ
        if self.short_window and duration_s <= _MAX_SHORT_AUDIO_S:
            text, language = self._decode_short(samples, language, expect, allowed)
            if text is not None:
                return text, language
        if language is None:
            detected = self._model.detect_language(samples)[2]  # [(code, p), …], most probable first
            language = pick_language(detected, allowed, self._languages)
        return self._decode_full(samples, language, expect)

    def _tokenizer(self, language: str | None) -> tuple[Any, tuple[int, ...]]:
        if language not in self._tokenizers:
            from faster_whisper.tokenizer import Tokenizer
            from faster_whisper.transcribe import get_suppressed_tokens

            multilingual = self._model.model.is_multilingual
            tokenizer = Tokenizer(self._model.hf_tokenizer, multilingual, task="transcribe",
                                  language=language if multilingual else None)
            self._tokenizers[language] = tokenizer
            self._suppress[language] = tuple(get_suppressed_tokens(tokenizer, [-1]) or ())
        return self._tokenizers[language], self._suppress[language]

    def _decode_short(self, samples: npt.NDArray[np.float32], language: str | None, expect: str | None = None,
                      allowed: frozenset[str] = frozenset()) -> tuple[str | None, str]:
        """The short-window pass: (text, language); text None when it ran into the length cap with repetitive
        text (the language, detected or given, is still returned)."""
        from faster_whisper.audio import pad_or_trim

        model = self._model
        duration_s = samples.size / SAMPLE_RATE_HZ
        frames = math.ceil(max(self.min_window_s, duration_s + _TAIL_S) * _FRAMES_PER_S / 2) * 2  # even: conv stride 2
        features = pad_or_trim(model.feature_extractor(samples), min(frames, _MAX_WINDOW_FRAMES))
        encoded = model.encode(features)
        if language is None:
            detected = model.model.detect_language(encoded)[0]  # [("<|xx|>", p), …], most probable first
            language = pick_language(detected, allowed, self._languages)
        tokenizer, suppress = self._tokenizer(language)
        prompt = list(tokenizer.sot_sequence)
        if expect and expect.strip():
            prompt = [tokenizer.sot_prev, *tokenizer.encode(" " + expect.strip())[-_MAX_PROMPT_TOKENS:], *prompt]
        max_new = 16 + math.ceil(duration_s * _TOKENS_PER_S)
        max_length = min(_MAX_LENGTH, len(prompt) + max_new)
        result = model.model.generate(
            encoded, [prompt], beam_size=self.beam_size, max_length=max_length, return_scores=True,
            return_no_speech_prob=True, suppress_blank=True, suppress_tokens=list(suppress),
            max_initial_timestamp_index=round(_MAX_INITIAL_TIMESTAMP_S / _TIME_PRECISION_S),
        )[0]
        tokens: list[int] = list(result.sequences_ids[0])
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)  # length_penalty 1, as faster-whisper
        if result.no_speech_prob > self.no_speech_threshold and avg_logprob < self.log_prob_threshold:
            return "", language
        segments = split_timestamped(tokens, tokenizer.timestamp_begin, tokenizer.eot)
        texts = [tokenizer.decode(t).strip() for start, t in segments if start < duration_s]
        if looks_like_a_loop(" ".join(texts)):
            return None, language  # a repetition loop: redo on the 30 s path
        return join_segments(texts), language

    def _decode_full(self, samples: npt.NDArray[np.float32], language: str | None,
                     expect: str | None = None) -> tuple[str, str | None]:
        segments, info = self._model.transcribe(
            samples, language=language, beam_size=self.beam_size, condition_on_previous_text=False,
            initial_prompt=expect.strip() if expect and expect.strip() else None,
            vad_filter=False, without_timestamps=False, no_speech_threshold=self.no_speech_threshold,
            log_prob_threshold=self.log_prob_threshold,
        )
        texts = [segment.text.strip() for segment in segments]  # the generator runs the passes
        return join_segments(texts), str(info.language)

    def close(self) -> None:
        """Drop queued passes, wait for the one in progress (≤ one utterance), and free the model."""
        self._closed = True
        self._worker.shutdown(wait=True, cancel_futures=True)
        self._model = None  # the worker thread has ended: nothing else touches it now
        self._tokenizers.clear()
        self._suppress.clear()
