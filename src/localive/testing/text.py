"""Checks on what a user would read or hear: how far a transcript is from what was said, which language a
model's answer is in. Rough on purpose: a test asserts what a user would notice, never a model's exact wording."""

from __future__ import annotations

import re

from localive.bench.accuracy import word_errors, words

__all__ = ["CLOSE_WER", "spoken_words", "text_language", "word_error_rate"]

# A transcript a user would read as what was said: at most a quarter of its words wrong (2 in 8), whatever one
# build of Whisper makes of a word on one CPU.
CLOSE_WER = 0.25

_STOP_WORDS = {
    "en": {"the", "and", "is", "are", "you", "to", "of", "a", "in", "it", "for", "this", "that", "with", "i"},
    "es": {"el", "la", "los", "las", "de", "que", "y", "es", "un", "una", "en", "por", "para", "con", "del", "se"},
    "fr": {"le", "la", "les", "de", "des", "et", "est", "un", "une", "que", "pour", "dans", "du", "vous", "je"},
    "de": {"der", "die", "das", "und", "ist", "ein", "eine", "nicht", "ich", "du", "zu", "mit", "den", "für", "sie"},
}


def spoken_words(text: str) -> list[str]:
    """The words of `text`, lower case, punctuation dropped (apostrophes kept: "don't")."""
    return words(text)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level edit distance over the reference's length (Levenshtein on `spoken_words`)."""
    return word_errors(reference, hypothesis) / max(1, len(words(reference)))


def text_language(text: str) -> str | None:
    """A rough guess of the language of a model's answer: 'hi' or 'ja' when most letters are Devanagari or
    kana/kanji; else the language of the most stop words among en/es/fr/de; None when nothing tells."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return None
    devanagari = sum("\u0900" <= c <= "\u097f" for c in letters)
    japanese = sum("\u3040" <= c <= "\u30ff" or "\u4e00" <= c <= "\u9fff" for c in letters)
    if devanagari / len(letters) > 0.5:
        return "hi"
    if japanese / len(letters) > 0.5:
        return "ja"
    words = re.findall(r"\w+", text.lower())
    counts = {lang: sum(w in stop for w in words) for lang, stop in _STOP_WORDS.items()}
    best = max(counts, key=lambda lang: counts[lang])
    return best if counts[best] else None
