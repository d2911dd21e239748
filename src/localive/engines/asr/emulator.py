"""What `localive serve --voice emulator` hears: a transcript that depends only on how long the user spoke.

No model: the utterance's speech is the 10 ms frames louder than SPEECH_DBFS (the level at which the emulator's
energy VAD hears speech), counted and rounded to a tenth of a second. Rules from the emulator script choose the
words by that length, so a test decides what is "said" by how long it makes a sound::

    [[hear]]
    up_to_s = 1.0                     # an utterance with at most 1.0 s of speech…
    text = "What is the weather?"     # …is heard as this
    [[hear]]
    text = "Tell me a story."         # no up_to_s: any length

Rules are tried in order; the first that fits wins. Without one that fits, the transcript is DEFAULT_TEXT, e.g.
"I spoke for 1.5 seconds." ({seconds} in any text: the length, one decimal). An utterance with no frame that
loud (0.0 s) is heard as nothing (an empty transcript).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from localive.audio.pcm import Pcm16

SPEECH_DBFS = -39.0  # EnergyVAD's floor (-45 dBFS) + 6 dB: where it gives speech probability 0.5
FRAME_S = 0.01
DEFAULT_TEXT = "I spoke for {seconds} seconds."
_RULE_KEYS = {"up_to_s", "text"}


class HearingError(ValueError):
    """The emulator script's [[hear]] rules are not valid."""


@dataclass(frozen=True)
class HearRule:
    text: str
    up_to_s: float | None = None  # None: any length

    def fits(self, seconds: float) -> bool:
        return self.up_to_s is None or seconds <= self.up_to_s


def speech_seconds(audio: Pcm16) -> float:
    """The utterance's speech: its FRAME_S frames louder than SPEECH_DBFS, in seconds rounded to 0.1."""
    import numpy as np

    samples = audio.to_float32()
    frame = max(1, round(audio.sample_rate_hz * FRAME_S))
    count = len(samples) // frame + (1 if len(samples) % frame else 0)
    if count == 0:
        return 0.0
    padded = np.zeros(count * frame, dtype=np.float64)
    padded[: len(samples)] = samples
    rms = np.sqrt(np.mean(np.square(padded.reshape(count, frame)), axis=1))
    loud = int(np.count_nonzero(rms >= 10.0 ** (SPEECH_DBFS / 20.0)))
    return round(loud * frame / audio.sample_rate_hz, 1)


@dataclass(frozen=True)
class EmulatorHearing:
    """The emulator's speech recognition as a pure function of the audio (a ScriptedASR script)."""

    rules: tuple[HearRule, ...] = ()

    def text_for(self, seconds: float) -> str:
        if seconds <= 0.0:
            return ""
        rule = next((r for r in self.rules if r.fits(seconds)), None)
        return (rule.text if rule else DEFAULT_TEXT).replace("{seconds}", f"{seconds:.1f}")

    def __call__(self, audio: Pcm16, language: str | None = None) -> str:
        return self.text_for(speech_seconds(audio))

    @classmethod
    def from_dict(cls, data: dict[str, object], source: str = "script") -> EmulatorHearing:
        """The [[hear]] rules of an emulator script (its other keys are the LLM's)."""
        items = data.get("hear", [])
        if not isinstance(items, list):
            raise HearingError(f"{source}: 'hear' must be an array of tables ([[hear]])")
        rules = []
        for i, item in enumerate(items):
            where = f"{source}: hear #{i + 1}"
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                raise HearingError(f"{where} needs a string 'text'")
            if unknown := set(item) - _RULE_KEYS:
                raise HearingError(f"{where}: unknown keys {sorted(unknown)}; expected up_to_s, text")
            up_to = item.get("up_to_s")
            if up_to is not None and (isinstance(up_to, bool) or not isinstance(up_to, int | float) or up_to <= 0):
                raise HearingError(f"{where}: 'up_to_s' must be a number of seconds > 0")
            rules.append(HearRule(item["text"], None if up_to is None else float(up_to)))
        return cls(tuple(rules))

    @classmethod
    def load(cls, path: Path) -> EmulatorHearing:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise HearingError(f"cannot read emulator script {path}: {exc}") from exc
        return cls.from_dict(data, source=str(path))
