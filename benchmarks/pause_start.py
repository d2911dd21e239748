"""What working ahead from the pause's first moments costs in accuracy: transcripts and end-of-turn judgements.

The session starts a turn's work when a pause starts (session/activity.py `FORESEE_AFTER_MS`), on the utterance so
far padded with digital silence to the 200 ms of trailing silence the turn's own audio would have, and semantic
turn-taking asks Smart Turn about that padded audio instead of waiting for 200 ms of real silence. This measures,
offline, on the same Silero VAD and activity detector the server runs (no server, no timing):

- **transcripts**: Whisper (the embedded engine, as configured in the server) on the pause-start audio, cut one
  frame (32 ms) or two frames (64 ms) into the pause, against the transcript of the final utterance (200 ms of real
  trailing silence, what a turn without work ahead hears); word error rate and exact transcripts against the text
  that was spoken;
- **judgements**: Smart Turn's probability on the padded pause-start audio against the one at 200 ms of real
  silence, for every pause of these utterances and of the turn-taking set's sentences said with their
  mid-sentence pause (where ending the turn would cut the user off); whether the decision (> 0.5) agrees.

The speech: the 20 questions of `localive bench --voice` (espeak-ng) and the turn-taking benchmark's 32 utterances
(hibari, benchmarks/turn_taking.py; the paused ones whole), each under -60 dBFS room noise with `--seeds` different
noise seeds (Whisper's greedy decoding flips a word or two with any change to the audio, so one seed is not
enough to tell a real difference from that chaos). Results: docs/latency.md.

    python -m benchmarks.pause_start [--seeds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from benchmarks.turn_taking import labelled_set
from localive.audio.pcm import Pcm16
from localive.bench.accuracy import word_error_rate, words
from localive.bench.speech import RATE_HZ, room_noise, speech_pcm
from localive.bench.voice import LEAD_S, NOISE_DBFS, QUESTIONS
from localive.engines.asr.whisper import WhisperASR
from localive.engines.turn.smart_turn import THRESHOLD, SmartTurn
from localive.engines.vad.silero import SileroBatcher
from localive.models.weights import WHISPER_BASE, ensure_model_dir
from localive.session import activity
from localive.session.activity import (
    ActivityDetector,
    ActivitySettings,
    PauseHeard,
    PauseStarted,
    SpeechEnded,
    SpeechResumed,
)

FRAME = 512  # Silero's frame at 16 kHz
CUTS_MS = (32, 64)


@dataclass
class Results:
    transcripts: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # variant → (spoken, heard)
    judgements: list[tuple[str, float, float]] = field(default_factory=list)  # (text, at 200 ms, at the start)


def _stream(speech: bytes, seed: int) -> np.ndarray:
    """Room noise; the speech LEAD_S in; 3.5 s of noise after it. float32 samples."""
    samples = len(speech) // 2
    noise = np.frombuffer(room_noise(LEAD_S + samples / RATE_HZ + 3.5, dbfs=NOISE_DBFS, seed=seed), dtype="<i2")
    lead = round(LEAD_S * RATE_HZ)
    mixed = noise.astype(np.int32)
    mixed[lead:lead + samples] += np.frombuffer(speech, dtype="<i2")
    return np.clip(mixed, -32768, 32767).astype(np.float32) / 32768


def _events(stream: np.ndarray, probabilities: list[float], cut_ms: int, *,
            semantic: bool) -> Iterable[object]:
    activity.FORESEE_AFTER_MS = cut_ms  # read by the detector when it is made
    detector = ActivityDetector(ActivitySettings(semantic=semantic), FRAME, RATE_HZ, foresee=True)
    for index, probability in enumerate(probabilities):
        yield from detector.push(stream[index * FRAME:(index + 1) * FRAME], probability)


async def measure(seeds: int) -> Results:
    asr = WhisperASR(ensure_model_dir(WHISPER_BASE, progress=False))
    asr.load()
    turn = SmartTurn()
    turn.load()
    vad = SileroBatcher()
    speech_set = labelled_set()
    items = [(text, speech_pcm(text)) for text in QUESTIONS]
    items += [(rec.text, rec.samples.astype("<i2").tobytes()) for rec in speech_set.complete]
    items += [(rec.text, rec.samples.astype("<i2").tobytes()) for _, rec in speech_set.paused]
    judged_only = [(item.label, _with_pause(rec.samples, rec.cut_s, item.pause_s)) for item, rec in speech_set.paused]
    results = Results({**{f"pause start + {ms} ms": [] for ms in CUTS_MS}, "final utterance": []})
    original = activity.FORESEE_AFTER_MS
    try:
        everything = [(text, speech, True) for text, speech in items] + [(t, s, False) for t, s in judged_only]
        for number, (text, speech, transcribed) in enumerate(everything):
            print(f"  {number + 1}/{len(everything)} {text}", file=sys.stderr)
            for seed in range(seeds):
                stream = _stream(speech, seed=1000 * number + seed)
                frames = len(stream) // FRAME
                vad_stream = vad.stream()
                probabilities = await vad_stream.probabilities(stream[:frames * FRAME].reshape(frames, FRAME))
                vad_stream.close()
                for cut_ms in CUTS_MS if transcribed else ():
                    started: PauseStarted | None = None
                    final: SpeechEnded | None = None
                    for event in _events(stream, probabilities, cut_ms, semantic=False):
                        if isinstance(event, PauseStarted):
                            started = event
                        elif isinstance(event, SpeechEnded) and final is None:
                            final = event
                    if started is None or final is None:
                        continue
                    heard = (await asr.transcribe(started.audio)).text
                    results.transcripts[f"pause start + {cut_ms} ms"].append((text, heard))
                    if cut_ms == CUTS_MS[0]:
                        heard = (await asr.transcribe(final.audio)).text
                        results.transcripts["final utterance"].append((text, heard))
                early: Pcm16 | None = None
                for event in _events(stream, probabilities, CUTS_MS[0], semantic=True):
                    if isinstance(event, PauseStarted):
                        early = event.audio
                    elif isinstance(event, SpeechResumed):
                        early = None
                    elif isinstance(event, PauseHeard) and early is not None:
                        late_p = turn.probability(event.audio.to_float32())
                        early_p = turn.probability(early.to_float32())
                        results.judgements.append((text, late_p, early_p))
                        early = None
    finally:
        activity.FORESEE_AFTER_MS = original
        vad.close()
        asr.close()
        turn.close()
    return results


def _with_pause(samples: np.ndarray, cut_s: float | None, pause_s: float) -> bytes:
    """A turn-taking item's sentence with its mid-sentence pause (digital silence; the room noise goes under it)."""
    cut = round((cut_s or 0.0) * RATE_HZ)
    pause = np.zeros(round(pause_s * RATE_HZ), dtype="<i2")
    return np.concatenate([samples[:cut], pause, samples[cut:]]).astype("<i2").tobytes()


def report(results: Results) -> str:
    lines = ["| audio transcribed | utterances | word error rate | exact |", "|---|---:|---:|---:|"]
    for variant, pairs in results.transcripts.items():
        exact = sum(words(spoken) == words(heard) for spoken, heard in pairs)  # as `localive bench --voice`
        lines.append(f"| {variant} | {len(pairs)} | {100 * word_error_rate(pairs):.1f} % | {exact} |")
    agree = sum((late > THRESHOLD) == (early > THRESHOLD) for _, late, early in results.judgements)
    gap = max((abs(late - early) for _, late, early in results.judgements), default=0.0)
    lines += ["", f"Smart Turn at the pause's start ({CUTS_MS[0]} ms, padded) vs at 200 ms of real silence: "
              f"{agree} of {len(results.judgements)} decisions agree; largest difference in probability "
              f"{gap:.3f}."]
    for text, late, early in results.judgements:
        if (late > THRESHOLD) != (early > THRESHOLD):
            lines.append(f"- disagrees: {text!r}: {late:.3f} at 200 ms, {early:.3f} at the start")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pause_start", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="room-noise seeds per utterance (default 3)")
    args = parser.parse_args(argv)
    print(report(asyncio.run(measure(args.seeds))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
