"""Which Host and Origin headers the server answers (security finding F5: DNS rebinding and cross-site WebSockets).

A web page in the developer's browser can open a WebSocket to 127.0.0.1 and POST to it; browsers let it, and only
the headers say who is asking. So before any route runs:

- **Host** must name this server: ``localhost``, ``127.0.0.1``, ``[::1]``, the ``--host`` address, the address
  the connection arrived on, with ``--host 0.0.0.0`` or ``::`` every address of the machine's interfaces, or a
  name given with ``--allow-host`` (``*.example.com`` for a domain). A DNS-rebinding page reaches 127.0.0.1 under
  its own name (``Host: rebind.attacker.example``) and is refused with 403 here, whatever it asks for; an IP
  address in Host cannot be rebound.
- **Origin**, on WebSocket handshakes and on requests that change something (POST…): no Origin is a program
  (the SDKs, curl), let through; a page's Origin must be this server itself (the playground, same host and port)
  or be listed with ``--allow-origin``. A foreign page gets 403 before the WebSocket is accepted, which its
  browser reports as a failed connection; Gemini checks no Origin, but it never lets a page in without a key.

``*`` turns a check off, for deployments behind a proxy that does its own. Every refusal is logged, with the
offending header value cut short and quoted.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psutil
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from localive.protocol.errors import PolicyViolation, close_for

log = logging.getLogger("localive.access")

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
ANY_ADDRESS = ("0.0.0.0", "::", "")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # requests a page can make that change nothing here
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_LOGGED_CHARS = 80  # of a refused header value


def normalise_name(name: str) -> str:
    """A host name or address as compared: lower case, no trailing dot, IP addresses in canonical form."""
    name = name.strip().lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return name
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def split_host(value: str) -> tuple[str, int | None] | None:
    """A Host header (``name``, ``name:port``, ``[v6]:port``) as (normalised name, port); None if malformed."""
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1:]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:]
    elif value.count(":") == 1:
        name, _, port_text = value.partition(":")
    else:
        name, port_text = value, ""
    if not name or any(c in name for c in "/?#@ \t\\"):
        return None
    if not port_text:
        return normalise_name(name), None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    return normalise_name(name), int(port_text)


def parse_origin(value: str) -> tuple[str, str, int | None] | None:
    """An Origin (``scheme://host[:port]``) as (scheme, normalised host, port or the scheme's default port)."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname or parts.username is not None or parts.path not in ("", "/") \
            or parts.query or parts.fragment:
        return None
    scheme = parts.scheme.lower()
    return scheme, normalise_name(parts.hostname), port if port is not None else DEFAULT_PORTS.get(scheme)


def is_same_origin(origin: tuple[str, str, int | None] | str | None, host: tuple[str, int | None] | str | None) -> bool:
    """Whether a page's Origin is the server the request went to (its Host: same name, same port)."""
    if isinstance(origin, str):
        origin = parse_origin(origin)
    if isinstance(host, str):
        host = split_host(host)
    if origin is None or host is None:
        return False
    scheme, name, port = origin
    return host[0] == name and (host[1] or DEFAULT_PORTS.get(scheme)) == port


@dataclass(frozen=True)
class OriginPolicy:
    """The names this server answers to and the other pages that may use it (see the module docstring)."""

    names: frozenset[str]
    domains: tuple[str, ...] = ()  # ".example.com" for --allow-host '*.example.com'
    any_host: bool = False
    origins: frozenset[tuple[str, str, int | None]] = frozenset()
    any_origin: bool = False

    @classmethod
    def build(cls, bind_host: str, allow_hosts: Iterable[str] = (), allow_origins: Iterable[str] = ()) -> OriginPolicy:
        """Raises ValueError for a malformed --allow-host or --allow-origin value."""
        names = {normalise_name(n) for n in LOCAL_NAMES}
        if bind_host not in ANY_ADDRESS:
            names.add(normalise_name(bind_host))
        else:
            names |= interface_addresses()
        domains: list[str] = []
        any_host = False
        for entry in allow_hosts:
            if entry.strip() == "*":
                any_host = True
            elif entry.strip().startswith("*."):
                domains.append(normalise_name(entry.strip()[1:]))
            else:
                parsed = split_host(entry)
                if parsed is None or parsed[1] is not None:
                    raise ValueError(f"--allow-host wants a host name or address without a port: {entry!r}")
                names.add(parsed[0])
        origins: set[tuple[str, str, int | None]] = set()
        any_origin = False
        for entry in allow_origins:
            if entry.strip() == "*":
                any_origin = True
                continue
            origin = parse_origin(entry)
            if origin is None:
                raise ValueError(f"--allow-origin wants scheme://host[:port], e.g. https://app.example: {entry!r}")
            origins.add(origin)
        return cls(frozenset(names), tuple(domains), any_host, frozenset(origins), any_origin)

    def host_allowed(self, host: tuple[str, int | None], local_address: str | None) -> bool:
        name = host[0]
        if self.any_host or name in self.names or any(name.endswith(d) for d in self.domains):
            return True
        return local_address is not None and name == normalise_name(local_address)

    def origin_allowed(self, origin: str, host: tuple[str, int | None] | None) -> bool:
        if self.any_origin:
            return True
        parsed = parse_origin(origin)  # "null" (sandboxed frames, file:// pages) parses to None: refused
        if parsed is None:
            return False
        return parsed in self.origins or is_same_origin(parsed, host)

    def refusal(self, scope: Scope) -> str | None:
        """Why this request is refused (a message for the client), or None to let it through."""
        headers = Headers(scope=scope)
        hosts, origins = headers.getlist("host"), headers.getlist("origin")
        if len(hosts) > 1 or len(origins) > 1:
            return "A request may carry only one Host and one Origin header."
        host = split_host(hosts[0]) if hosts else None
        if hosts and host is None:
            return "The Host header is malformed."
        server = scope.get("server")
        local_address = str(server[0]) if server else None
        if host is not None and not self.host_allowed(host, local_address):
            return (f"Host {_quoted(host[0])} is not a name of this server; start the server with --allow-host "
                    f"{_quoted(host[0])} to serve it under that name.")
        needs_origin_check = scope["type"] == "websocket" or scope.get("method", "GET") not in SAFE_METHODS
        if origins and needs_origin_check and not self.origin_allowed(origins[0], host):
            return (f"Pages from {_quoted(origins[0])} may not use this server; start the server with "
                    f"--allow-origin {_quoted(origins[0])} to let them.")
        return None


def interface_addresses() -> set[str]:
    """The IP addresses of this machine's interfaces now (the address a connection arrived on is always accepted
    too, so one added later still works)."""
    try:
        interfaces = psutil.net_if_addrs()
    except OSError:
        return set()
    return {normalise_name(a.address.split("%")[0]) for addresses in interfaces.values() for a in addresses
            if a.family in (socket.AF_INET, socket.AF_INET6)}


def _quoted(value: str) -> str:
    """A header value fit for a log line and a response: printable, cut short, quoted."""
    cleaned = "".join(c if c.isprintable() else "?" for c in value[:_LOGGED_CHARS])
    return repr(cleaned + ("…" if len(value) > _LOGGED_CHARS else ""))


class HostOriginGuard:
    """ASGI middleware: refuse requests whose Host or Origin the policy does not allow (403), before routing."""

    def __init__(self, app: ASGIApp, policy: OriginPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        reason = self.policy.refusal(scope)
        if reason is None:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        peer = f"{client[0]}:{client[1]}" if client else "-"
        method = "WS" if scope["type"] == "websocket" else scope.get("method", "-")
        log.warning('%s "%s %s" refused 403: %s', peer, method, scope.get("path", ""), reason)
        if scope["type"] == "http":
            await _forbidden(reason)(scope, receive, send)
        else:
            await _refuse_handshake(scope, send, reason)


def _forbidden(reason: str) -> JSONResponse:
    return JSONResponse({"error": {"code": 403, "message": reason, "status": "PERMISSION_DENIED"}}, status_code=403)


async def _refuse_handshake(scope: Scope, send: Send, reason: str) -> None:
    """Answer the upgrade with 403 and the reason as the body, where the server can (ASGI's denial response);
    else a bare 403 (a close before accept). Logged by the caller, at WARNING for HTTP and WebSocket alike."""
    extensions: dict[str, Any] = scope.get("extensions") or {}
    if "websocket.http.response" not in extensions:
        close = close_for(PolicyViolation(reason))
        await send({"type": "websocket.close", "code": close.code, "reason": close.reason})
        return
    body = reason.encode()
    await send({"type": "websocket.http.response.start", "status": 403,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
    await send({"type": "websocket.http.response.body", "body": body})
