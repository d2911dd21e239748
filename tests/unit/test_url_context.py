"""The URL context fetcher against a local HTTP server: content handling, limits, redirects and the address policy.

Every test here talks only to 127.0.0.1: an autouse fixture fails any attempt to connect elsewhere, so a policy bug
shows up as a test failure rather than as traffic to a private or metadata address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import certifi
import httpcore2
import pytest

from localive.server.tls import ensure_tls
from localive.tools import url_context
from localive.tools.url_context import (
    ERROR,
    SUCCESS,
    UNSAFE,
    FetchedPage,
    UrlFetcher,
    UrlPolicy,
    find_urls,
    html_to_text,
    is_public_address,
    url_context_metadata,
)

HTML = """<!doctype html><html><head><title> The  Test Page </title><style>p { color: red }</style>
<script>var secret = "script text";</script></head>
<body><nav><a href="/">Home</a> <a href="/about">About</a></nav>
<header><div>Site banner</div></header>
<main><article><h1>Main heading</h1><p>First paragraph with <b>bold</b> text.</p>
<p>Second paragraph.<br>After a break.</p><ul><li>one</li><li>two</li></ul>
<div hidden>hidden text</div><p style="display: none">invisible text</p></article></main>
<footer>Copyright footer</footer></body></html>"""


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send(self, status: int, body: bytes, content_type: str | None, **headers: str) -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeouts, cut bodies)
            pass

    def redirect(self, location: str) -> None:
        self.send(302, b"", "text/plain", Location=location)

    def do_GET(self) -> None:
        port = self.connection.getsockname()[1]
        path = self.path
        if path == "/page":
            self.send(200, HTML.encode(), "text/html; charset=utf-8")
        elif path == "/text":
            self.send(200, b"Just plain text.\n", "text/plain")
        elif path == "/json":
            self.send(200, b'{"answer": 42}', "application/json")
        elif path == "/latin1":
            self.send(200, "<p>Caf\u00e9 cr\u00e8me</p>".encode("latin-1"), "text/html; charset=iso-8859-1")
        elif path == "/meta-charset":
            body = '<html><head><meta charset="windows-1251"></head><body><p>\u041f\u0440\u0438\u0432\u0435\u0442</p>'
            self.send(200, body.encode("windows-1251"), "text/html")
        elif path == "/big":
            self.send(200, ("\u00e9" * 300_000).encode(), "text/plain; charset=utf-8")  # 600 kB, 2 bytes a char
        elif path == "/image.png":
            self.send(200, b"\x89PNG\r\n\x1a\n" + bytes(100), "image/png")
        elif path == "/untyped-binary":
            self.send(200, b"\x00\x01\x02binary", None)
        elif path == "/redirect":
            self.redirect("/text")
        elif path == "/redirect-absolute":
            self.redirect(f"http://127.0.0.1:{port}/page")
        elif path.startswith("/loop/"):
            self.redirect(f"/loop/{int(path.rsplit('/', 1)[1]) + 1}")
        elif path == "/to-metadata":
            self.redirect("http://169.254.169.254/latest/meta-data/")
        elif path == "/to-ipv6-loopback":
            self.redirect(f"http://[::1]:{port}/text")
        elif path == "/to-file":
            self.redirect("file:///etc/passwd")
        elif path == "/slow":
            time.sleep(1.5)
            self.send(200, b"too late", "text/plain")
        else:
            self.send(404, b"not found", "text/plain")


def serve(tls: ssl.SSLContext | None = None) -> tuple[ThreadingHTTPServer, threading.Thread]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    httpd.daemon_threads = True
    httpd.block_on_close = False
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return httpd, thread


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd, thread = serve()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail any connection not to 127.0.0.1 (it would mean the policy let something through)."""
    connected: list[str] = []
    real = httpcore2.AnyIOBackend.connect_tcp

    async def connect_tcp(self: httpcore2.AnyIOBackend, host: str, port: int, **kwargs: Any) -> Any:
        assert host == "127.0.0.1", f"the test tried to connect to {host}"
        connected.append(host)
        return await real(self, host, port, **kwargs)

    monkeypatch.setattr(httpcore2.AnyIOBackend, "connect_tcp", connect_tcp)
    return connected


LOCAL = UrlPolicy(allow_hosts=("127.0.0.1",))


@pytest.fixture
async def fetcher() -> AsyncIterator[UrlFetcher]:
    async with UrlFetcher(LOCAL) as f:
        yield f


async def fetch(url: str, policy: UrlPolicy = LOCAL) -> FetchedPage:
    async with UrlFetcher(policy) as f:
        return await f.fetch(url)


# --- content -----------------------------------------------------------------------------------------------------

async def test_html_page_gives_title_and_visible_text(server: str, fetcher: UrlFetcher) -> None:
    page = await fetcher.fetch(f"{server}/page")
    assert page.status == SUCCESS, page.reason
    assert page.url == f"{server}/page"
    assert page.title == "The Test Page"
    assert page.text == ("Main heading\nFirst paragraph with bold text.\nSecond paragraph.\nAfter a break.\n"
                         "- one\n- two")
    for noise in ("secret", "color", "Home", "Site banner", "hidden text", "invisible text", "Copyright"):
        assert noise not in page.text


async def test_text_and_json_pages_are_returned_as_is(server: str, fetcher: UrlFetcher) -> None:
    text = await fetcher.fetch(f"{server}/text")
    assert (text.status, text.title, text.text) == (SUCCESS, "", "Just plain text.")
    assert (await fetcher.fetch(f"{server}/json")).text == '{"answer": 42}'


async def test_charsets_from_header_and_document(server: str, fetcher: UrlFetcher) -> None:
    assert (await fetcher.fetch(f"{server}/latin1")).text == "Caf\u00e9 cr\u00e8me"
    assert (await fetcher.fetch(f"{server}/meta-charset")).text == "\u041f\u0440\u0438\u0432\u0435\u0442"


async def test_big_body_is_cut_at_max_bytes_without_a_broken_character(server: str) -> None:
    page = await fetch(f"{server}/big", UrlPolicy(allow_hosts=("127.0.0.1",), max_bytes=1001, max_text_chars=10**6))
    assert page.status == SUCCESS
    assert page.text == "\u00e9" * 500  # 1001 bytes: 500 whole characters and half of one, dropped
    assert "body cut at 1001 bytes" in page.reason


async def test_text_is_cut_at_max_text_chars(server: str) -> None:
    page = await fetch(f"{server}/big", UrlPolicy(allow_hosts=("127.0.0.1",), max_text_chars=100))
    assert page.status == SUCCESS
    assert page.text == "\u00e9" * 100
    assert "text cut at 100 characters" in page.reason


@pytest.mark.parametrize(("path", "reason"), [
    ("/image.png", "content type image/png is not text"),
    ("/untyped-binary", "binary content"),
    ("/missing", "HTTP 404"),
])
async def test_errors(server: str, fetcher: UrlFetcher, path: str, reason: str) -> None:
    page = await fetcher.fetch(server + path)
    assert (page.status, page.reason, page.text) == (ERROR, reason, "")


async def test_slow_page_times_out(server: str) -> None:
    started = time.monotonic()
    page = await fetch(f"{server}/slow", UrlPolicy(allow_hosts=("127.0.0.1",), timeout_s=0.3))
    assert (page.status, page.reason) == (ERROR, "timed out")
    assert time.monotonic() - started < 1.2


async def test_unresolvable_host_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fail(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    monkeypatch.setattr(url_context, "_resolve", fail)
    page = await fetch("http://no-such-host.test/")
    assert page.status == ERROR
    assert "cannot resolve no-such-host.test" in page.reason


# --- redirects ---------------------------------------------------------------------------------------------------

async def test_redirects_are_followed(server: str, fetcher: UrlFetcher) -> None:
    relative = await fetcher.fetch(f"{server}/redirect")
    assert (relative.status, relative.text) == (SUCCESS, "Just plain text.")
    assert relative.url == f"{server}/redirect"  # reported as asked
    assert (await fetcher.fetch(f"{server}/redirect-absolute")).title == "The Test Page"


async def test_redirect_chain_longer_than_max_redirects(server: str) -> None:
    policy = UrlPolicy(allow_hosts=("127.0.0.1",), max_redirects=3)
    page = await fetch(f"{server}/loop/0", policy)
    assert (page.status, page.reason) == (ERROR, "more than 3 redirects")


@pytest.mark.parametrize(("path", "reason"), [
    ("/to-metadata", "169.254.169.254 resolves to non-public address 169.254.169.254"),
    ("/to-ipv6-loopback", "::1 resolves to non-public address ::1"),
    ("/to-file", "scheme file is not allowed"),
])
async def test_redirect_from_allowed_host_to_refused_target(server: str, fetcher: UrlFetcher, path: str,
                                                            reason: str) -> None:
    page = await fetcher.fetch(server + path)
    assert (page.status, page.reason) == (UNSAFE, reason)


# --- the address policy ------------------------------------------------------------------------------------------

async def test_loopback_is_refused_by_default(server: str, loopback_only: list[str]) -> None:
    page = await fetch(f"{server}/text", UrlPolicy())
    assert (page.status, page.reason) == (UNSAFE, "127.0.0.1 resolves to non-public address 127.0.0.1")
    assert loopback_only == []  # refused before connecting


@pytest.mark.parametrize("policy", [
    UrlPolicy(allow_private=True),
    UrlPolicy(allow_hosts=("127.0.0.1",)),
    UrlPolicy(allow_hosts=("127.0.0.0/8",)),
])
async def test_private_addresses_can_be_allowed(server: str, policy: UrlPolicy) -> None:
    assert (await fetch(f"{server}/text", policy)).status == SUCCESS


async def test_deny_hosts_wins(server: str, loopback_only: list[str]) -> None:
    both = UrlPolicy(allow_private=True, allow_hosts=("127.0.0.1",), deny_hosts=("127.0.0.1",))
    page = await fetch(f"{server}/text", both)
    assert (page.status, page.reason) == (UNSAFE, "127.0.0.1 resolves to denied address 127.0.0.1")
    assert loopback_only == []


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/",
    "http://0.0.0.0/",
    "http://2130706433/",  # 127.0.0.1 as one decimal number
    "http://0x7f.1/",
    "http://[::ffff:127.0.0.1]/",
    "http://10.0.0.1/",
    "http://192.168.1.1:8080/",
    "http://[fd00::1]/",
    "http://100.64.0.1/",
    "http://localhost/",
])
async def test_private_and_special_addresses_are_refused(url: str, loopback_only: list[str]) -> None:
    page = await fetch(url, UrlPolicy())
    assert page.status == UNSAFE, page.reason
    assert "non-public address" in page.reason
    assert loopback_only == []


@pytest.mark.parametrize(("url", "reason"), [
    ("http://user:secret@example.com/", "credentials in URLs are not allowed"),
    ("http://user@example.com/", "credentials in URLs are not allowed"),
    ("ftp://example.com/file", "scheme ftp is not allowed"),
    ("file:///etc/passwd", "scheme file is not allowed"),
])
async def test_schemes_and_credentials_are_refused(url: str, reason: str) -> None:
    page = await fetch(url, UrlPolicy())
    assert (page.status, page.reason) == (UNSAFE, reason)


async def test_one_private_address_among_public_ones_is_enough_to_refuse(monkeypatch: pytest.MonkeyPatch) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "127.0.0.1"]

    monkeypatch.setattr(url_context, "_resolve", resolve)
    page = await fetch("http://rebinding.test/", UrlPolicy())
    assert (page.status, page.reason) == (UNSAFE, "rebinding.test resolves to non-public address 127.0.0.1")


async def test_connection_goes_to_the_checked_address(server: str, monkeypatch: pytest.MonkeyPatch,
                                                      loopback_only: list[str]) -> None:
    """The name is resolved once, by the guard; the socket connects to that address, not to a new lookup."""
    lookups: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr(url_context, "_resolve", resolve)
    port = server.rsplit(":", 1)[1]
    page = await fetch(f"http://pinned.test:{port}/text", UrlPolicy(allow_hosts=("pinned.test",)))
    assert (page.status, page.text) == (SUCCESS, "Just plain text.")
    assert lookups == ["pinned.test"]
    assert loopback_only == ["127.0.0.1"]


async def test_tls_checks_the_certificate_against_the_name_not_the_pinned_address(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = ensure_tls(tmp_path, ["pinned.test"])
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(files.server_cert, files.server_key)
    httpd, thread = serve(tls)

    async def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    monkeypatch.setattr(url_context, "_resolve", resolve)
    monkeypatch.setattr(certifi, "where", lambda: str(files.ca_cert))  # trust the test CA
    port = httpd.server_address[1]
    try:
        good = await fetch(f"https://pinned.test:{port}/text", UrlPolicy(allow_private=True))
        wrong = await fetch(f"https://other.test:{port}/text", UrlPolicy(allow_private=True))
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
    assert (good.status, good.text) == (SUCCESS, "Just plain text.")
    assert wrong.status == ERROR
    assert "hostname mismatch" in wrong.reason.lower()


async def test_host_name_patterns(monkeypatch: pytest.MonkeyPatch) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        raise AssertionError("a denied host must not even be resolved")

    monkeypatch.setattr(url_context, "_resolve", resolve)
    deny = UrlPolicy(deny_hosts=("*.example.com", "Evil.TEST"))
    for url in ("http://www.example.com/", "https://a.b.example.com./x", "http://evil.test/"):
        page = await fetch(url, deny)
        assert (page.status, page.reason) == (UNSAFE, f"host {url.split('/')[2].lower().rstrip('.')} is denied")


@pytest.mark.parametrize(("address", "public"), [
    ("8.8.8.8", True), ("93.184.215.14", True), ("2606:4700:4700::1111", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.0.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("255.255.255.255", False), ("198.18.0.1", False), ("::", False), ("::1", False), ("fd00::1", False),
    ("fe80::1", False), ("ff02::1", False), ("::ffff:10.0.0.1", False), ("::ffff:8.8.8.8", True),
    ("64:ff9b::7f00:1", False), ("2002:7f00:1::1", False), ("2001:db8::1", False),
])
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


async def test_fetch_all_keeps_order_and_stops_at_max_urls(server: str) -> None:
    urls = [f"{server}/text", f"{server}/missing", "http://[::1]/", f"{server}/page"]
    async with UrlFetcher(UrlPolicy(allow_hosts=("127.0.0.1",), max_urls=3)) as f:
        pages = await f.fetch_all(urls)
    assert [(p.url, p.status) for p in pages] == [(urls[0], SUCCESS), (urls[1], ERROR), (urls[2], UNSAFE)]


async def test_fetch_all_runs_concurrently(server: str) -> None:
    started = time.monotonic()
    async with UrlFetcher(UrlPolicy(allow_hosts=("127.0.0.1",), timeout_s=0.5)) as f:
        pages = await f.fetch_all([f"{server}/slow"] * 4)
    assert {p.reason for p in pages} == {"timed out"}
    assert time.monotonic() - started < 1.5


async def test_aclose_is_idempotent_and_fetcher_reusable(server: str) -> None:
    f = UrlFetcher(LOCAL)
    await f.aclose()
    assert (await f.fetch(f"{server}/text")).status == SUCCESS
    await f.aclose()
    await f.aclose()
    assert (await f.fetch(f"{server}/text")).status == SUCCESS
    await f.aclose()
    await asyncio.sleep(0)


# --- find_urls, metadata, html_to_text ---------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "urls"), [
    ("Summarize https://example.com/a.", ["https://example.com/a"]),
    ("See (https://example.com/b), and https://example.com/c!", ["https://example.com/b", "https://example.com/c"]),
    ("Wiki: https://en.wikipedia.org/wiki/Python_(programming_language)?",
     ["https://en.wikipedia.org/wiki/Python_(programming_language)"]),
    ("[docs](https://ai.google.dev/gemini-api/docs/url-context) and <http://x.org/p?q=1&r=2>",
     ["https://ai.google.dev/gemini-api/docs/url-context", "http://x.org/p?q=1&r=2"]),
    ('"https://example.com/q" vs \'https://example.com/q\';', ["https://example.com/q"]),
    ("HTTPS://EXAMPLE.COM/Up http://a.com http://a.com/ https://", ["HTTPS://EXAMPLE.COM/Up", "http://a.com",
                                                                     "http://a.com/"]),
    ("no links, ftp://example.com or www.example.com", []),
    ("对比 https://example.com/中文。", ["https://example.com/中文"]),
])
def test_find_urls(text: str, urls: list[str]) -> None:
    assert find_urls(text) == urls


def test_find_urls_limit() -> None:
    text = " ".join(f"https://example.com/{i}" for i in range(30))
    assert find_urls(text) == [f"https://example.com/{i}" for i in range(20)]
    assert find_urls(text + " https://example.com/0", limit=3) == [f"https://example.com/{i}" for i in range(3)]


def test_url_context_metadata_shape() -> None:
    pages = [FetchedPage("https://a.example/", SUCCESS, title="A", text="a"),
             FetchedPage("http://10.0.0.1/", UNSAFE, reason="private")]
    assert url_context_metadata(pages) == {"urlMetadata": [
        {"retrievedUrl": "https://a.example/", "urlRetrievalStatus": "URL_RETRIEVAL_STATUS_SUCCESS"},
        {"retrievedUrl": "http://10.0.0.1/", "urlRetrievalStatus": "URL_RETRIEVAL_STATUS_UNSAFE"},
    ]}
    assert url_context_metadata([]) == {"urlMetadata": []}


@pytest.mark.parametrize(("data", "declared", "is_html", "text"), [
    (b"\xef\xbb\xbfcaf\xc3\xa9", "iso-8859-1", False, "caf\u00e9"),  # a byte-order mark wins over the header
    ("caf\u00e9".encode("utf-16"), None, False, "caf\u00e9"),
    (b"caf\xe9 \x80", None, False, "caf\u00e9 \u20ac"),  # not UTF-8: windows-1252
    (b'<?xml version="1.0" encoding="ISO-8859-15"?><a>\xa4</a>', None, False, '<?xml version="1.0" '
     'encoding="ISO-8859-15"?><a>\u20ac</a>'),
    (b'<meta http-equiv="Content-Type" content="text/html; charset=koi8-r"><p>\xf0\xd2', None, True,
     '<meta http-equiv="Content-Type" content="text/html; charset=koi8-r"><p>\u041f\u0440'),
    (b'<meta charset="utf-16"><p>caf\xc3\xa9', None, True, '<meta charset="utf-16"><p>caf\u00e9'),
    (b"caf\xc3\xa9 \xe2\x82", "utf-8", False, "caf\u00e9 "),  # a character cut by max_bytes is dropped
])
def test_decode(data: bytes, declared: str | None, is_html: bool, text: str) -> None:
    assert url_context._decode(data, declared, is_html) == text


def test_html_to_text_fragment_without_body() -> None:
    assert html_to_text("<h2>Only</h2><p>a&nbsp;fragment &amp; more</p>") == ("", "Only\na fragment & more")
