"""The model's spoken answer: LLM text → pieces → speech → audio chunks, and what the user has heard.

The LLM and the synthesiser run concurrently (each on its own worker thread): the first piece — the first few
words, up to a natural phrase break (clauses.py) — goes to the synthesiser the moment it is cut, and is spoken
while the LLM writes the next; later pieces are sentences. `Playback` assumes the client plays audio in real time
from the moment the first chunk is sent, which is what decides when the turn is over and, on barge-in, which words
were heard. It reads the session's `Clock`, so tests check both in virtual time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from localive.audio.pcm import Pcm16
from localive.clock import SYSTEM_CLOCK, Clock
from localive.engines.speech_remote import TTS_STAGE
from localive.engines.tts.base import NEUTRAL, OUTPUT_SAMPLE_RATE_HZ, TTS, Delivery, is_english
from localive.protocol import server_messages as out
from localive.session.clauses import ClauseSplitter
from localive.session.outbox import Outbox
from localive.session.timings import TurnTimings
from localive.session.watchdog import Watchdog

CHUNK_BYTES = 9600  # 200 ms of 24 kHz 16-bit mono: steady chunks, far below the 1 MiB message limit
CLAUSE_QUEUE = 8


@dataclass
class Playback:
    """The audio sent in one turn, and how much of it the client has played: clock time since the first clause was
    sent, in real-time playout."""

    clock: Clock = SYSTEM_CLOCK
    started_at: float | None = None
    clauses: list[tuple[str, float, float]] = field(default_factory=list)  # (text, start_s, duration_s)
    total_s: float = 0.0
    transcribed: int = 0  # outputTranscription pieces queued for the client
    transcription_finished: bool = False  # their closing `finished` was queued

    def add(self, text: str, duration_s: float) -> None:
        if self.started_at is None:
            self.started_at = self.clock.monotonic()
        self.clauses.append((text, self.total_s, duration_s))
        self.total_s += duration_s

    def remaining_s(self) -> float:
        if self.started_at is None:
            return 0.0
        return max(0.0, self.started_at + self.total_s - self.clock.monotonic())

    async def played_out(self) -> None:
        """Wait, on the clock, until the client has played everything sent so far."""
        await self.clock.sleep(self.remaining_s())

    def heard_text(self) -> str:
        """The words played so far: whole clauses, then the share of the current clause's words."""
        if self.started_at is None:
            return ""
        elapsed = self.clock.monotonic() - self.started_at
        heard = []
        for text, start, duration in self.clauses:
            if elapsed >= start + duration:
                heard.append(text)
            elif elapsed > start:
                words = text.split()
                share = (elapsed - start) / duration if duration else 1.0
                heard.append(" ".join(words[: int(len(words) * share)]))
        return " ".join(h for h in heard if h)

    @property
    def text(self) -> str:
        return " ".join(t for t, _, _ in self.clauses)


def splitter_for(language: str | None) -> ClauseSplitter:
    """How an answer in `language` is cut into pieces to speak (the same for the turn and its work ahead)."""
    return ClauseSplitter(english=is_english(language))


def audio_chunks(audio: Pcm16, chunk_bytes: int = CHUNK_BYTES) -> list[bytes]:
    return [audio.data[i:i + chunk_bytes] for i in range(0, len(audio.data), chunk_bytes)]


async def speak(stream: AsyncIterator[str], *, tts: TTS, voice: str, language: str | None, outbox: Outbox,
                turn: int, playback: Playback, transcribe: bool, watchdog: Watchdog,
                timings: TurnTimings | None = None, delivery: Delivery = NEUTRAL) -> None:
    """Speak the LLM's streamed text. Cancelling stops both the LLM and the synthesis at once. Synthesis runs as
    the watchdog's speech synthesis stage (named if it fails or hangs)."""
    clauses: asyncio.Queue[str | None] = asyncio.Queue(maxsize=CLAUSE_QUEUE)  # bounded: backpressure to the LLM

    async def write() -> None:
        splitter = splitter_for(language)
        async for piece in stream:
            for clause in splitter.push(piece):
                await clauses.put(clause)
        for clause in splitter.flush():
            await clauses.put(clause)
        await clauses.put(None)

    async def say() -> None:
        while (clause := await clauses.get()) is not None:
            started = playback.clock.monotonic()  # the session's clock: a fake's simulated compute counts too
            with watchdog.stage(TTS_STAGE):
                audio = await tts.synthesize(clause, voice, language, delivery)
            if timings is not None:
                timings.tts_compute_s += playback.clock.monotonic() - started
                timings.tts_audio_s += audio.duration_s
                timings.mark_output()
            if audio.sample_rate_hz != OUTPUT_SAMPLE_RATE_HZ:
                raise RuntimeError(f"TTS returned {audio.sample_rate_hz} Hz audio")
            if transcribe:
                await outbox.put(out.output_transcription(clause + " "), turn=turn)
                playback.transcribed += 1
            playback.add(clause, audio.duration_s)
            for chunk in audio_chunks(audio):
                await outbox.put(out.model_audio(chunk, OUTPUT_SAMPLE_RATE_HZ), turn=turn)

    async with asyncio.TaskGroup() as group:
        group.create_task(write())
        group.create_task(say())


async def finish_transcription(outbox: Outbox, playback: Playback, turn: int | None = None,
                               dropped: Sequence[out.ServerMessage] = ()) -> None:
    """End the turn's output transcription with `finished: true`, once, if the client was sent some of it (at the
    end of the answer, or when it is interrupted). `dropped`: the interrupted turn's messages that never left the
    outbox (its transcription pieces were not sent, nor perhaps its `finished`)."""
    pieces = [m["serverContent"]["outputTranscription"] for m in dropped
              if "outputTranscription" in m.get("serverContent", {})]
    if any(p.get("finished") for p in pieces):
        playback.transcription_finished = False
    sent = playback.transcribed - sum(1 for p in pieces if "text" in p)
    if sent > 0 and not playback.transcription_finished:
        await outbox.put(out.output_transcription_finished(), turn=turn)
        playback.transcription_finished = True
