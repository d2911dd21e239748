"""How well the server heard the voice benchmark's questions: exact transcripts and word error rate (pure functions).

The rate is over a whole run: the word errors of all its turns over the words of all its questions, so a long
question weighs more than a short one (the usual corpus WER). localive.testing.text's per-sentence rate for tests
is built on the same functions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, for comparing a transcript with the question."""
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def word_errors(reference: str, hypothesis: str) -> int:
    """Substitutions + deletions + insertions turning the reference's words into the hypothesis's (Levenshtein)."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        diagonal, row[0] = row[0], i
        for j in range(1, len(hyp) + 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (ref[i - 1] != hyp[j - 1]))
    return row[len(hyp)]


def word_error_rate(pairs: Iterable[tuple[str, str]]) -> float:
    """(spoken text, transcript) pairs → all word errors over all spoken words (0.0 when nothing was spoken)."""
    errors = spoken = 0
    for reference, hypothesis in pairs:
        errors += word_errors(reference, hypothesis)
        spoken += len(words(reference))
    return errors / spoken if spoken else 0.0
