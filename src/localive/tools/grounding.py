"""Gemini's `groundingMetadata` for an answer written from search hits.

The dict is the camelCase wire form Gemini sends in `serverContent.groundingMetadata`:

- `webSearchQueries`: the queries that were run;
- `groundingChunks`: one `{"web": {"uri", "title"}}` per distinct source (hits with the same URI are merged);
- `groundingSupports`: for each sentence of the answer that shares enough words with a source, its `segment`
  and the indices of the chunks it overlaps with, with one confidence score (the share of the sentence's
  meaningful words found in that source) per index;
- `searchEntryPoint.renderedContent`: a small self-contained HTML block listing the queries.

Segment offsets count **bytes of the answer's UTF-8 encoding**, as Gemini's do (`startIndex` inclusive,
`endIndex` exclusive), not Python string indices: in an answer that names "Skłodowska", every offset after the
"ł" (two bytes in UTF-8) is one more than the string index.
Like Gemini's proto3 JSON, zero values and empty lists are left out: a segment that starts the answer has no
`startIndex`, and an answer that no source supports has no `groundingSupports`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

from localive.tools.search import SearchHit, terms

MIN_SHARED_WORDS = 2  # a sentence with fewer meaningful words needs all of them
MIN_CONFIDENCE = 0.3  # the share of a sentence's meaningful words that must appear in a source

# A sentence ends at ., !, ? or … (with any closing quotes or brackets) before white space or the end of the text,
# at a CJK full stop, or at a line break. "8,848.86" and "e.g.x" do not end sentences.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s|$)|[。！？]+|\n")

_ENTRY_POINT_STYLE = (
    ".localive-search{font-family:sans-serif;font-size:14px;display:flex;flex-wrap:wrap;gap:6px;align-items:center}"
    ".localive-search .chip{border:1px solid #dadce0;border-radius:16px;padding:4px 12px;background:#f8f9fa}"
)


def sentence_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) string indices of the sentences in `text`, surrounding white space trimmed, empty ones skipped."""
    start = 0
    for end in [match.end() for match in _SENTENCE_END.finditer(text)] + [len(text)]:
        first, last = start, end
        while first < last and text[first].isspace():
            first += 1
        while last > first and text[last - 1].isspace():
            last -= 1
        if first < last:
            yield first, last
        start = end


def _stem(word: str) -> str:
    """A crude suffix strip so that "finished" meets "finish" and "bees" meets "bee"."""
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) > len(suffix) + 3 and not word.endswith("ss"):
            return word[: -len(suffix)]
    return word


def _words(text: str) -> set[str]:
    return {_stem(word) for word in terms(text)}


def _entry_point(queries: list[str]) -> str:
    chips = "".join(f'<span class="chip">{html.escape(query)}</span>' for query in queries)
    return f'<style>{_ENTRY_POINT_STYLE}</style><div class="localive-search"><span>Searched for</span>{chips}</div>'


def grounding_metadata(queries: list[str], hits: list[SearchHit], answer: str) -> dict[str, Any]:
    """Gemini's groundingMetadata (camelCase wire dict) for `answer`, written after running `queries` and
    reading `hits`. Sentences of the answer are linked to the sources whose words they share."""
    queries = list(dict.fromkeys(query.strip() for query in queries if query.strip()))
    chunks: list[dict[str, Any]] = []
    source_words: list[set[str]] = []
    index_of: dict[str, int] = {}
    for hit in hits:
        index = index_of.setdefault(hit.uri, len(chunks))
        if index == len(chunks):
            chunks.append({"web": {"uri": hit.uri, "title": hit.title}})
            source_words.append(set())
        source_words[index] |= _words(f"{hit.title} {hit.text}")

    supports: list[dict[str, Any]] = []
    for start, end in sentence_spans(answer):
        sentence = answer[start:end]
        words = _words(sentence)
        if not words:
            continue
        indices: list[int] = []
        scores: list[float] = []
        for index, known in enumerate(source_words):
            shared = len(words & known)
            confidence = shared / len(words)
            if shared >= min(MIN_SHARED_WORDS, len(words)) and confidence >= MIN_CONFIDENCE:
                indices.append(index)
                scores.append(round(confidence, 3))
        if indices:
            segment: dict[str, Any] = {"startIndex": len(answer[:start].encode()),
                                       "endIndex": len(answer[:end].encode()), "text": sentence}
            if segment["startIndex"] == 0:
                del segment["startIndex"]
            supports.append({"segment": segment, "groundingChunkIndices": indices, "confidenceScores": scores})

    metadata: dict[str, Any] = {}
    if queries:
        metadata["searchEntryPoint"] = {"renderedContent": _entry_point(queries)}
        metadata["webSearchQueries"] = queries
    if chunks:
        metadata["groundingChunks"] = chunks
    if supports:
        metadata["groundingSupports"] = supports
    return metadata
