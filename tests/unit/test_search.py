from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from localive.tools.grounding import grounding_metadata, sentence_spans
from localive.tools.search import (
    PASSAGE_CHARS,
    LocalSearch,
    SearchError,
    SearchHit,
    SearxngSearch,
    _extract,
    fts_query,
    split_passages,
)

# -- the local index ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo() -> Iterator[LocalSearch]:
    search = LocalSearch.demo()
    yield search
    search.close()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    (docs / "nested" / "deeper").mkdir(parents=True)
    (docs / ".hidden").mkdir()
    (docs / "volcano.md").write_text(
        "---\ntitle: Volcanoes explained\nurl: https://example.org/volcanoes\n---\n"
        "# Ignored heading\n\nA volcano is an opening in the crust where magma erupts as lava.\n")
    (docs / "nested" / "glacier.txt").write_text("Glaciers are slow rivers of ice that carve valleys.\n")
    (docs / "nested" / "deeper" / "tides.html").write_text(
        "<html><head><title>Ocean tides</title><style>p{color:red}</style></head>"
        "<body><h1>Tides</h1><p>Tides are caused by the gravity of the Moon &amp; the Sun.</p>"
        "<script>var gravity = 1;</script></body></html>")
    (docs / "aurora.md").write_text("# Auroras\n\nAuroras glow when solar wind hits the upper atmosphere.\n")
    (docs / ".hidden" / "secret.md").write_text("# Secret\n\nThe treasure lies under the oak.\n")
    (docs / "notes.pdf").write_text("treasure treasure treasure")
    return docs


async def test_indexes_a_folder_recursively(folder: Path) -> None:
    search = LocalSearch(folder)
    assert search.name == "local"

    [volcano] = await search.search("What is a volcano?")
    assert (volcano.title, volcano.uri) == ("Volcanoes explained", "https://example.org/volcanoes")
    assert volcano.text == "A volcano is an opening in the crust where magma erupts as lava."
    assert volcano.score > 0

    [glacier] = await search.search("glaciers carving valleys")
    assert glacier.title == "glacier"  # no heading: the file name
    assert glacier.uri == (folder / "nested" / "glacier.txt").resolve().as_uri()

    [tides] = await search.search("what causes the tides")
    assert tides.title == "Ocean tides"
    assert tides.text == "Tides Tides are caused by the gravity of the Moon & the Sun."
    assert await search.search("color red") == []  # <style> and <script> are not text
    assert await search.search("treasure") == []  # hidden folders and other file types are skipped
    assert [hit.title for hit in await search.search("auroras")] == ["Auroras"]
    search.close()


def test_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError):
        LocalSearch(tmp_path / "nope")


@pytest.mark.parametrize(("question", "title"), [
    ("How tall is Mount Everest?", "Mount Everest"),
    ("Who first reached the summit of Everest?", "Mount Everest"),
    ("When was the Eiffel Tower finished?", "The Eiffel Tower"),
    ("Who discovered polonium?", "Marie Curie"),
    ("Which Nobel Prizes did Marie Curie win?", "Marie Curie"),
    ("Who created the Python programming language?", "The Python programming language"),
    ("How many bees live in a hive?", "Honeybees"),
    ("What does the waggle dance mean?", "Honeybees"),
    ("How big is the Great Barrier Reef?", "The Great Barrier Reef"),
    ("When did astronauts first land on the Moon?", "The Moon"),
    ("What is the Gemini Live API?", "The Gemini Live API and localive"),
])
async def test_demo_corpus_ranks_the_right_document_first(demo: LocalSearch, question: str, title: str) -> None:
    hits = await demo.search(question)
    assert hits and hits[0].title == title
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    assert all(0 < len(hit.text) <= PASSAGE_CHARS for hit in hits)
    assert all(hit.uri.startswith("file://") for hit in hits)


async def test_demo_hits_carry_the_answer(demo: LocalSearch) -> None:
    [best] = await demo.search("How tall is Mount Everest?", limit=1)
    assert "8,848.86" in best.text
    [best] = await demo.search("When was the Eiffel Tower finished?", limit=1)
    assert "March 1889" in best.text


def test_demo_corpus_has_titled_documents(demo: LocalSearch) -> None:
    files = sorted(demo.folder.glob("*.md"))
    assert 6 <= len(files) <= 10
    for path in files:
        assert path.read_text(encoding="utf-8").startswith("# ")


def test_a_zipped_corpus_is_copied_out(tmp_path: Path) -> None:
    archive = tmp_path / "corpus.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("corpus/a.md", "# A\n\nAlpha.\n")
        zipped.writestr("corpus/sub/b.txt", "Beta.\n")
    folder = _extract(zipfile.Path(archive, "corpus/"))
    try:
        assert (folder / "a.md").read_text() == "# A\n\nAlpha.\n"
        assert (folder / "sub" / "b.txt").read_text() == "Beta.\n"
    finally:
        shutil.rmtree(folder)


@pytest.mark.parametrize("query", [
    "", "   ", "?", '"', '""', "'", 'say "hello', "a* OR b*", "NEAR(a b)", "title:everest", "^everest",
    "everest -tall", "(((", ")", "AND", "OR OR OR", "NOT", "{title body}: x", "_", "___", "🐝🐝", "\x00", "\\",
    "a" * 5000, " ".join(f"w{i}" for i in range(500)), "everest\" OR \"x", "Ω≈ç√∫", "日本の山", "e\u0301",
])
async def test_any_user_text_is_a_safe_query(demo: LocalSearch, query: str) -> None:
    hits = await demo.search(query)
    assert isinstance(hits, list)


def test_fts_query_quotes_words_and_drops_stop_words() -> None:
    assert fts_query("How tall is Mount Everest?") == '"tall" OR "mount" OR "everest"'
    assert fts_query('title:"x" NEAR(y*)') == '"title" OR "x" OR "near" OR "y"'
    assert fts_query("what is it?") == ""
    assert fts_query(" ".join(f"w{i}" for i in range(100))).count(" OR ") == 31


async def test_zero_limit_and_concurrent_searches(folder: Path) -> None:
    search = LocalSearch(folder)
    assert await search.search("volcano", limit=0) == []
    results = await asyncio.gather(*(search.search(q) for q in ("volcano", "glaciers", "tides", "auroras") * 5))
    assert all(len(hits) == 1 for hits in results)


async def test_changed_added_and_removed_files_are_reindexed(folder: Path) -> None:
    search = LocalSearch(folder)
    assert search.sync() == 4
    assert search.sync() == 0
    aurora = folder / "aurora.md"
    aurora.write_text("# Auroras\n\nNorthern lights shimmer green above Tromsø.\n")
    assert [hit.title for hit in await search.search("shimmer")] == ["Auroras"]
    assert await search.search("solar wind") == []

    # same size, new modification time
    aurora.write_text("# Auroras\n\nNorthern lights glimmer green above Tromsø.\n")
    stat = aurora.stat()
    os.utime(aurora, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert [hit.title for hit in await search.search("glimmer")] == ["Auroras"]

    (folder / "nested" / "glacier.txt").unlink()
    (folder / "comet.md").write_text("# Comets\n\nComets are icy bodies with glowing tails.\n")
    assert await search.search("glaciers") == []
    assert [hit.title for hit in await search.search("comets")] == ["Comets"]


async def test_an_index_file_is_kept_between_runs(folder: Path, tmp_path: Path) -> None:
    index = tmp_path / "index.sqlite"
    first = LocalSearch(folder, index_path=index)
    assert first.sync() == 4
    first.close()
    second = LocalSearch(folder, index_path=index)
    assert second.sync() == 0
    assert [hit.title for hit in await second.search("volcano")] == ["Volcanoes explained"]
    second.close()


def test_long_text_is_split_into_passages() -> None:
    sentence = "Honeybees dance to share where the flowers are. "
    passages = split_passages(f"Short first paragraph.\n\n{sentence * 40}\n\n{'x' * 2000}")
    assert all(0 < len(passage) <= PASSAGE_CHARS for passage in passages)
    assert passages[0].startswith("Short first paragraph. Honeybees dance")
    assert sum(passage.count("Honeybees") for passage in passages) == 40
    assert "".join(passages).count("x") == 2000


# -- groundingMetadata ----------------------------------------------------------------------------------------

EVEREST = SearchHit("Mount Everest", "file:///c/everest.md", "Mount Everest is 8,848.86 metres tall. Hillary and "
                    "Tenzing Norgay reached the summit on 29 May 1953.", 3.0)
CURIE = SearchHit("Marie Curie", "https://example.org/curie", "Marie Curie, born Maria Skłodowska in Warsaw, "
                  "discovered polonium and radium with Pierre Curie.", 2.0)


def test_grounding_metadata_links_sentences_to_sources() -> None:
    answer = "Mount Everest is 8,848.86 metres tall. Tenzing Norgay reached the summit in 1953. I hope this helps!"
    meta = grounding_metadata(["How tall is Mount Everest?"], [EVEREST, CURIE], answer)
    assert meta["webSearchQueries"] == ["How tall is Mount Everest?"]
    assert meta["groundingChunks"] == [{"web": {"uri": "file:///c/everest.md", "title": "Mount Everest"}},
                                       {"web": {"uri": "https://example.org/curie", "title": "Marie Curie"}}]
    supports = meta["groundingSupports"]
    assert [support["segment"]["text"] for support in supports] == [
        "Mount Everest is 8,848.86 metres tall.", "Tenzing Norgay reached the summit in 1953."]
    assert supports[0]["segment"] == {"endIndex": 38, "text": "Mount Everest is 8,848.86 metres tall."}
    assert supports[1]["segment"]["startIndex"] == 39
    for support in supports:
        assert support["groundingChunkIndices"] == [0]
        assert len(support["confidenceScores"]) == 1 and 0.3 <= support["confidenceScores"][0] <= 1
    assert "How tall is Mount Everest?" in meta["searchEntryPoint"]["renderedContent"]


def test_grounding_offsets_are_utf8_bytes() -> None:
    answer = ("Maria Skłodowska discovered polonium — and radium. ¿Qué más? "
              "Everest’s summit was reached in 1953 by Tenzing Norgay.")
    meta = grounding_metadata(["Skłodowska"], [CURIE, EVEREST], answer)
    supports = meta["groundingSupports"]
    assert [support["groundingChunkIndices"] for support in supports] == [[0], [1]]
    encoded = answer.encode()
    for support in supports:
        segment = support["segment"]
        start, end = segment.get("startIndex", 0), segment["endIndex"]
        assert encoded[start:end].decode() == segment["text"]
    second = supports[1]["segment"]
    char_start = answer.index("Everest’s")
    assert second["startIndex"] == len(answer[:char_start].encode()) > char_start
    assert second["text"] == "Everest’s summit was reached in 1953 by Tenzing Norgay."


def test_grounding_merges_hits_of_one_source_and_escapes_queries() -> None:
    more = SearchHit("Mount Everest", EVEREST.uri, "In Nepal the mountain is called Sagarmatha.", 1.0)
    meta = grounding_metadata(["<b>everest</b>", " ", "<b>everest</b>"], [EVEREST, more],
                              "Nepalis call the mountain Sagarmatha; it is 8,848.86 metres tall.")
    assert meta["webSearchQueries"] == ["<b>everest</b>"]
    assert len(meta["groundingChunks"]) == 1
    assert meta["groundingSupports"][0]["groundingChunkIndices"] == [0]
    rendered = meta["searchEntryPoint"]["renderedContent"]
    assert "&lt;b&gt;everest&lt;/b&gt;" in rendered and "<b>" not in rendered


def test_grounding_without_support_or_hits() -> None:
    assert grounding_metadata([], [], "") == {}
    meta = grounding_metadata(["q"], [EVEREST], "I could not find anything about that, sorry.")
    assert "groundingSupports" not in meta and len(meta["groundingChunks"]) == 1


def test_grounding_metadata_parses_with_the_sdk() -> None:
    types = pytest.importorskip("google.genai.types")
    answer = "Mount Everest is 8,848.86 metres tall. Maria Skłodowska discovered polonium."
    parsed = types.GroundingMetadata.model_validate(grounding_metadata(["everest"], [EVEREST, CURIE], answer))
    assert parsed.web_search_queries == ["everest"]
    assert parsed.grounding_chunks and parsed.grounding_chunks[1].web.title == "Marie Curie"
    assert parsed.grounding_supports and parsed.grounding_supports[1].segment.start_index == 39
    assert parsed.search_entry_point and parsed.search_entry_point.rendered_content


def test_sentences_split_at_ends_not_at_decimals() -> None:
    text = "It is 8,848.86 m tall. Really?! Yes… 東京は大きい。とても。\nNew line"
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        "It is 8,848.86 m tall.", "Really?!", "Yes…", "東京は大きい。", "とても。", "New line"]


# -- SearXNG --------------------------------------------------------------------------------------------------

CANNED = {"query": "everest", "results": [
    {"url": "https://example.org/everest", "title": "Mount  Everest", "content": "The highest\nmountain.",
     "score": 4.5},
    {"title": "no url, skipped"},
    "not an object",
    {"url": "https://example.org/k2", "title": "K2", "content": None},
    {"url": "https://example.org/third", "title": "Third", "content": "x" * 2000, "score": True},
]}


class _Handler(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, list[str]]]] = []

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self.seen.append(parse_qs(url.query))
        if url.path == "/slow/search":
            time.sleep(0.5)
        routes = {"/searx/search": (200, json.dumps(CANNED)), "/forbidden/search": (403, "Forbidden"),
                  "/html/search": (200, "<html>not json</html>"), "/odd/search": (200, "[1, 2]"),
                  "/slow/search": (200, "{}")}
        status, body = routes.get(url.path, (404, "Not found"))
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())
        except OSError:
            pass  # the client gave up (the timeout test)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def searx_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


async def test_searxng_results_become_hits(searx_url: str) -> None:
    _Handler.seen.clear()
    search = SearxngSearch(searx_url + "/searx/")
    assert search.name == "searxng"
    hits = await search.search("everest height", limit=5)
    assert _Handler.seen == [{"q": ["everest height"], "format": ["json"]}]
    assert hits[0] == SearchHit("Mount Everest", "https://example.org/everest", "The highest mountain.", 4.5)
    assert hits[1] == SearchHit("K2", "https://example.org/k2", "", 1 / 4)
    assert hits[2].score == 1 / 5 and len(hits[2].text) == PASSAGE_CHARS
    assert [hit.title for hit in await search.search("everest", limit=1)] == ["Mount Everest"]
    assert await search.search("  ") == []


@pytest.mark.parametrize(("path", "reason"), [
    ("/forbidden", "HTTP 403"), ("/missing", "HTTP 404"), ("/html", "not JSON"), ("/odd", "no results list"),
])
async def test_searxng_errors_have_short_reasons(searx_url: str, path: str, reason: str) -> None:
    with pytest.raises(SearchError, match=reason):
        await SearxngSearch(searx_url + path).search("everest")


async def test_searxng_timeout_and_unreachable(searx_url: str) -> None:
    with pytest.raises(SearchError, match=r"did not answer within 0.1 s"):
        await SearxngSearch(searx_url + "/slow", timeout_s=0.1).search("everest")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SearchError, match="unreachable"):
        await SearxngSearch(f"http://127.0.0.1:{port}").search("everest")


def test_searxng_needs_an_http_url() -> None:
    for url in ("localhost:8888", "ftp://host", "http://"):
        with pytest.raises(ValueError, match="SearXNG URL"):
            SearxngSearch(url)
