"""Search providers for the `googleSearch` tool: a local full-text index (the offline default) and SearXNG.

`LocalSearch` indexes a folder of Markdown, text and HTML files with SQLite FTS5 and ranks passages with bm25;
`SearxngSearch` asks a SearXNG instance's JSON API. Both return `SearchHit`s: a title, a URI and a passage of at
most `PASSAGE_CHARS` characters that the model reads as context.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx2

log = logging.getLogger("localive.search")

PASSAGE_CHARS = 800  # the longest passage a hit carries
SUFFIXES = frozenset({".md", ".markdown", ".txt", ".html", ".htm"})
MAX_QUERY_TERMS = 32
_HTML_SUFFIXES = frozenset({".html", ".htm"})
_SCHEMA_VERSION = 1

# Words that say little about a document: dropped from queries (and from the overlap test in grounding.py).
STOP_WORDS = frozenset("""
a about after all also am an and any are as at be been before being but by can could did do does doing during
for from had has have having he her here hers him his how i if in into is it its itself just let many me more
most much my no nor not of off on once only or other our ours out over please s same she should so some such t tell
than that the their theirs them then there these they this those through to too under until up very was we
were what when where which while who whom whose why will with would you your yours
""".split())
_WORD = re.compile(r"[^\W_]+")  # letters and digits, as FTS5's unicode61 tokenizer splits words


@dataclass(frozen=True)
class SearchHit:
    """One search result: where it comes from and the passage the model is given."""

    title: str
    uri: str
    text: str
    score: float  # higher is better; comparable only within one provider


class SearchProvider(Protocol):
    """Anything that answers a natural-language query with ranked hits."""

    name: str

    async def search(self, query: str, limit: int = 3) -> list[SearchHit]: ...


class SearchError(RuntimeError):
    """A search could not be carried out; the message is a short reason, fit to show to the model or the user."""


def terms(text: str) -> list[str]:
    """The lower-cased words of `text` that carry meaning (stop words dropped), each once, in order."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if word not in STOP_WORDS:
            seen.setdefault(word, None)
    return list(seen)


def fts_query(text: str) -> str:
    """A safe FTS5 query for natural-language `text`: its meaningful words, each quoted, joined with OR.

    Quoting makes every word a plain phrase, so no operator, column filter or stray quote in the user's text can
    reach the FTS5 parser. An empty result (a text of only stop words and punctuation) means "nothing to search".
    """
    return " OR ".join('"' + word.replace('"', '""') + '"' for word in terms(text)[:MAX_QUERY_TERMS])


# -- documents ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    """A file read for indexing: its title, the URI hits point to, and its text split into passages."""

    title: str
    uri: str
    passages: list[str]


class _HTMLText(HTMLParser):
    """Collects an HTML page's visible text (paragraph breaks at block elements) and its <title>."""

    _SKIPPED = frozenset({"script", "style", "noscript", "template", "head"})
    _BLOCKS = frozenset({"p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article",
                         "header", "footer", "blockquote", "pre", "table", "ul", "ol", "dd", "dt"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skipping = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self._SKIPPED:
            self._skipping += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self._SKIPPED:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skipping:
            self.parts.append(data)


def _front_matter(text: str) -> tuple[dict[str, str], str]:
    """Splits simple `key: value` front matter between `---` lines off the top of a Markdown or text file."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return {}, text
    for end, line in enumerate(lines[1:], start=1):
        if line.strip() == "---":
            fields = {}
            for entry in lines[1:end]:
                key, sep, value = entry.partition(":")
                if sep:
                    fields[key.strip().lower()] = value.strip().strip("'\"")
            return fields, "\n".join(lines[end + 1:])
    return {}, text


def _plain_markdown(text: str) -> str:
    """Markdown made readable as plain text: links and images become their text, heading marks go."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"(?m)^#{1,6}\s+", "", text)


def split_passages(text: str, limit: int = PASSAGE_CHARS) -> list[str]:
    """`text` cut into passages of at most `limit` characters: whole paragraphs where they fit, else sentences,
    else words (a single word longer than `limit` is cut)."""
    pieces: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = " ".join(paragraph.split())
        if len(paragraph) <= limit:
            pieces.append(paragraph)
            continue
        for sentence in re.split(r"(?<=[.!?])\s+", paragraph):
            while len(sentence) > limit:
                cut = sentence.rfind(" ", 0, limit + 1)
                cut = cut if cut > 0 else limit
                pieces.append(sentence[:cut])
                sentence = sentence[cut:].lstrip()
            pieces.append(sentence)
    passages: list[str] = []
    for piece in filter(None, pieces):
        if passages and len(passages[-1]) + 1 + len(piece) <= limit:
            passages[-1] += " " + piece
        else:
            passages.append(piece)
    return passages


def read_document(path: Path) -> Document:
    """Reads one file: title from front matter, a leading `# Heading`, the HTML <title>, or else the file name;
    URI from front matter `url:` or else the file's own `file://` URI."""
    raw = path.read_text(encoding="utf-8", errors="replace")
    fields: dict[str, str] = {}
    title = ""
    if path.suffix.lower() in _HTML_SUFFIXES:
        parser = _HTMLText()
        parser.feed(raw)
        parser.close()
        title, body = " ".join(parser.title.split()), "".join(parser.parts)
    else:
        fields, body = _front_matter(raw)
        heading = re.match(r"\s*#\s+(.+)\n?", body)
        if heading:
            title, body = heading.group(1).strip(), body[heading.end():]
        body = _plain_markdown(body) if path.suffix.lower() in {".md", ".markdown"} else body
    title = fields.get("title") or title or path.stem.replace("-", " ").replace("_", " ")
    return Document(title=title, uri=fields.get("url") or path.resolve().as_uri(), passages=split_passages(body))


def _files(folder: Path) -> Iterator[Path]:
    """The indexable files under `folder`, recursively, skipping hidden files and folders."""
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith(".") and Path(name).suffix.lower() in SUFFIXES:
                yield Path(root, name)


# -- the local index ------------------------------------------------------------------------------------------


class LocalSearch:
    """Full-text search over a folder of .md/.txt/.html files with SQLite FTS5, ranked with bm25.

    The index lives in memory unless `index_path` names a database file. Every search first brings the index up
    to date: files that are new or whose modification time or size changed are (re)indexed, removed files are
    dropped. The SQLite work runs on a worker thread, one search at a time.
    """

    name = "local"

    def __init__(self, folder: Path, index_path: Path | None = None) -> None:
        self.folder = Path(folder).resolve()
        if not self.folder.is_dir():
            raise NotADirectoryError(f"search folder {self.folder} is not a directory")
        self._lock = threading.Lock()
        self._db = sqlite3.connect(":memory:" if index_path is None else str(index_path), check_same_thread=False)
        self._create_schema()

    @classmethod
    def demo(cls) -> LocalSearch:
        """The demo corpus shipped with localive (a few short articles on general-knowledge topics)."""
        corpus = resources.files("localive") / "data" / "search_corpus"
        if isinstance(corpus, Path):
            return cls(corpus)
        return cls(_extract(corpus))  # installed in a zip: copy the files out once

    def _create_schema(self) -> None:
        with self._lock, self._db:
            (version,) = self._db.execute("PRAGMA user_version").fetchone()
            if version != _SCHEMA_VERSION:
                self._db.execute("DROP TABLE IF EXISTS documents")
                self._db.execute("DROP TABLE IF EXISTS passages")
            self._db.execute("CREATE TABLE IF NOT EXISTS documents"
                             "(path TEXT PRIMARY KEY, mtime_ns INTEGER, size INTEGER)")
            self._db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS passages USING fts5"
                             "(title, body, path UNINDEXED, uri UNINDEXED,"
                             " tokenize = 'porter unicode61 remove_diacritics 2')")
            self._db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    def sync(self) -> int:
        """Brings the index up to date with the folder (blocking); returns how many files were (re)indexed."""
        with self._lock:
            return self._sync()

    def _sync(self) -> int:
        on_disk: dict[str, tuple[int, int]] = {}
        for file in _files(self.folder):
            try:
                stat = file.stat()
            except OSError:
                continue
            on_disk[str(file)] = (stat.st_mtime_ns, stat.st_size)
        known = {row[0]: (row[1], row[2]) for row in self._db.execute("SELECT path, mtime_ns, size FROM documents")}
        changed = [path for path, signature in on_disk.items() if known.get(path) != signature]
        with self._db:
            for path in known.keys() - on_disk.keys():
                self._forget(path)
            for path in changed:
                self._forget(path)
                self._add(Path(path), on_disk[path])
        if changed:
            log.info("search index: %d file(s) (re)indexed from %s", len(changed), self.folder)
        return len(changed)

    def _forget(self, path: str) -> None:
        self._db.execute("DELETE FROM documents WHERE path = ?", (path,))
        self._db.execute("DELETE FROM passages WHERE path = ?", (path,))

    def _add(self, path: Path, signature: tuple[int, int]) -> None:
        # A file that cannot be read is still recorded, so it is retried only once it changes.
        self._db.execute("INSERT INTO documents VALUES (?, ?, ?)", (str(path), *signature))
        try:
            document = read_document(path)
        except OSError as exc:
            log.warning("search index: cannot read %s (%s)", path, exc)
            return
        self._db.executemany("INSERT INTO passages (title, body, path, uri) VALUES (?, ?, ?, ?)",
                             [(document.title, text, str(path), document.uri) for text in document.passages])

    def _query(self, query: str, limit: int) -> list[SearchHit]:
        match = fts_query(query)
        if not match or limit < 1:
            return []
        with self._lock:
            self._sync()
            rows = self._db.execute("SELECT title, uri, body, bm25(passages, 2.0, 1.0) AS rank FROM passages"
                                    " WHERE passages MATCH ? ORDER BY rank LIMIT ?", (match, limit)).fetchall()
        return [SearchHit(title=title, uri=uri, text=body, score=-rank) for title, uri, body, rank in rows]

    async def search(self, query: str, limit: int = 3) -> list[SearchHit]:
        """The `limit` passages that best match `query` (any of its meaningful words), best first."""
        return await asyncio.to_thread(self._query, query, limit)

    def close(self) -> None:
        """Closes the index database."""
        with self._lock:
            self._db.close()


def _extract(corpus: Traversable) -> Path:
    """Copies a packaged corpus that is not on the file system (a zip) into a temporary folder."""
    target = Path(tempfile.mkdtemp(prefix="localive-corpus-"))

    def copy(source: Traversable, into: Path) -> None:
        for entry in source.iterdir():
            if entry.is_dir():
                (into / entry.name).mkdir()
                copy(entry, into / entry.name)
            else:
                with entry.open("rb") as reader, (into / entry.name).open("wb") as writer:
                    shutil.copyfileobj(reader, writer)

    copy(corpus, target)
    return target


# -- SearXNG --------------------------------------------------------------------------------------------------


class SearxngSearch:
    """Web search through a SearXNG instance's JSON API (`GET {base}/search?q=…&format=json`).

    The instance must allow the JSON format (`search: formats: [html, json]` in its settings.yml), or it answers
    403. Every failure raises `SearchError` with a short reason.
    """

    name = "searxng"

    def __init__(self, base_url: str, timeout_s: float = 5.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"SearXNG URL must be http(s)://host[:port][/path], got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    async def search(self, query: str, limit: int = 3) -> list[SearchHit]:
        """The first `limit` results SearXNG gives for `query`, their snippets as passages."""
        if not query.strip() or limit < 1:
            return []
        try:
            async with httpx2.AsyncClient(timeout=self.timeout_s, follow_redirects=True) as client:
                response = await client.get(f"{self.base_url}/search", params={"q": query, "format": "json"},
                                            headers={"Accept": "application/json"})
        except httpx2.TimeoutException as exc:
            raise SearchError(f"SearXNG did not answer within {self.timeout_s:g} s") from exc
        except httpx2.HTTPError as exc:
            raise SearchError(f"SearXNG is unreachable ({type(exc).__name__})") from exc
        if response.status_code == 403:
            raise SearchError("SearXNG refused the JSON format (HTTP 403): enable json in its search.formats")
        if response.status_code != 200:
            raise SearchError(f"SearXNG answered HTTP {response.status_code}")
        try:
            data: Any = response.json()
        except ValueError as exc:
            raise SearchError("SearXNG's answer is not JSON") from exc
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list):
            raise SearchError("SearXNG's answer has no results list")
        return _searxng_hits(results, limit)


def _searxng_hits(results: list[Any], limit: int) -> list[SearchHit]:
    hits: list[SearchHit] = []
    for rank, item in enumerate(results):
        if len(hits) >= limit:
            break
        url = item.get("url") if isinstance(item, dict) else None
        if not isinstance(url, str) or not url:
            continue
        score = item.get("score")
        text = " ".join(str(item.get("content") or "").split())
        hits.append(SearchHit(
            title=" ".join(str(item.get("title") or url).split()),
            uri=url,
            text=text[:PASSAGE_CHARS],
            score=float(score) if isinstance(score, int | float) and not isinstance(score, bool) else 1 / (rank + 1),
        ))
    return hits
