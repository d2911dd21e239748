"""The multilingual fallback voice: espeak-ng (Debian's `espeak-ng` binary), for languages the embedded voices
cannot speak.

espeak-ng is a formant synthesizer: robotic, but it has letter-to-sound rules for ~100 languages, so Spanish
text is read with Spanish rules rather than English ones. Each clause is one `espeak-ng --stdout` process (~10 ms
to start) on a dedicated worker thread; its 22.05 kHz WAV is resampled to 24 kHz, tilted and level-normalised
like the embedded voices. Every Live voice name is kept: its gender picks espeak-ng's female or male variant, its
rate and pitch become espeak-ng's words per minute and pitch, its tilt the same spectral tilt.

Which language has a voice comes from `espeak-ng --voices` (read once, at `load()`): a tag's longest matching
prefix among the voices' languages and their "other languages" (lowest priority number first). Known gaps are
measured in docs/languages.md. Japanese: espeak-ng reads kana only (each kanji comes out as the English words
"Chinese letter"), so Japanese text is first turned into hiragana with pykakasi (a dictionary reading, ~1 ms a
clause); without pykakasi installed, Japanese is not offered (`speaks("ja")` is False).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import re
import shutil
import subprocess
import wave
from dataclasses import dataclass
from typing import Any

import numpy as np

from localive.audio.pcm import Pcm16
from localive.engines.tts.base import NEUTRAL, OUTPUT_SAMPLE_RATE_HZ, Delivery, UnsupportedLanguage
from localive.engines.tts.embedded import finish_voice
from localive.engines.tts.voices import VoiceSpec, resolve_voice, voice_names, voice_spec

BINARY = "espeak-ng"
INSTALL_HINT = "apt-get install espeak-ng"
WORDS_PER_MINUTE = 160  # espeak-ng's default is 175; a little slower is easier to follow in a foreign voice
PITCH_PER_SEMITONE = 6.0  # espeak-ng's pitch is 0-99 (50 normal)
VARIANTS = {"female": "f3", "male": "m3"}
TIMEOUT_S = 30.0
_OTHER = re.compile(r"\(([A-Za-z0-9-]+)\s+(\d+)\)")
_RAW_PHONEMES = re.compile(r"\[\[|\]\]")  # espeak-ng reads [[ … ]] as raw phonemes: not for LLM text
# Tags whose region espeak-ng has under another name.
_ALIASES = {"es-us": "es-419", "zh": "cmn", "zh-cn": "cmn", "cmn-cn": "cmn", "nn": "nb", "no": "nb", "fil": "tl"}


KANA_HINT = "pip install pykakasi"


def _kana_reader() -> Any | None:
    """pykakasi's converter (kanji → hiragana), or None when it is not installed. Loading takes ~0.4 s."""
    try:
        import pykakasi  # type: ignore[import-not-found, unused-ignore]  # optional, untyped
    except ImportError:
        return None
    return pykakasi.kakasi()  # type: ignore[no-untyped-call, unused-ignore]


def needs_kana(language: str) -> bool:
    return language.split("-")[0] == "ja"


class EspeakMissing(RuntimeError):
    """espeak-ng is not installed (or does not run)."""


@dataclass(frozen=True)
class EspeakVoice:
    language: str  # what `-v` is given, e.g. "es", "fr-fr"
    priority: int


def parse_voices(listing: str) -> dict[str, EspeakVoice]:
    """`espeak-ng --voices` output → language tag (lower case) → its voice; the lowest priority number wins."""
    table: dict[str, EspeakVoice] = {}

    def offer(tag: str, voice: EspeakVoice) -> None:
        tag = tag.lower()
        if tag not in table or voice.priority < table[tag].priority:
            table[tag] = voice

    for line in listing.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 5 or not fields[0].isdigit():
            continue
        voice = EspeakVoice(fields[1], int(fields[0]))
        offer(fields[1], voice)
        for tag, priority in _OTHER.findall(" ".join(fields[5:])):
            offer(tag, EspeakVoice(fields[1], int(priority)))
    return table


def voice_for(table: dict[str, EspeakVoice], language: str | None) -> str | None:
    """espeak-ng's voice for a BCP-47 tag: its longest prefix that has a voice ('pt-BR' → 'pt-br', 'fr-CA' →
    'fr'), after a few renames ('es-US' → 'es-419', 'zh' → 'cmn'); None where espeak-ng has none."""
    if language is None or not language.strip():
        return None
    parts = language.strip().lower().replace("_", "-").split("-")
    for end in range(len(parts), 0, -1):
        tag = "-".join(parts[:end])
        tag = _ALIASES.get(tag, tag)
        if tag in table:
            return table[tag].language
    return None


def espeak_text(text: str) -> str:
    """`text` without espeak-ng's raw-phoneme marks."""
    return _RAW_PHONEMES.sub(" ", text)


def command(binary: str, voice: str, spec: VoiceSpec, delivery: Delivery = NEUTRAL) -> list[str]:
    """The espeak-ng command line that speaks stdin (UTF-8) as this Live voice, to a WAV on stdout."""
    rate = spec.variant.rate * delivery.rate
    semitones = spec.variant.pitch_semitones + delivery.pitch_semitones
    pitch = round(min(99.0, max(0.0, 50.0 + PITCH_PER_SEMITONE * semitones)))
    return [binary, "-v", f"{voice}+{VARIANTS[spec.gender]}", "-s", str(round(WORDS_PER_MINUTE * rate)),
            "-p", str(pitch), "-b", "1", "--stdout"]


class EspeakTTS:
    """Implements the TTS interface with espeak-ng. Call `load()` once at start-up (reads its voice list)."""

    name = "espeak-ng"

    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary if binary is not None else (shutil.which(BINARY) or "")
        self._worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts-espeak")
        self._table: dict[str, EspeakVoice] | None = None
        self._kana: Any | None = None  # pykakasi, for Japanese
        self.problem = ""  # why no language is spoken ("" once loaded fine)

    def voices(self) -> list[str]:
        return voice_names()

    def resolve_voice(self, name: str | None) -> str:
        return resolve_voice(name)

    def load(self) -> None:
        """Read espeak-ng's voice list (blocking, ~10 ms). Without espeak-ng, `speaks` is False for every
        language and `problem` says why. Idempotent."""
        if self._table is not None:
            return
        self._table = {}
        if not self.binary:
            self.problem = f"espeak-ng is not installed ({INSTALL_HINT})"
            return
        try:
            done = subprocess.run([self.binary, "--voices"], capture_output=True, timeout=TIMEOUT_S, check=True)
        except (OSError, subprocess.SubprocessError) as exc:
            self.problem = f"espeak-ng does not run: {exc}"[:200]
            return
        table = parse_voices(done.stdout.decode("utf-8", "replace"))
        self._kana = _kana_reader()
        if self._kana is None:  # kanji would be read as "Chinese letter": no Japanese without pykakasi
            table = {tag: voice for tag, voice in table.items() if not needs_kana(voice.language)}
        self._table = table
        self.problem = "" if self._table else "espeak-ng lists no voices"

    def voice_for(self, language: str | None) -> str | None:
        self.load()
        assert self._table is not None
        return voice_for(self._table, language)

    def speaks(self, language: str | None) -> bool:
        return self.voice_for(language) is not None

    async def synthesize(self, text: str, voice: str, language: str | None = None,
                         delivery: Delivery = NEUTRAL) -> Pcm16:
        """One clause → 24 kHz mono PCM. Raises UnknownVoice, UnsupportedLanguage (no espeak-ng voice, or no
        espeak-ng). Cancel-safe like EmbeddedTTS: a queued request never runs, a running one is dropped."""
        spec = voice_spec(voice)
        espeak_voice = self.voice_for(language)
        if espeak_voice is None:
            raise UnsupportedLanguage(self.problem or f"espeak-ng has no voice for {language!r:.24}")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, self._render, text, espeak_voice, spec, delivery)

    def _render(self, text: str, espeak_voice: str, spec: VoiceSpec, delivery: Delivery) -> Pcm16:
        text = espeak_text(text)
        if needs_kana(espeak_voice) and self._kana is not None:
            text = "".join(item["hira"] for item in self._kana.convert(text))
        if not text.strip():
            return Pcm16(b"", OUTPUT_SAMPLE_RATE_HZ)
        done = subprocess.run(command(self.binary, espeak_voice, spec, delivery), input=text.encode("utf-8"),
                              capture_output=True, timeout=TIMEOUT_S, check=False)
        if done.returncode != 0:
            raise EspeakMissing(f"espeak-ng failed ({done.returncode}): "
                                f"{done.stderr.decode('utf-8', 'replace')[:200]}")
        with wave.open(io.BytesIO(done.stdout), "rb") as wav:
            rate = wav.getframerate()
            # espeak-ng cannot seek back into a pipe: its header's length is a placeholder, so read to the end.
            data = wav.readframes(len(done.stdout))
        samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
        if samples.size == 0:
            return Pcm16(b"", OUTPUT_SAMPLE_RATE_HZ)
        return finish_voice(samples, rate, spec, delivery)

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)
