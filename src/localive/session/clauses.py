"""Cut a stream of LLM text into pieces worth synthesising: speak the first phrase as soon as it exists.

The first piece ends at the first natural break that the text streamed so far shows:

1. a sentence end (. ! ? … and the CJK 。！？), or a clause mark (, ; : — and 、，；：) after at least
   `first_min_words` words ("Sure," alone: a speaker's natural first beat); the earliest in the buffer wins;
2. otherwise (English only), before a word that starts a new phrase — a conjunction, preposition, auxiliary or
   relative word ("and", "of", "is", "that", …) — once at least `phrase_min_words` words precede it and the last
   of them is not one that needs its continuation ("the", "a", "my", "very", …): "The capital of France | is
   Paris." is cut as soon as the token " is" arrives (a word later costs one more token, ~30 ms, before the
   first audio);
3. otherwise, once `first_max_words` complete words have arrived, at the last word boundary among them that is
   not inside a number ("1 000"), after an abbreviation or after a word that needs its continuation. This is the
   fallback for languages other than English (after rule 1, with its marks).

Later pieces end at sentence ends, or at a clause mark once they have twice as many words as all the pieces
before them (at least 4, at most `later_clause_min_words`): after "Sure," the next piece may end at "I can help
with that," so that it is ready before "Sure," has been played even when the LLM is slow, and after the first
dozen words the speech flows in sentence-sized units with their natural prosody. (The LLM writes a word every
30–60 ms, a voice speaks one every ~350 ms: a piece of N words is ready in time if the audio before it is longer
than N × the LLM's time per word; measured in docs/voices.md, "Joins".)

Never cut: inside a word (so never inside a URL or a number such as 3.14 or 1,000, which have no space), after
an abbreviation or an initial ("Dr. Smith", "e.g. this", "J. R. R. Tolkien"), after a list number ("1. First"),
or inside `code` (an odd number of backticks before the cut).
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]»”’]*(?=\s)|[。！？]+[」』”’）]*")
_CLAUSE_END = re.compile(r"[,;:—–](?=\s)|[、，；：]")
_WORD = re.compile(r"\S+")

_ABBREVIATIONS = frozenset(
    # titles and short forms that end with "." mid-sentence; not "no", "sec", "etc": they often end a sentence
    "mr mrs ms dr prof sr jr st mt ft vs approx dept fig vol cf lt sgt capt".split()
)
# Words that begin a new phrase: breaking just before one sounds like a speaker's natural short pause.
PHRASE_STARTERS = frozenset(
    """and but or nor so because since although though while whereas unless until if when where which who whom
    whose that than then of in on at to for with from by about into onto over under after before between
    through during without within across against among around along is are was were will would can could
    should shall may might must has have had does did do""".split()
)
# Words a piece must not end with: they need the next word ("the | capital" sounds broken).
_NEEDS_CONTINUATION = PHRASE_STARTERS | frozenset(
    """a an the my your his her its our their this these those some any no not very too more most such each
    every both either neither one two few many much all i you he she it we they""".split()
)


class ClauseSplitter:
    def __init__(self, *, first_min_words: int = 1, phrase_min_words: int = 3, first_max_words: int = 6,
                 later_clause_min_words: int = 12, english: bool = True) -> None:
        self._buffer = ""
        self._first = True
        self._first_min_words = first_min_words
        self._phrase_min_words = phrase_min_words
        self._first_max_words = first_max_words
        self._later_clause_min_words = later_clause_min_words
        self._english = english
        self._words_cut = 0  # words in the pieces returned so far

    def push(self, text: str) -> list[str]:
        """Add streamed text; return the pieces that are complete."""
        self._buffer += text
        pieces = []
        while piece := self._take():
            pieces.append(piece)
        return pieces

    def flush(self) -> list[str]:
        """The rest, at the end of the stream."""
        rest, self._buffer = self._buffer.strip(), ""
        return [rest] if rest and any(c.isalnum() for c in rest) else []

    def _take(self) -> str | None:
        cut = self._punctuation_cut()
        if cut is None and self._first:
            cut = self._phrase_cut() if self._english else None
            if cut is None:
                cut = self._word_count_cut()
        if cut is None:
            return None
        piece, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:]
        if not any(c.isalnum() for c in piece):
            return self._take()  # only punctuation: dropped, and the first piece is still to come
        self._first = False
        self._words_cut += _count_words(piece)
        return piece

    # --- the three kinds of cut: each returns the index where the piece ends, or None ----------------------

    def _punctuation_cut(self) -> int | None:
        buffer = self._buffer
        for match in _SENTENCE_END.finditer(buffer):
            if self._is_sentence_end(match.start(), match.group()) and not _in_code(buffer, match.end()):
                sentence_end = match.end()
                break
        else:
            sentence_end = None
        if self._first:
            min_words = self._first_min_words
        else:  # twice the words already cut, so the next piece is ready before they have been spoken
            min_words = min(self._later_clause_min_words, max(4, 2 * self._words_cut))
        for match in _CLAUSE_END.finditer(buffer):
            if sentence_end is not None and match.end() >= sentence_end:
                break
            if _count_words(buffer[: match.end()]) >= min_words and not _in_code(buffer, match.end()):
                return match.end()
        return sentence_end

    def _is_sentence_end(self, start: int, mark: str) -> bool:
        if not mark.startswith(".") or mark.startswith(".."):
            return True
        before = self._buffer[:start].split()
        word = before[-1] if before else ""
        bare = word.strip("\"'([“‘").casefold()
        if bare in _ABBREVIATIONS or "." in bare:  # Dr. / e.g. / U.S.
            return False
        if len(bare) == 1 and bare.isalpha() and word[-1].isupper():  # an initial: J. R. R. Tolkien
            return False
        return not (bare.isdigit() and len(before) == 1)  # "1. First": a list number, not a sentence

    def _phrase_cut(self) -> int | None:
        # The last word counts before a blank follows it: a token that is a phrase starter (" is") is cut before
        # at once, one token sooner, even if it turns out to begin a longer word ("island"): the cut is still
        # between two words, only a less natural one (an LLM's tokenizer has its own token for common longer words).
        words = [(m.start(), m.group()) for m in _WORD.finditer(self._buffer)]
        for index in range(self._phrase_min_words, len(words)):
            start, word = words[index]
            if _bare(word) in PHRASE_STARTERS and self._can_end_after(words[index - 1][1], word) \
                    and not _in_code(self._buffer, start):
                return start
        return None

    def _word_count_cut(self) -> int | None:
        words = _complete_words(self._buffer)
        if len(words) < self._first_max_words:
            return None
        for index in range(self._first_max_words - 1, self._first_min_words - 1, -1):
            start, word = words[index]
            if self._can_end_after(words[index - 1][1], word) and not _in_code(self._buffer, start):
                return start
        return None

    def _can_end_after(self, previous: str, following: str) -> bool:
        """Whether a piece may end with the word `previous`, the next starting with `following`."""
        if previous.endswith(("-", "/", "&")) or not any(c.isalnum() for c in following):
            return False
        if previous[-1].isdigit() and following[0].isdigit():  # 1 000 000
            return False
        if previous.endswith(".") and (_bare(previous) in _ABBREVIATIONS or "." in _bare(previous)):
            return False
        return not (self._english and _bare(previous) in _NEEDS_CONTINUATION)


def _bare(word: str) -> str:
    return word.strip("\"'()[]“”‘’.,;:!?…").casefold()


def _count_words(text: str) -> int:
    """Words between blanks; in scripts written without blanks (CJK), about one word per two characters."""
    count = 0
    for word in text.split():
        unspaced = sum(1 for c in word if c.isalnum() and ord(c) >= 0x2E80)
        count += max(1, unspaced // 2) if unspaced else any(c.isalnum() for c in word)
    return count


def _complete_words(text: str) -> list[tuple[int, str]]:
    """(start, word) of each word that has been followed by a blank (the next token may still extend the last)."""
    return [(m.start(), m.group()) for m in _WORD.finditer(text) if m.end() < len(text)]


def _in_code(text: str, index: int) -> bool:
    return text.count("`", 0, index) % 2 == 1
