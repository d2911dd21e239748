"""Speech in the session's language: the embedded voices for English, the fallback voice for every other
language it has (espeak-ng), never English pronunciation of foreign text.

Both engines keep the same 30 Live voice names, so a session's voice is the same name in any language; only the
synthesizer behind it changes with the `language` of each request (speechConfig.languageCode, or a
translation's target language).
"""

from __future__ import annotations

from localive.audio.pcm import Pcm16
from localive.engines.tts.base import NEUTRAL, TTS, Delivery, UnsupportedLanguage, is_english


class MultilingualTTS:
    """Implements the TTS interface by language: `english` for English (and no language), `fallback` otherwise."""

    def __init__(self, english: TTS, fallback: TTS) -> None:
        self.english = english
        self.fallback = fallback
        self.name = f"{getattr(english, 'name', 'tts')}+{getattr(fallback, 'name', 'fallback')}"

    def voices(self) -> list[str]:
        return self.english.voices()

    def resolve_voice(self, name: str | None) -> str:
        return self.english.resolve_voice(name)

    def engine_for(self, language: str | None) -> TTS | None:
        """The engine that speaks this language, or None."""
        if is_english(language) and self.english.speaks(language):
            return self.english
        return self.fallback if self.fallback.speaks(language) else None

    def speaks(self, language: str | None) -> bool:
        return self.engine_for(language) is not None

    def load(self) -> None:
        for engine in (self.english, self.fallback):
            load = getattr(engine, "load", None)
            if load is not None:
                load()

    async def synthesize(self, text: str, voice: str, language: str | None = None,
                         delivery: Delivery = NEUTRAL) -> Pcm16:
        engine = self.engine_for(language)
        if engine is None:
            raise UnsupportedLanguage(f"no voice speaks {language!r:.24}")
        return await engine.synthesize(text, voice, language, delivery)

    def close(self) -> None:
        self.english.close()
        self.fallback.close()
