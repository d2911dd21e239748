"""Cutting the LLM's streamed text into pieces to synthesise: the first phrase early, then sentences."""

from __future__ import annotations

import re

import pytest

from localive.session.clauses import ClauseSplitter


def stream(tokens: list[str], *, english: bool = True) -> list[str]:
    splitter = ClauseSplitter(english=english)
    pieces = []
    for token in tokens:
        pieces += splitter.push(token)
    return pieces + splitter.flush()


def llm_tokens(text: str) -> list[str]:
    """Roughly how an LLM streams: a word with its leading space, punctuation as its own token."""
    return re.findall(r"\s*[^\s,.;:!?]+|[,.;:!?]+|\s+", text)


def tokenizations(text: str) -> list[list[str]]:
    return [llm_tokens(text), list(text), [text], [word + " " for word in text.split(" ")]]


TEXTS = [
    "Well, the capital of France, as you know, is Paris. It is lovely in spring.",
    "The capital of France is Paris. It lies on the Seine, which flows through the city and into the sea.",
    "Dr. Smith lives at 221 Baker Street. He moved there in 1881, e.g. after the war.",
    "Sure! The answer is 3.14, or about 1,000 times more than you think.",
    "I think that you should visit https://example.com/a.b?x=1 for the details.",
    "Run `ls -la | grep foo and bar` and then check the output of the command.",
    "J. R. R. Tolkien wrote many books about hobbits and their long journeys.",
    "It costs 1 000 000 euros in total for the whole building and its garden.",
    "Hello!",
    "OK",
]


@pytest.mark.parametrize("text", TEXTS)
def test_nothing_is_lost_or_reordered_however_the_text_streams(text: str) -> None:
    for tokens in tokenizations(text):
        pieces = stream(tokens)
        assert " ".join(pieces).split() == text.split(), tokens[:5]
        assert all(piece == piece.strip() and piece for piece in pieces)


@pytest.mark.parametrize("text", TEXTS)
def test_the_first_piece_is_a_few_words_and_later_pieces_end_at_punctuation(text: str) -> None:
    pieces = stream(llm_tokens(text))
    assert 1 <= len(pieces[0].split()) <= 6, pieces
    for piece in pieces[1:-1]:
        assert piece[-1] in ".!?,;:", pieces  # sentences, or clauses once the pieces before them are long


@pytest.mark.parametrize("text, first", [
    ("Well, the capital of France, as you know, is Paris.", "Well,"),
    ("The capital of France, as you know, is Paris.", "The capital of France,"),
    ("The capital of France is Paris.", "The capital of France"),  # before the verb
    ("Sure! The answer is yes.", "Sure!"),  # a sentence end, however short
    ("Sure, the answer is yes.", "Sure,"),  # a clause mark, however short
    ("Yes of course, I can help with that.", "Yes of course,"),
    ("Dr. Smith lives at 221 Baker Street.", "Dr. Smith lives"),  # never after an abbreviation
    ("Mr. and Mrs. Jones are here.", "Mr. and Mrs. Jones"),
    ("No. I do not think so.", "No."),  # "no" is a word first: a sentence end
    ("J. R. R. Tolkien wrote many books.", "J. R. R. Tolkien wrote"),  # nor after an initial
    ("1. First, open the box.", "1. First,"),  # a list number is not a sentence
    ("Pi is about 3.14159 and change.", "Pi is about 3.14159"),  # never inside a number
    ("I think that you should go now.", "I think"),  # no phrase starter in time: the word-count fallback
    ("Run `ls -la | grep foo and bar` and see.", "Run"),  # before `code`, never inside it
    ("`ls -la | grep foo and bar` is the command.", "`ls -la | grep foo and bar`"),
    ("It costs 1 000 000 euros in total now.", "It costs 1 000 000 euros"),  # a number's groups stay together
    ("It costs 1 000 000 000 000 euros.", "It costs"),  # too long a number: cut before it
    ("My favourite kind of music is jazz.", "My favourite kind"),  # "of", after a word that may end a phrase
    ("The very best of all is this.", "The very best"),  # "very" needs its word: not "The very | best"
])
def test_the_first_piece_ends_at_a_natural_break(text: str, first: str) -> None:
    assert stream(llm_tokens(text))[0] == first


def test_marks_inside_code_are_not_cuts() -> None:
    text = "Call `f(a, b); g(c): h. i` to start, then wait. Done."
    assert stream(llm_tokens(text)) == ["Call `f(a, b); g(c): h. i`", "to start, then wait.", "Done."]


def test_the_first_piece_is_cut_as_soon_as_the_break_word_arrives() -> None:
    splitter = ClauseSplitter()
    assert splitter.push("The capital of France") == []
    assert splitter.push(" is") == ["The capital of France"]  # at once: the cut is before the word, whatever it is
    assert splitter.push(" Paris") == []
    assert splitter.push(".") == []
    assert splitter.push(" It") == ["is Paris."]
    assert splitter.flush() == ["It"]


def test_a_break_word_that_turns_out_longer_still_cuts_between_words() -> None:
    splitter = ClauseSplitter()
    assert splitter.push("The capital of France") == []
    assert splitter.push(" is") == ["The capital of France"]
    assert splitter.push("land") == []
    assert splitter.push(" nation.") == []
    assert splitter.flush() == ["island nation."]


def test_a_whole_sentence_pushed_at_once_is_spoken_whole() -> None:
    """Text that is already there gains nothing from a phrase cut: the sentence keeps its prosody."""
    assert ClauseSplitter().push("The capital of France is Paris. Next") == ["The capital of France is Paris."]


def test_other_languages_fall_back_to_marks_and_a_word_count() -> None:
    german = "Die Hauptstadt von Frankreich heißt Paris und liegt an der Seine."
    pieces = stream(llm_tokens(german), english=False)
    assert pieces == ["Die Hauptstadt von Frankreich heißt", "Paris und liegt an der Seine."]
    spanish = "Claro que sí, la capital de Francia es París."
    assert stream(llm_tokens(spanish), english=False) == ["Claro que sí,", "la capital de Francia es París."]
    japanese = "東京は日本の首都です。とても大きい都市です。"
    assert stream(list(japanese), english=False) == ["東京は日本の首都です。", "とても大きい都市です。"]
    chinese = "北京是中国的首都，也是一个很大的城市。"
    assert stream(list(chinese), english=False) == ["北京是中国的首都，", "也是一个很大的城市。"]


def test_english_phrase_starters_are_not_used_for_other_languages() -> None:
    # German "in" is not a reason to cut "Ich wohne | in Berlin" early: the word count decides
    assert stream(llm_tokens("Ich wohne seit Jahren in Berlin."), english=False) == ["Ich wohne seit Jahren in Berlin."]


def test_later_long_sentences_break_at_clause_marks_only_when_long() -> None:
    text = ("Sure. One two three, four five six seven eight nine ten eleven twelve, thirteen. "
            "A short one, with a comma.")
    assert stream(llm_tokens(text))[1:] == [  # clause marks after twice the words before, at least 4, at most 12
        "One two three, four five six seven eight nine ten eleven twelve,", "thirteen.",
        "A short one, with a comma."]


def test_the_pieces_after_a_short_first_one_grow_so_that_the_audio_never_runs_dry() -> None:
    text = ("Sure, I can help with that, and I will explain every step of the recipe, one by one, in detail. "
            "First, preheat the oven.")
    assert stream(llm_tokens(text)) == [
        "Sure,",  # 1 word
        "I can help with that,",  # a clause mark after ≥ 4 words (twice 1, at least 4)
        "and I will explain every step of the recipe, one by one,",  # ≥ 12 words (twice 6): not at "recipe,"
        "in detail.",
        "First, preheat the oven.",  # later clause marks wait for 12 words: sentences
    ]


def test_pieces_without_words_are_dropped() -> None:
    splitter = ClauseSplitter()
    assert splitter.push("... ") == []
    assert splitter.flush() == []
    assert stream(["... ", "Hello there. ", "... "]) == ["Hello there."]
