"""Language codes a session is set up with: their syntax, names for the model's instructions, and which language
the recogniser listens for. Pure: no engines, no I/O. docs/languages.md says what each setting does.
"""

from __future__ import annotations

import re

from localive.protocol import messages as wire
from localive.protocol.errors import InvalidArgument
from localive.session.hearing import Recognition

# BCP-47 as the Live API takes it: a 2-3 letter language, then optional script/region/variant subtags.
_TAG = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8}){0,3}")

# English names of the languages the Live models list (docs/protocol-notes.md#voices-and-languages) and a few more,
# for instructions.
NAMES = {
    "ar": "Arabic", "bn": "Bengali", "cmn": "Mandarin Chinese", "cs": "Czech", "da": "Danish", "de": "German",
    "el": "Greek", "en": "English", "es": "Spanish", "fa": "Persian", "fi": "Finnish", "fil": "Filipino",
    "fr": "French", "gu": "Gujarati", "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian",
    "it": "Italian", "ja": "Japanese", "kn": "Kannada", "ko": "Korean", "ml": "Malayalam", "mr": "Marathi",
    "ms": "Malay", "nl": "Dutch", "no": "Norwegian", "nb": "Norwegian", "pl": "Polish", "pt": "Portuguese",
    "ro": "Romanian", "ru": "Russian", "sv": "Swedish", "sw": "Swahili", "ta": "Tamil", "te": "Telugu",
    "th": "Thai", "tr": "Turkish", "uk": "Ukrainian", "ur": "Urdu", "vi": "Vietnamese", "zh": "Chinese",
}


def primary(tag: str | None) -> str | None:
    """The primary language subtag, lower case ('es-US' → 'es'); None for None or blank."""
    if tag is None or not tag.strip():
        return None
    return re.split(r"[-_]", tag.strip().lower(), maxsplit=1)[0]


def same_language(a: str | None, b: str | None) -> bool:
    """Whether two tags name the same language ('es-ES' and 'es' do; regions are not compared)."""
    return a is not None and b is not None and primary(a) == primary(b)


def checked_tag(tag: str, field: str) -> str:
    """`tag` stripped, if it is a well-formed language code; else InvalidArgument naming `field`."""
    tag = tag.strip()
    if not _TAG.fullmatch(tag):
        raise InvalidArgument(f"{field}: '{tag[:20]}' is not a BCP-47 language code.")
    return tag


def language_name(tag: str) -> str:
    """'es-MX' → 'Spanish (es-MX)'; a language without a name here is given by its code."""
    name = NAMES.get(primary(tag) or "")
    return f"{name} ({tag})" if name else f"the language with the code '{tag}'"


def recognition(transcription: wire.AudioTranscriptionConfig | None, speech_language: str | None, *,
                translating: bool = False) -> Recognition:
    """What the recogniser listens for, from inputAudioTranscription and the session's language.

    - languageCodes (or the deprecated languageHints.languageCodes), one code: that language;
      several: Whisper detects the language of each utterance among them.
    - no codes, with languageAuto or translationConfig (the user's language is not the session's): detect any.
    - otherwise speechConfig.languageCode, else the recogniser's default (English).
    customVocabulary (and the deprecated adaptationPhrases) becomes Whisper's prompt.
    """
    config = transcription or wire.AudioTranscriptionConfig()
    hints = config.language_hints.language_codes if config.language_hints else None
    codes = [checked_tag(c, "inputAudioTranscription.languageCodes") for c in (config.language_codes or hints or [])
             if c.strip()]
    codes = list(dict.fromkeys(codes))
    phrases = [p.strip() for p in [*(config.custom_vocabulary or []), *(config.adaptation_phrases or [])]
               if p.strip()]
    vocabulary = tuple(dict.fromkeys(phrases))
    if len(codes) == 1:
        return Recognition(language=codes[0], vocabulary=vocabulary)
    if codes:
        return Recognition(detect_among=tuple(codes), vocabulary=vocabulary)
    if config.language_auto is not None or translating:
        return Recognition(detect_among=(), vocabulary=vocabulary)
    return Recognition(language=speech_language, vocabulary=vocabulary)
