"""Backchannels in every voice: does a short utterance during the model's answer let the answer go on?

    python -m benchmarks.backchannels [--voices Erinome,Puck,...] [--out FILE]

When semantic turn-taking is on, speech that starts while the model talks and ends within BARGE_IN_AFTER_S is
judged by its words (session/listening.py `_judge_short_utterance`): the server transcribes it with the listener's
words as Whisper's previous text (`expect=LISTENER_WORDS`) and lets the model go on when
`lets_the_model_go_on(text)`. This benchmark runs exactly that decision on each backchannel (which should let the
answer go on) and each short request (which should interrupt it), spoken in each of the embedded voices, and
the same decision without the listener prior for comparison. The voices cannot hum (see localive/testing/hum.py), so a
closed-mouth "mm-hm" made by formant synthesis is measured too, at HUM_PITCHES_HZ, flat and rising.

It isolates the one step where voices differ — what Whisper hears in half a second of speech. The end-to-end
measurement through a real server and the SDK (one voice, silence-only VAD beside semantic turn-taking) is
`python -m benchmarks.turn_taking`. Results: docs/turn-taking-benchmark.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.turn_taking import BACKCHANNELS
from localive.audio.pcm import Pcm16
from localive.audio.resample import resample
from localive.bench.machine import collect as machine
from localive.session.backchannel import LISTENER_WORDS, lets_the_model_go_on
from localive.testing.hum import closed_mouth_hum

# Short requests said while the model talks: each should stop it (and be answered).
REQUESTS: tuple[str, ...] = (
    "Wait.", "Stop.", "Hold on.", "Hang on.", "No.", "No, no.", "Not now.", "Enough.", "Go back.", "Louder.",
    "What?", "Why?", "Sorry?", "Pardon?", "Huh?",
)
RATE_HZ = 16000
HUM_PITCHES_HZ = (110.0, 150.0, 200.0, 240.0)
HUM_RISES = (1.0, 1.25)
HUM_VOICE = "(formant hum)"


@dataclass(frozen=True)
class Trial:
    voice: str
    text: str
    backchannel: bool  # True: should let the answer go on; False: should interrupt it
    heard: str  # with the listener prior (what the server does)
    heard_plain: str  # without it

    @property
    def right(self) -> bool:
        return lets_the_model_go_on(self.heard) == self.backchannel

    @property
    def right_plain(self) -> bool:
        return lets_the_model_go_on(self.heard_plain) == self.backchannel


async def _trials(voices: Sequence[str]) -> list[Trial]:
    from localive.engines.asr.whisper import WhisperASR
    from localive.engines.tts.embedded import EmbeddedTTS
    from localive.models.weights import WHISPER_BASE, ensure_model_dir

    tts = EmbeddedTTS()
    tts.load()
    asr = WhisperASR(ensure_model_dir(WHISPER_BASE))
    asr.load()
    trials: list[Trial] = []
    try:
        for voice in voices:
            for text, backchannel in [*((t, True) for t in BACKCHANNELS), *((t, False) for t in REQUESTS)]:
                audio: Pcm16 = resample(await tts.synthesize(text, voice), RATE_HZ)
                heard = (await asr.transcribe(audio, "en-US", expect=LISTENER_WORDS)).text
                plain = (await asr.transcribe(audio, "en-US")).text
                trials.append(Trial(voice, text, backchannel, heard, plain))
            done = [t for t in trials if t.voice == voice]
            print(f"  {voice}: {sum(t.right for t in done)}/{len(done)} right", file=sys.stderr, flush=True)
        for f0 in HUM_PITCHES_HZ:
            for rise in HUM_RISES:
                hum = Pcm16(closed_mouth_hum(f0, rise=rise).tobytes(), RATE_HZ)
                heard = (await asr.transcribe(hum, "en-US", expect=LISTENER_WORDS)).text
                plain = (await asr.transcribe(hum, "en-US")).text
                trials.append(Trial(HUM_VOICE, f"Mm-hm ({f0:.0f} Hz, {'rising' if rise > 1 else 'flat'})", True,
                                    heard, plain))
    finally:
        asr.close()
        tts.close()
    return trials


def _count(trials: Sequence[Trial], backchannel: bool, plain: bool = False) -> str:
    chosen = [t for t in trials if t.backchannel == backchannel]
    right = sum(t.right_plain if plain else t.right for t in chosen)
    return f"{right}/{len(chosen)}"


def report(trials: Sequence[Trial], voices: Sequence[str], wall_s: float) -> str:
    hums = [t for t in trials if t.voice == HUM_VOICE]
    trials = [t for t in trials if t.voice != HUM_VOICE]
    lines = [
        "## Backchannels in every voice (`python -m benchmarks.backchannels`)",
        "",
        machine(("faster-whisper", "ctranslate2")).one_line(),
        f"{len(voices)} voices, {len(BACKCHANNELS)} backchannels and {len(REQUESTS)} short requests each; "
        f"{wall_s:.0f} s. Right = a backchannel lets the answer go on, a request interrupts it.",
        "",
        "| | with the listener prior (the server) | without it |",
        "|---|---|---|",
        f"| backchannels let the answer go on | {_count(trials, True)} | {_count(trials, True, plain=True)} |",
        f"| requests interrupt | {_count(trials, False)} | {_count(trials, False, plain=True)} |",
        "",
        "| utterance | right (of voices) | heard instead, where wrong |",
        "|---|---|---|",
    ]
    for text in (*BACKCHANNELS, *REQUESTS):
        rows = [t for t in trials if t.text == text]
        wrong = ", ".join(f"{t.voice}: {t.heard!r}" for t in rows if not t.right)
        lines.append(f"| {text} | {sum(t.right for t in rows)}/{len(rows)} | {wrong} |")
    if hums:
        lines += ["", "Closed-mouth hums (formant synthesis, localive/testing/hum.py):", "",
                  "| hum | heard, with the prior | lets the answer go on | heard without it | lets it go on |",
                  "|---|---|---|---|---|"]
        lines += [f"| {t.text} | {t.heard!r} | {'yes' if t.right else 'no'} | {t.heard_plain!r} | "
                  f"{'yes' if t.right_plain else 'no'} |" for t in hums]
        lines.append(f"| all | | {_count(hums, True)} | | {_count(hums, True, plain=True)} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    from localive.engines.tts.voices import resolve_voice, voice_names

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voices", default=None, help="comma-separated voice names (default: all embedded voices)")
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown report to this file")
    args = parser.parse_args(argv)
    voices = ([resolve_voice(v) for v in args.voices.split(",") if v.strip()] if args.voices else voice_names())
    started = time.perf_counter()
    trials = asyncio.run(_trials(voices))
    text = report(trials, voices, time.perf_counter() - started)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
