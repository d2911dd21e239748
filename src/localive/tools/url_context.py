"""URL context: find the URLs in a prompt, fetch their text safely, and report `urlContextMetadata`.

The fetcher is built against server-side request forgery: a prompt must not be able to make the server read its
own loopback services, the LAN or a cloud metadata endpoint. So, for every URL and every redirect hop:

* only `http` and `https`, and no credentials in the URL;
* the host is resolved (asyncio's `getaddrinfo`, off the event loop) and the URL is refused if ANY of its addresses
  is not public or is one of this host's own interface addresses, unless the policy allows it (`allow_private`,
  `allow_hosts`); `deny_hosts` always refuses;
* the TCP connection goes to one of exactly those checked addresses: the check lives in the connection layer
  (an httpcore network backend under a small httpx transport), so nothing resolves the name a second time and a
  DNS answer cannot change between the check and the connect (rebinding). TLS still verifies the certificate
  against the host name;
* redirects are followed by hand, each hop checked again; no proxy from the environment, no cookies kept;
* the body is streamed and cut at `max_bytes`, the whole fetch has one deadline, and only text-like content types
  are read. The page is then decoded (text encodings only) and HTML read for its title and visible text with
  bounded work, in a small pool of threads of its own (`url_text`, `url_html`): a hostile page may be slow or
  huge to parse, and the deadline cannot stop a thread, so the work itself is bounded.

`fetch` never raises for network or policy problems: it returns a `FetchedPage` whose `status` is one of Gemini's
`UrlRetrievalStatus` names.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Self

import certifi
import httpcore2
import httpx2

from localive import __version__
from localive.tools.url_address import HostPatterns, LocalAddresses, is_public_address, normalize_host
from localive.tools.url_readers import read_page
from localive.tools.url_text import ParseLane, ParsePool

log = logging.getLogger(__name__)

SUCCESS = "URL_RETRIEVAL_STATUS_SUCCESS"
ERROR = "URL_RETRIEVAL_STATUS_ERROR"
UNSAFE = "URL_RETRIEVAL_STATUS_UNSAFE"
PAYWALL = "URL_RETRIEVAL_STATUS_PAYWALL"  # Gemini's; never produced here

USER_AGENT = f"localive/{__version__} (URL context)"
_CONCURRENCY = 8  # fetches in flight at once in fetch_all
READ_BYTES_PER_S = 50e6  # the event loop's cost of reading a body, estimated from its size (for a lane's account)
PARSE_WORKERS = 2  # pages decoded and parsed at once, per fetcher (the server has one)


@dataclass(frozen=True)
class UrlPolicy:
    """What the fetcher may reach and how much it reads.

    A host is refused if it matches `deny_hosts`; otherwise permitted if it matches `allow_hosts`; otherwise
    permitted only if every address it resolves to is public and not one of this host's own (or `allow_private` is
    set). Patterns: a host name
    (`localhost`), a wildcard for sub-domains (`*.example.com`, which does not match `example.com` itself), or an IP
    address or network (`127.0.0.1`, `::1`, `10.0.0.0/8`), which matches the addresses the host resolves to.
    """

    allow_private: bool = False
    allow_hosts: tuple[str, ...] = ()
    deny_hosts: tuple[str, ...] = ()
    max_bytes: int = 2 * 2**20
    timeout_s: float = 10.0
    max_urls: int = 20
    max_redirects: int = 5
    max_text_chars: int = 20000


@dataclass(frozen=True)
class FetchedPage:
    """One URL's outcome: `status` is a Gemini `UrlRetrievalStatus` name, `reason` a short why for logs."""

    url: str
    status: str
    title: str = ""
    text: str = ""
    reason: str = ""


class UnsafeUrlError(Exception):
    """A URL (or a redirect target) refused by the policy."""


# --- finding URLs ------------------------------------------------------------------------------------------------

_URL = re.compile(r"https?://[^\s<>\"'`\\^{|}]+", re.IGNORECASE)
_TRAILING = ".,;:!?*'\"。，、；：！？"
_PAIRS = {")": "(", "]": "["}


def find_urls(text: str, limit: int = 20) -> list[str]:
    """The http(s) URLs in user text, in order, without duplicates or trailing punctuation, at most `limit`."""
    found: list[str] = []
    for match in _URL.finditer(text):
        url = _strip_trailing(match.group())
        if "://" in url and url.split("://", 1)[1] and url not in found:
            found.append(url)
            if len(found) >= limit:
                break
    return found


def _strip_trailing(url: str) -> str:
    while url:
        last = url[-1]
        if last in _TRAILING:
            url = url[:-1]
        elif last in _PAIRS and url.count(_PAIRS[last]) < url.count(last):  # "(see http://x/a)" but not "/Foo_(bar)"
            url = url[:-1]
        else:
            break
    return url


def url_context_metadata(pages: list[FetchedPage]) -> dict[str, Any]:
    """The server content's `urlContextMetadata` for these pages."""
    return {"urlMetadata": [{"retrievedUrl": page.url, "urlRetrievalStatus": page.status} for page in pages]}


# --- the address policy ------------------------------------------------------------------------------------------

async def _resolve(host: str, port: int) -> list[str]:
    """The addresses of a host, in resolver order (a literal address is its own answer, without DNS)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _AddressGuard:
    """Resolves a host once and decides, by the policy, whether its addresses may be connected to."""

    def __init__(self, policy: UrlPolicy) -> None:
        self.policy = policy
        self.allow = HostPatterns.parse(policy.allow_hosts)
        self.deny = HostPatterns.parse(policy.deny_hosts)
        self.local = LocalAddresses()

    def check_name(self, host: str) -> None:
        name = normalize_host(host)
        if self.deny.match_name(name):
            raise UnsafeUrlError(f"host {name} is denied")

    async def checked_addresses(self, host: str, port: int) -> list[str]:
        name = normalize_host(host)
        self.check_name(name)
        try:
            addresses = await _resolve(name, port)
        except OSError as exc:
            raise httpcore2.ConnectError(f"cannot resolve {name}: {exc}") from exc
        if not addresses:
            raise httpcore2.ConnectError(f"no address for {name}")
        allowed_name = self.allow.match_name(name)
        for address in addresses:
            ip = ipaddress.ip_address(address)
            if self.deny.match_address(ip):
                raise UnsafeUrlError(f"{name} resolves to denied address {ip}")
            if allowed_name or self.policy.allow_private or self.allow.match_address(ip):
                continue
            if not is_public_address(ip):
                raise UnsafeUrlError(f"{name} resolves to non-public address {ip}")
            if self.local.contains(ip):
                raise UnsafeUrlError(f"{name} resolves to {ip}, an address of this host")
        return addresses


# --- the pinned transport ----------------------------------------------------------------------------------------

class _GuardedBackend(httpcore2.AsyncNetworkBackend):
    """httpcore's TCP connect, restricted to the addresses the guard checked (tried in order)."""

    def __init__(self, guard: _AddressGuard) -> None:
        self._guard = guard
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109 — httpcore's API
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore2.AsyncNetworkStream:
        failure: Exception | None = None
        for address in await self._guard.checked_addresses(host, port):
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                     socket_options=socket_options)
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None,  # noqa: ASYNC109
                                  socket_options: Iterable[Any] | None = None) -> httpcore2.AsyncNetworkStream:
        raise UnsafeUrlError("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _CoreStream(httpx2.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


class _PinnedTransport(httpx2.AsyncBaseTransport):
    """An httpx transport over an httpcore pool whose connections go through `_GuardedBackend`."""

    def __init__(self, guard: _AddressGuard) -> None:
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=ssl.create_default_context(cafile=certifi.where()),
            network_backend=_GuardedBackend(guard), http1=True, http2=False)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        core_request = httpcore2.Request(
            method=request.method,
            url=httpcore2.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw, content=request.stream, extensions=request.extensions)
        core_response = await self._pool.handle_async_request(core_request)
        assert isinstance(core_response.stream, AsyncIterable)
        return httpx2.Response(core_response.status, headers=core_response.headers,
                               stream=_CoreStream(core_response.stream), extensions=core_response.extensions)

    async def aclose(self) -> None:
        await self._pool.aclose()


# --- reading pages -----------------------------------------------------------------------------------------------

_TEXT_TYPES = {"application/json", "application/xml", "application/xhtml+xml", "application/javascript",
               "application/ecmascript", "application/x-javascript", "application/yaml", "application/x-yaml",
               "application/toml", "application/x-sh", "application/rtf"}
_HTML_TYPES = {"text/html", "application/xhtml+xml"}
_FETCH_ERRORS = (httpx2.HTTPError, httpx2.InvalidURL, httpcore2.TimeoutException, httpcore2.NetworkError,
                 httpcore2.ProtocolError, httpcore2.UnsupportedProtocol, httpcore2.ProxyError, OSError)
_TIMEOUTS = (TimeoutError, httpx2.TimeoutException, httpcore2.TimeoutException)


def _is_text_type(media_type: str) -> bool:
    return ((media_type.startswith("text/") and media_type != "text/event-stream") or media_type in _TEXT_TYPES
            or media_type.endswith(("+json", "+xml")))


async def _read_limited(response: httpx2.Response, max_bytes: int) -> tuple[bytes, bool]:
    """The body, stopping after `max_bytes` (decoded) bytes; and whether it was cut."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            return bytes(body[:max_bytes]), True
    return bytes(body), False


def _describe(exc: BaseException) -> str:
    if isinstance(exc, _TIMEOUTS):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:200]


# --- the fetcher -------------------------------------------------------------------------------------------------

class UrlFetcher:
    """Fetches URLs by a `UrlPolicy`. One HTTP client (and connection pool) for its lifetime; `aclose` it."""

    def __init__(self, policy: UrlPolicy = UrlPolicy()) -> None:  # frozen, so sharing the default is safe
        self.policy = policy
        self._guard = _AddressGuard(policy)
        self._client: httpx2.AsyncClient | None = None
        self._parser = ParsePool(PARSE_WORKERS)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _http(self) -> httpx2.AsyncClient:
        if self._client is None:
            self._client = httpx2.AsyncClient(
                transport=_PinnedTransport(self._guard), trust_env=False, follow_redirects=False,
                timeout=httpx2.Timeout(self.policy.timeout_s),
                cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),  # keep none
                headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity",
                         "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.5"})
        return self._client

    async def aclose(self) -> None:
        self._parser.close()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def fetch_all(self, urls: list[str], lane: ParseLane | None = None) -> list[FetchedPage]:
        """The first `max_urls` URLs, fetched concurrently (a few at a time), in the given order. A `lane` (see
        `ParsePool.run_in_lane`) bounds how many parsing threads the caller's pages take at once."""
        gate = asyncio.Semaphore(_CONCURRENCY)

        async def one(url: str) -> FetchedPage:
            async with gate:
                return await self.fetch(url, lane)

        return list(await asyncio.gather(*(one(url) for url in urls[: self.policy.max_urls])))

    async def fetch(self, url: str, lane: ParseLane | None = None) -> FetchedPage:
        """One URL within the policy's deadline. Problems become a status, never an exception."""
        deadline = time.monotonic() + self.policy.timeout_s
        try:
            async with asyncio.timeout(self.policy.timeout_s):
                page = await self._fetch(url, deadline, lane)
        except UnsafeUrlError as exc:
            page = FetchedPage(url, UNSAFE, reason=str(exc))
        except _FETCH_ERRORS as exc:
            page = FetchedPage(url, ERROR, reason=_describe(exc))
        except Exception as exc:  # a bad page must not break the session
            log.exception("URL context: unexpected failure fetching %s", url)
            page = FetchedPage(url, ERROR, reason=_describe(exc))
        log.info("URL context: %s -> %s %s", url, page.status.removeprefix("URL_RETRIEVAL_STATUS_"), page.reason)
        return page

    def _check(self, url: httpx2.URL) -> httpx2.URL:
        if url.scheme not in ("http", "https"):
            raise UnsafeUrlError(f"scheme {url.scheme or '(none)'} is not allowed")
        if url.userinfo:
            raise UnsafeUrlError("credentials in URLs are not allowed")
        if not url.raw_host:
            raise UnsafeUrlError("no host")
        self._guard.check_name(url.raw_host.decode("ascii"))
        return url

    async def _fetch(self, url: str, deadline: float, lane: ParseLane | None) -> FetchedPage:
        current = self._check(httpx2.URL(url))
        for _hop in range(self.policy.max_redirects + 1):
            async with self._http().stream("GET", current) as response:
                location = response.headers.get("location")
                if response.is_redirect and location:
                    current = self._check(current.join(location))
                    continue
                return await self._read(url, response, deadline, lane)
        return FetchedPage(url, ERROR, reason=f"more than {self.policy.max_redirects} redirects")

    async def _read(self, url: str, response: httpx2.Response, deadline: float,
                    lane: ParseLane | None = None) -> FetchedPage:
        if not 200 <= response.status_code < 300:
            return FetchedPage(url, ERROR, reason=f"HTTP {response.status_code}")
        media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type and not _is_text_type(media_type):
            return FetchedPage(url, ERROR, reason=f"content type {media_type} is not text")
        data, cut = await _read_limited(response, self.policy.max_bytes)
        if lane is not None:  # reading the body on the event loop is work done for the caller too
            lane.add_cpu(len(data) / READ_BYTES_PER_S)
        if not media_type and b"\x00" in data[:4096]:
            return FetchedPage(url, ERROR, reason="binary content")
        is_html = media_type in _HTML_TYPES or (not media_type and b"<html" in data[:4096].lower())
        # reading a big page takes a tenth of a second or more: off the event loop (and the session's audio), in a
        # reader process (url_readers) that a thread of the fetcher's own waits for, with work bounded by the page's
        # size, max_text_chars and the deadline
        page, cpu_s = await self._parser.run_in_lane(
            lane, read_page, data, response.charset_encoding, is_html, max_chars=self.policy.max_bytes,
            max_text_chars=self.policy.max_text_chars, deadline=deadline)
        if lane is not None:
            lane.add_cpu(cpu_s)
        title, text = page.title, page.text
        notes = [f"body cut at {self.policy.max_bytes} bytes"] if cut else []
        notes += page.notes
        if len(text) > self.policy.max_text_chars:
            text = text[: self.policy.max_text_chars]
            notes.append(f"text cut at {self.policy.max_text_chars} characters")
        return FetchedPage(url, SUCCESS, title=title, text=text, reason="; ".join(notes))
