"""The voice benchmark: spoken questions → first response audio, per-stage timings, and listening capacity.

A server on the default registry and the default speech engines (Silero VAD → Whisper base → Qwen2.5-Coder-0.5B
→ hibari/piper) on free 127.0.0.1 ports; raw websockets clients on plain ws://. Every turn uses a new session
(model gemini-2.5-flash-preview-native-audio-dialog, AUDIO, temperature 0, at most MAX_TOKENS output tokens,
input and output transcription on), so no turn carries another's history.

Latency runs (RUNS, chosen with --voice-runs), one turn at a time:
- "manual" activity (automaticActivityDetection.disabled): activityStart, the question's espeak-ng audio paced
  in real time (chunk i is sent once it has been "recorded", i.e. chunk_ms after the previous one), activityEnd;
  latency = sending activityEnd → the first serverContent.modelTurn inlineData (audio) received.
- "default" turn detection, as a user with an open microphone feels it: no realtimeInputConfig at all, so the
  server's default turn-taking applies (semantic for the native-audio model: Silero hears a pause, the
  end-of-turn model judges it; see docs/turn-taking.md). 0.5 s of room noise, the question, then noise (the
  microphone stays open), all paced in real time; latency = sending the chunk that holds the last sample of
  speech (found by energy: espeak's own trailing silence does not count) → first audio.
- "silence": automatic activity detection with silenceDurationMs set (silence only), the same audio and origin.
  It includes the configured silence the VAD must hear before it ends the turn.
The client reads until generationComplete (the server has generated and synthesised the whole answer) and closes
the session; it does not wait for turnComplete, which comes only after the answer's playback time. The server
logs one `turn timings` line per turn (times from the moment the user's turn ended on the server); the bench
reads them from the server log and matches them to its turns by setupComplete.sessionId.

Listening capacity: K sessions with automatic activity detection stream room noise (the VAD scores every frame;
noise is never speech, so no turns start) in real time. Meanwhile a probe session runs manual turns. At the end
of the window every listening session sends a message the server must reject at once (a second `setup`): the
server handles a session's messages strictly in order, so the time until its close frame arrives is how far
that session's audio processing lags behind real time (its backlog). (A WebSocket ping would not do: uvicorn
answers pings in its protocol layer as soon as it reads them, and it reads up to 256 KiB of queued frames at a
time, seconds of audio.) A level keeps up when every session's backlog is at most LAG_LIMIT_MS, the bench itself
sent its audio on time, and no probe turn failed; the levels stop at the first that does not keep up.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import random
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from localive.bench.accuracy import word_error_rate, words
from localive.bench.client import receive_json
from localive.bench.machine import BackgroundMeter
from localive.bench.server import BenchError, RunningServer, start_server
from localive.bench.speech import RATE_HZ, room_noise, speech_bounds, speech_pcm
from localive.bench.stats import Spread, percentile, spread
from localive.session.activity import INCOMPLETE_SILENCE_MS

MODEL = "models/gemini-2.5-flash-preview-native-audio-dialog"
MAX_TOKENS = 48
RUNS = ("manual", "default", "silence")  # the latency runs, in the order they run
LEAD_S = 0.5  # room noise before the question in automatic mode (as ../shared/tools/auto_latency.py)
TAIL_S = 1.5  # room noise after the longest silence the server may wait, in automatic mode (the microphone stays open)
NOISE_DBFS = -60.0
WARM_UP = "Hello, can you hear me?"
QUESTIONS = (
    "What is the capital of France?",
    "How many days are in a week?",
    "What color is the sky on a clear day?",
    "Who wrote Romeo and Juliet?",
    "What is two plus two?",
    "How many legs does a spider have?",
    "What is the largest planet in our solar system?",
    "What language is spoken in Brazil?",
    "What is the boiling point of water?",
    "Can you recommend a good book?",
    "What is the capital of Japan?",
    "How many minutes are in an hour?",
    "What is the opposite of hot?",
    "Which animal is known as the king of the jungle?",
    "What do bees make?",
    "How do I say hello in Spanish?",
    "What is the tallest mountain in the world?",
    "What is the main ingredient of guacamole?",
    "How many continents are there?",
    "What is the freezing point of water in Fahrenheit?",
    "Tell me a fun fact about octopuses.",
    "What is a prime number?",
    "What time zone is London in?",
    "Why is the ocean salty?",
)
# Listening capacity
LAG_LIMIT_MS = 200.0  # a session whose backlog exceeds this has fallen behind real time
LATE_LIMIT_MS = 100.0  # the bench's own sends later than this (p99) make a level inconclusive
RAMP_S = 5.0  # streaming before the CPU window: sessions starting at once cost seconds of extra VAD work
QUIET_S = 3.0  # the CPU window: listening only
PROBE_TURNS = 2  # manual turns of the probe session per level
SETTLE_S = 2.0  # listening only, after the probe turns, before the backlog is measured
PROBE_TIMEOUT_S = 30.0  # a probe turn slower than this counts as failed (the level has not kept up)
NOISE_LOOP_S = 5.0  # each listening session loops its own 5 s of noise
OPEN_CONCURRENCY = 16


# --- the server's per-turn timings ------------------------------------------------------------------------

@dataclass(frozen=True)
class StageTimings:
    """One `turn timings` log line: ms from the end of the user's turn on the server, and real-time factors."""

    asr_done_ms: float | None
    llm_first_token_ms: float | None
    first_output_ms: float | None
    asr_rtf: float | None
    tts_rtf: float | None


_TIMINGS = re.compile(r"turn timings session=(?P<session>\S+) turn=(?P<turn>\d+)(?P<fields>(?: \w+=\S+)*)\s*$")


def _number(text: str | None) -> float | None:
    if text is None or text == "-":
        return None
    try:
        return float(text)
    except ValueError:
        return None


def parse_turn_timings(log_text: str) -> dict[str, list[tuple[int, StageTimings]]]:
    """`turn timings` lines of a server log, by session id: [(turn number, timings)] in log order."""
    found: dict[str, list[tuple[int, StageTimings]]] = {}
    for line in log_text.splitlines():
        match = _TIMINGS.search(line)
        if match is None:
            continue
        fields = dict(item.split("=", 1) for item in match["fields"].split())
        timings = StageTimings(
            asr_done_ms=_number(fields.get("asr_done_ms")),
            llm_first_token_ms=_number(fields.get("llm_first_token_ms")),
            first_output_ms=_number(fields.get("first_output_ms")),
            asr_rtf=_number(fields.get("asr_rtf")),
            tts_rtf=_number(fields.get("tts_rtf")),
        )
        found.setdefault(match["session"], []).append((int(match["turn"]), timings))
    return found


# --- a raw Live client for voice --------------------------------------------------------------------------

def voice_setup(voice: str, *, manual: bool, silence_ms: int | None,
                max_tokens: int = MAX_TOKENS) -> dict[str, Any]:
    """The setup message of every voice-benchmark session.

    manual: activity signals only; else automatic activity detection with silenceDurationMs, or with
    silence_ms None no realtimeInputConfig at all: the server's default turn detection."""
    setup: dict[str, Any] = {
        "model": MODEL,
        "generationConfig": {
            "responseModalities": ["AUDIO"], "temperature": 0, "maxOutputTokens": max_tokens,
            "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": voice}}},
        },
        "inputAudioTranscription": {},
        "outputAudioTranscription": {},
    }
    if manual or silence_ms is not None:
        detection: dict[str, Any] = {"disabled": True} if manual else {"silenceDurationMs": silence_ms}
        setup["realtimeInputConfig"] = {"automaticActivityDetection": detection}
    return {"setup": setup}


def audio_message(pcm: bytes) -> str:
    blob = {"mimeType": f"audio/pcm;rate={RATE_HZ}", "data": base64.b64encode(pcm).decode("ascii")}
    return json.dumps({"realtimeInput": {"audio": blob}})


ACTIVITY_START = json.dumps({"realtimeInput": {"activityStart": {}}})
ACTIVITY_END = json.dumps({"realtimeInput": {"activityEnd": {}}})


def chunked(pcm: bytes, chunk_ms: int) -> list[bytes]:
    size = RATE_HZ * 2 * chunk_ms // 1000
    return [pcm[i:i + size] for i in range(0, len(pcm), size)]


async def sleep_until(moment: float) -> None:
    delay = moment - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


class VoiceSession:
    def __init__(self, ws: ClientConnection, session_id: str, timeout_s: float) -> None:
        self.ws = ws
        self.session_id = session_id
        self.timeout_s = timeout_s

    @classmethod
    async def open(cls, url: str, setup: dict[str, Any], *, timeout_s: float) -> VoiceSession:
        try:
            # proxy=None: only ever talk to the local server, whatever HTTPS_PROXY says.
            ws = await connect(url, proxy=None, open_timeout=timeout_s, close_timeout=timeout_s)
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise BenchError(f"cannot connect to {url}: {exc}") from exc
        session = cls(ws, "", timeout_s)
        try:
            await ws.send(json.dumps(setup))
            _, first = await session.receive(time.perf_counter() + timeout_s)
        except BaseException:
            await ws.close()
            raise
        complete = first.get("setupComplete")
        if not isinstance(complete, dict):
            await ws.close()
            raise BenchError(f"expected setupComplete first, got {sorted(first)}")
        session.session_id = str(complete.get("sessionId") or "")
        return session

    async def receive(self, deadline: float) -> tuple[float, dict[str, Any]]:
        """The next server message and the moment it arrived."""
        return await receive_json(self.ws, deadline=deadline, timeout_s=self.timeout_s)

    async def close(self) -> None:
        await self.ws.close()


@dataclass
class TurnWatch:
    """What the client saw of one turn."""

    first_audio_at: float | None = None
    generation_complete_at: float | None = None
    audio_bytes: int = 0
    heard: list[str] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    said_at_bytes: list[int] = field(default_factory=list)  # audio bytes received before each output transcript

    @property
    def first_clause_audio_s(self) -> float:
        """Audio of the first spoken clause: the server sends each clause's transcript, then its audio."""
        end = self.said_at_bytes[1] if len(self.said_at_bytes) > 1 else self.audio_bytes
        start = self.said_at_bytes[0] if self.said_at_bytes else 0
        return (end - start) / 2 / 24000

    def see(self, now: float, message: dict[str, Any]) -> bool:
        """Note one server message; True once the turn's generation is complete (or the turn ended)."""
        content = message.get("serverContent")
        if not isinstance(content, dict):
            return False
        for part in (content.get("modelTurn") or {}).get("parts") or []:
            inline = part.get("inlineData") if isinstance(part, dict) else None
            if isinstance(inline, dict) and inline.get("data"):
                if self.first_audio_at is None:
                    self.first_audio_at = now
                self.audio_bytes += len(base64.b64decode(inline["data"]))
        for key, texts in (("inputTranscription", self.heard), ("outputTranscription", self.said)):
            transcription = content.get(key)
            if isinstance(transcription, dict) and transcription.get("text"):
                texts.append(str(transcription["text"]))
                if key == "outputTranscription":
                    self.said_at_bytes.append(self.audio_bytes)
        if content.get("generationComplete"):
            self.generation_complete_at = now
            return True
        return bool(content.get("turnComplete"))


async def watch_turn(session: VoiceSession, watch: TurnWatch) -> None:
    deadline = time.perf_counter() + session.timeout_s
    while True:
        now, message = await session.receive(deadline)
        if watch.see(now, message):
            return


# --- latency runs -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VoiceTurn:
    question: str
    session_id: str
    speech_s: float  # the spoken words (espeak output without its trailing silence)
    first_audio_ms: float  # from activityEnd (manual) / from the last speech sample sent (default, silence)
    generation_ms: float  # same origin → generationComplete
    response_audio_s: float  # audio received up to generationComplete
    heard: str  # inputTranscription
    said: str  # outputTranscription
    first_clause: str  # the first piece of the answer that was synthesised (its outputTranscription)
    first_clause_audio_s: float
    stages: StageTimings | None  # the server's timings of this turn (None if no log line matched)

    @property
    def first_clause_tts_ms(self) -> float | None:
        """Estimated synthesis time of the first clause: its audio × the turn's TTS real-time factor."""
        if self.stages is None or self.stages.tts_rtf is None:
            return None
        return self.first_clause_audio_s * self.stages.tts_rtf * 1000


@dataclass(frozen=True)
class VoiceRun:
    mode: str  # one of RUNS: "manual" | "default" | "silence"
    voice: str
    base_voice: str
    silence_ms: int | None  # the silence run's silenceDurationMs
    chunk_ms: int
    first_audio_ms: Spread
    generation_ms: Spread
    asr_done_ms: Spread | None
    llm_first_token_ms: Spread | None
    first_output_ms: Spread | None  # the first TTS chunk was queued for the client
    outside_server_turn_ms: Spread | None  # first_audio_ms − first_output_ms: end-of-turn detection + transport
    first_clause_wait_ms: Spread | None  # first LLM token → first clause complete (first output − est. TTS)
    first_clause_tts_ms: Spread | None  # estimated synthesis time of the first clause
    first_clause_words_mean: float
    asr_rtf_mean: float | None
    tts_rtf_mean: float | None
    speech_s_mean: float
    exact_transcripts: int  # turns whose input transcription has exactly the question's words
    word_error_rate: float  # all the run's transcripts against the questions spoken (word errors / words)
    # default run: turns that ended at a pause the end-of-turn model judged finished; the others waited out its
    # longest silence (INCOMPLETE_SILENCE_MS). None for the other runs, or without the server's timings.
    ended_at_pause: int | None
    turns: list[VoiceTurn]


async def _turn(server: RunningServer, question: str, *, voice: str, manual: bool, silence_ms: int | None,
                chunk_ms: int, timeout_s: float) -> VoiceTurn:
    """One measured turn on a new session (silence_ms None: the server's default turn detection)."""
    session = await VoiceSession.open(server.live_url, voice_setup(voice, manual=manual, silence_ms=silence_ms),
                                      timeout_s=timeout_s)
    try:
        return await turn_on(session, question, manual=manual, silence_ms=silence_ms, chunk_ms=chunk_ms)
    finally:
        await session.close()


async def turn_on(session: VoiceSession, question: str, *, manual: bool, silence_ms: int | None,
                  chunk_ms: int) -> VoiceTurn:
    """One measured turn on an open session (made with `voice_setup` of the same `manual` and `silence_ms`)."""
    speech = speech_pcm(question)
    start_s, end_s = speech_bounds(speech)
    watch = TurnWatch()
    watcher = asyncio.create_task(watch_turn(session, watch))
    try:
        if manual:
            chunks = chunked(speech, chunk_ms)
            last_speech_chunk = len(chunks) - 1
        else:
            wait_ms = INCOMPLETE_SILENCE_MS if silence_ms is None else silence_ms  # the longest the server waits
            noise = room_noise(LEAD_S + len(speech) / 2 / RATE_HZ + wait_ms / 1000 + TAIL_S, dbfs=NOISE_DBFS,
                               seed=len(question))
            lead = b"\0\0" * round(LEAD_S * RATE_HZ)
            chunks = chunked(_mix(lead + speech + b"\0" * (len(noise) - len(lead) - len(speech)), noise), chunk_ms)
            last_sample = round((LEAD_S + end_s) * RATE_HZ) - 1
            last_speech_chunk = last_sample * 2 // (RATE_HZ * 2 * chunk_ms // 1000)
        try:
            reference = await _send_paced(session, chunks, chunk_ms, manual, last_speech_chunk, watcher)
        except ConnectionClosed:
            await watcher  # raises BenchError with the server's close code and reason
            raise
        await watcher
        if watch.first_audio_at is None or watch.generation_complete_at is None:
            raise BenchError(f"the turn for {question!r} ended without audio (heard {''.join(watch.heard)!r})")
        if watch.first_audio_at < reference:
            raise BenchError(f"the answer to {question!r} began before the question ended (the VAD cut it short?)")
    finally:
        if not watcher.done():
            watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    return VoiceTurn(
        question=question, session_id=session.session_id, speech_s=end_s - start_s,
        first_audio_ms=(watch.first_audio_at - reference) * 1000,
        generation_ms=(watch.generation_complete_at - reference) * 1000,
        response_audio_s=watch.audio_bytes / 2 / 24000,
        heard="".join(watch.heard).strip(), said="".join(watch.said).strip(),
        first_clause=watch.said[0].strip() if watch.said else "", first_clause_audio_s=watch.first_clause_audio_s,
        stages=None,
    )


def _mix(a: bytes, b: bytes) -> bytes:
    x = np.frombuffer(a, dtype="<i2").astype(np.int32) + np.frombuffer(b, dtype="<i2").astype(np.int32)
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()


async def _send_paced(session: VoiceSession, chunks: list[bytes], chunk_ms: int, manual: bool,
                      last_speech_chunk: int, watcher: asyncio.Task[None]) -> float:
    """Send the chunks in real time; return the moment of activityEnd (manual) or of the last speech chunk.

    Automatic mode keeps sending (noise) until the answer is generated or the audio runs out.
    """
    ws = session.ws
    chunk_s = chunk_ms / 1000
    reference = 0.0
    started = time.perf_counter()
    if manual:
        await ws.send(ACTIVITY_START)
    for i, chunk in enumerate(chunks):
        await sleep_until(started + (i + 1) * chunk_s)  # a chunk leaves once it has been recorded
        if watcher.done():
            break
        if not manual and i == last_speech_chunk:
            reference = time.perf_counter()
        await ws.send(audio_message(chunk))
    if manual:
        reference = time.perf_counter()
        await ws.send(ACTIVITY_END)
    if not reference:
        await watcher  # raises BenchError if the session failed
        raise BenchError("the answer was complete before the question ended (the VAD cut it short?)")
    return reference


def _spread_of(values: Sequence[float | None]) -> Spread | None:
    present = [v for v in values if v is not None]
    return spread(present) if present else None


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def summarize_run(mode: str, voice: str, base_voice: str, silence_ms: int | None, chunk_ms: int,
                  turns: list[VoiceTurn]) -> VoiceRun:
    stages = [t.stages for t in turns]
    outside = [t.first_audio_ms - s.first_output_ms for t, s in zip(turns, stages, strict=True)
               if s is not None and s.first_output_ms is not None]
    # Outside the server's turn lies the end-of-turn decision: a turn the end-of-turn model let go at a pause
    # started ~0.2-0.5 s after the speech; one it held waited INCOMPLETE_SILENCE_MS of silence first.
    at_pause = sum(o < INCOMPLETE_SILENCE_MS for o in outside) if mode == "default" and outside else None
    return VoiceRun(
        mode=mode, voice=voice, base_voice=base_voice, silence_ms=silence_ms, chunk_ms=chunk_ms,
        first_audio_ms=spread([t.first_audio_ms for t in turns]),
        generation_ms=spread([t.generation_ms for t in turns]),
        asr_done_ms=_spread_of([s.asr_done_ms if s else None for s in stages]),
        llm_first_token_ms=_spread_of([s.llm_first_token_ms if s else None for s in stages]),
        first_output_ms=_spread_of([s.first_output_ms if s else None for s in stages]),
        outside_server_turn_ms=spread(outside) if outside else None,
        first_clause_wait_ms=_spread_of([
            s.first_output_ms - s.llm_first_token_ms - tts
            if s and s.first_output_ms is not None and s.llm_first_token_ms is not None
            and (tts := t.first_clause_tts_ms) is not None else None
            for t, s in zip(turns, stages, strict=True)]),
        first_clause_tts_ms=_spread_of([t.first_clause_tts_ms for t in turns]),
        first_clause_words_mean=sum(len(t.first_clause.split()) for t in turns) / len(turns),
        asr_rtf_mean=_mean([s.asr_rtf if s else None for s in stages]),
        tts_rtf_mean=_mean([s.tts_rtf if s else None for s in stages]),
        speech_s_mean=sum(t.speech_s for t in turns) / len(turns),
        exact_transcripts=sum(words(t.heard) == words(t.question) for t in turns),
        word_error_rate=word_error_rate((t.question, t.heard) for t in turns),
        ended_at_pause=at_pause,
        turns=turns,
    )


def _attach_stages(turns: list[VoiceTurn], log_text: str) -> list[VoiceTurn]:
    timings = parse_turn_timings(log_text)
    out = []
    for turn in turns:
        logged = timings.get(turn.session_id) or []
        out.append(dataclasses.replace(turn, stages=logged[0][1] if logged else None))
    return out


async def latency_run(server: RunningServer, *, mode: str, voice: str, turns: int, silence_ms: int,
                      chunk_ms: int, timeout_s: float) -> VoiceRun:
    """mode: one of RUNS; silence_ms is used by the "silence" run only."""
    from localive.engines.tts.voices import voice_spec

    if mode not in RUNS:
        raise ValueError(f"unknown voice run {mode!r}")
    manual = mode == "manual"
    silence = silence_ms if mode == "silence" else None
    await _turn(server, WARM_UP, voice=voice, manual=manual, silence_ms=silence, chunk_ms=chunk_ms,
                timeout_s=timeout_s)  # unmeasured: first-use costs stay out of the statistics
    results: list[VoiceTurn] = []
    for i in range(turns):
        question = QUESTIONS[i % len(QUESTIONS)]
        turn = await _turn(server, question, voice=voice, manual=manual, silence_ms=silence,
                           chunk_ms=chunk_ms, timeout_s=timeout_s)
        results.append(turn)
        print(f"  {mode} {voice} {i + 1}/{turns}: first audio {turn.first_audio_ms:.0f} ms "
              f"(heard {turn.heard!r})", file=sys.stderr, flush=True)
        await asyncio.sleep(0.2)  # the closed session's turn winds down
    await asyncio.sleep(0.2)
    results = _attach_stages(results, server.log_path.read_text(errors="replace"))
    return summarize_run(mode, voice, str(voice_spec(voice).base), silence, chunk_ms, results)


# --- listening capacity -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ListenLevel:
    sessions: int
    backlog_ms: Spread | None  # per listening session, at the end of the window (None with 0 sessions)
    send_late_p99_ms: float  # the bench's own pacing: how late its audio sends were (all sessions)
    server_cpu_pct: float  # server process while only listening, % of one core
    bench_cpu_pct: float  # this process (the clients) while only listening, % of one core
    server_rss_mib: float  # with the listening sessions open
    streamed_s: float  # audio each listening session sent
    probe_first_audio_ms: list[float | None]  # the probe session's manual turns: activityEnd → first audio
    probe_llm_first_token_ms: list[float | None]  # the same turns, server: end of turn → first LLM token
    unexpected_messages: int  # server messages to listening sessions (0: no turn was started by noise)
    keeps_up: bool
    client_limited: bool  # the bench could not send on time: the level says nothing about the server


@dataclass(frozen=True)
class ListenResult:
    chunk_ms: int
    lag_limit_ms: float
    levels: list[ListenLevel]
    max_sessions_keeping_up: int | None  # the largest level that kept up (None: not even the first)
    fell_behind_at: int | None  # the first level that did not (None: all kept up)


class _Listener:
    """A listening session: streams noise in real time, counts server messages, measures its backlog at the end."""

    def __init__(self, session: VoiceSession, noise: bytes, chunk_ms: int, offset_s: float) -> None:
        self.session = session
        self.chunks = chunked(noise, chunk_ms)
        self.chunk_s = chunk_ms / 1000
        self.offset_s = offset_s
        self.late_s: list[float] = []
        self.sent = 0
        self.messages = 0
        self.closed_at: float | None = None
        self.close_code: int | None = None
        self.probe_sent_at: float | None = None

    async def read(self) -> None:
        try:
            while True:
                await self.session.ws.recv()
                self.messages += 1
        except ConnectionClosed as exc:
            self.closed_at = time.perf_counter()
            self.close_code = exc.rcvd.code if exc.rcvd else None

    async def stream(self, started: float, stop: asyncio.Event) -> None:
        ws = self.session.ws
        base = started + self.offset_s
        i = 0
        while True:  # the noise repeats until the window ends
            due = base + (i + 1) * self.chunk_s
            await sleep_until(due)
            if stop.is_set() or self.closed_at is not None:
                break
            self.late_s.append(time.perf_counter() - due)
            await ws.send(audio_message(self.chunks[i % len(self.chunks)]))
            self.sent += 1
            i += 1
        if self.closed_at is None:
            self.probe_sent_at = time.perf_counter()
            await ws.send(json.dumps(voice_setup("Puck", manual=False, silence_ms=500)))  # rejected at once

    def backlog_ms(self) -> float:
        if self.probe_sent_at is None or self.closed_at is None or self.closed_at < self.probe_sent_at:
            raise BenchError(f"a listening session was closed before its backlog probe (code {self.close_code})")
        return (self.closed_at - self.probe_sent_at) * 1000


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def listen_level(server: RunningServer, sessions: int, *, voice: str, silence_ms: int, chunk_ms: int,
                       timeout_s: float, probe_offset: int) -> ListenLevel:
    proc = psutil.Process(server.pid)
    semaphore = asyncio.Semaphore(OPEN_CONCURRENCY)
    setup = voice_setup(voice, manual=False, silence_ms=silence_ms)

    async def open_one() -> VoiceSession:
        async with semaphore:
            return await VoiceSession.open(server.live_url, setup, timeout_s=timeout_s)

    opened = await asyncio.gather(*(open_one() for _ in range(sessions)), return_exceptions=True)
    live = [s for s in opened if isinstance(s, VoiceSession)]
    failed = [s for s in opened if not isinstance(s, VoiceSession)]
    if failed:
        await asyncio.gather(*(s.close() for s in live), return_exceptions=True)
        raise BenchError(f"{len(failed)} of {sessions} listening sessions failed to open: {failed[0]}")
    rng = random.Random(sessions)
    listeners = [_Listener(s, room_noise(NOISE_LOOP_S, dbfs=NOISE_DBFS, seed=i), chunk_ms,
                           rng.uniform(0, chunk_ms / 1000)) for i, s in enumerate(live)]
    stop = asyncio.Event()
    readers = [asyncio.create_task(listener.read()) for listener in listeners]
    started = time.perf_counter()
    streams = [asyncio.create_task(listener.stream(started, stop)) for listener in listeners]
    try:
        await sleep_until(started + RAMP_S)
        me = psutil.Process()
        bench_before, cpu_before, quiet_started = _cpu_s(me), _cpu_s(proc), time.perf_counter()
        await sleep_until(quiet_started + QUIET_S)
        quiet_s = time.perf_counter() - quiet_started
        server_cpu = (_cpu_s(proc) - cpu_before) / quiet_s * 100
        bench_cpu = (_cpu_s(me) - bench_before) / quiet_s * 100
        server_rss = proc.memory_info().rss / 2**20
        probes: list[VoiceTurn | None] = []
        for i in range(PROBE_TURNS):
            question = QUESTIONS[(probe_offset + i) % len(QUESTIONS)]
            try:
                turn = await _turn(server, question, voice=voice, manual=True, silence_ms=silence_ms,
                                   chunk_ms=chunk_ms, timeout_s=min(timeout_s, PROBE_TIMEOUT_S))
            except BenchError as exc:
                print(f"  probe turn failed: {exc}", file=sys.stderr, flush=True)
                probes.append(None)
                break
            probes.append(turn)
        await asyncio.sleep(SETTLE_S)
        streamed_s = time.perf_counter() - started
        stop.set()
        await asyncio.gather(*streams)
        async with asyncio.timeout(timeout_s):
            await asyncio.gather(*readers)
    except TimeoutError:
        raise BenchError(f"listening sessions did not get their backlog probe answered in {timeout_s:.0f} s") from None
    finally:
        stop.set()
        for task in (*streams, *readers):
            task.cancel()
        await asyncio.gather(*streams, *readers, return_exceptions=True)
        await asyncio.gather(*(s.close() for s in live), return_exceptions=True)
    await asyncio.sleep(0.2)
    probes = _attach_stages([p for p in probes if p is not None], server.log_path.read_text(errors="replace")) + \
        [None] * sum(p is None for p in probes)
    late = [x for listener in listeners for x in listener.late_s]
    late_p99 = percentile(late, 99) * 1000 if late else 0.0
    backlog = spread([listener.backlog_ms() for listener in listeners]) if listeners else None
    client_limited = late_p99 > LATE_LIMIT_MS
    return ListenLevel(
        sessions=sessions, backlog_ms=backlog, send_late_p99_ms=late_p99, server_cpu_pct=server_cpu,
        bench_cpu_pct=bench_cpu, server_rss_mib=server_rss, streamed_s=streamed_s,
        probe_first_audio_ms=[p.first_audio_ms if p else None for p in probes],
        probe_llm_first_token_ms=[p.stages.llm_first_token_ms if p and p.stages else None for p in probes],
        unexpected_messages=sum(listener.messages for listener in listeners),
        keeps_up=(backlog is None or backlog.max <= LAG_LIMIT_MS) and not client_limited and None not in probes,
        client_limited=client_limited,
    )


async def listening_capacity(server: RunningServer, levels: Sequence[int], *, voice: str, silence_ms: int,
                             chunk_ms: int, timeout_s: float) -> ListenResult:
    results: list[ListenLevel] = []
    best: int | None = None
    fell: int | None = None
    for n, sessions in enumerate(levels):
        level = await listen_level(server, sessions, voice=voice, silence_ms=silence_ms, chunk_ms=chunk_ms,
                                   timeout_s=timeout_s, probe_offset=n * PROBE_TURNS)
        results.append(level)
        backlog = f"{level.backlog_ms.max:.0f} ms" if level.backlog_ms else "-"
        probes = ", ".join("failed" if p is None else f"{p:.0f}" for p in level.probe_first_audio_ms)
        print(f"  {sessions} listening: server CPU {level.server_cpu_pct:.0f}% of a core, max backlog {backlog}, "
              f"probe first audio {probes} ms",
              file=sys.stderr, flush=True)
        if not level.keeps_up:
            fell = sessions
            break
        best = sessions
    return ListenResult(chunk_ms=chunk_ms, lag_limit_ms=LAG_LIMIT_MS, levels=results,
                        max_sessions_keeping_up=best, fell_behind_at=fell)


# --- the whole benchmark ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class VoiceResult:
    model: str
    max_tokens: int
    chunk_ms: int
    questions: int
    runs: list[VoiceRun]
    listening: ListenResult | None
    background_cpu_pct: float  # other processes' CPU during the voice benchmark, % of the machine
    steal_pct: float
    turn_taking: str = ""  # the server's default turn-taking, as its log says ("" when it does not)


_TURN_TAKING = re.compile(r"localive: turn-taking: (?P<how>.+)$", re.MULTILINE)


def server_turn_taking(log_text: str) -> str:
    """What the server says at start about its default turn-taking (`localive: turn-taking: …`), or ""."""
    found = _TURN_TAKING.search(log_text)
    return found["how"].strip() if found else ""


_RUN_TITLES = {"manual": "manual-activity turns", "default": "default-turn-detection turns",
               "silence": "automatic-VAD turns (silenceDurationMs {silence_ms})"}


async def measure(server: RunningServer, *, voices: Sequence[str], auto_voices: Sequence[str], turns: int,
                  silence_ms: int, chunk_ms: int, listen: Sequence[int], timeout_s: float,
                  runs: Sequence[str] = RUNS) -> VoiceResult:
    """The latency runs named in `runs` (in RUNS order; manual for each of `voices`, the others for each of
    `auto_voices`), then the listening levels."""
    meter = BackgroundMeter(psutil.Process(server.pid), psutil.Process())
    results: list[VoiceRun] = []
    for mode in (m for m in RUNS if m in runs and turns):
        for voice in voices if mode == "manual" else auto_voices:
            print(f"{_RUN_TITLES[mode].format(silence_ms=silence_ms)}, voice {voice}…", file=sys.stderr, flush=True)
            results.append(await latency_run(server, mode=mode, voice=voice, turns=turns, silence_ms=silence_ms,
                                             chunk_ms=chunk_ms, timeout_s=timeout_s))
    listening = None
    if listen:
        print(f"listening capacity ({', '.join(map(str, listen))} sessions)…", file=sys.stderr, flush=True)
        listening = await listening_capacity(server, listen, voice=voices[0], silence_ms=silence_ms,
                                             chunk_ms=chunk_ms, timeout_s=timeout_s)
    background, steal = meter.other_pct()
    return VoiceResult(model=MODEL.removeprefix("models/"), max_tokens=MAX_TOKENS, chunk_ms=chunk_ms,
                       questions=min(turns, len(QUESTIONS)), runs=results, listening=listening,
                       background_cpu_pct=background, steal_pct=steal,
                       turn_taking=server_turn_taking(server.log_path.read_text(errors="replace")))


def run_voice(workdir: Path, *, voices: Sequence[str], auto_voices: Sequence[str], turns: int, silence_ms: int,
              chunk_ms: int, listen: Sequence[int], timeout_s: float, runs: Sequence[str] = RUNS,
              server_args: Sequence[str] = ()) -> VoiceResult:
    """Start a server on the default models and speech engines (and `server_args`), and measure it."""
    for question in (WARM_UP, *QUESTIONS[:turns]):
        speech_pcm(question)  # fails early, in one line, without espeak-ng/sox; caches the speech
    print("starting a server on the default models and speech engines (loading them)…", file=sys.stderr,
          flush=True)
    server = start_server(workdir, "--admission", "off",  # the capacity, not the admission rule
                          "--max-sessions", str(max(100, max(listen, default=0) + 10)), *server_args)
    try:
        return asyncio.run(measure(server, voices=voices, auto_voices=auto_voices, turns=turns,
                                   silence_ms=silence_ms, chunk_ms=chunk_ms, listen=listen, timeout_s=timeout_s,
                                   runs=runs))
    except BenchError as exc:
        raise BenchError(f"{exc}\nserver log (last lines):\n{server.log_tail()}") from exc
    finally:
        server.stop()
