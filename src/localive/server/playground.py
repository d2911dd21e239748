"""The browser playground: the page at ``/``, its settings, and ephemeral tokens minted for it.

The page (``localive/playground/*``: plain HTML, CSS and ES modules, no build step) speaks the Live protocol over
the same WebSocket as the SDKs. It never holds an API key: when the server requires keys, the page asks
``POST /playground/token`` for a one-use ephemeral token and connects to the Constrained endpoint with it.

Who may get such a token is the operator's choice (``--playground``): ``local`` (the default) mints only for
clients on this machine (loopback), ``public`` for any client that can reach the server (put your own
authentication in front), ``off`` serves no page and no tokens.
"""

from __future__ import annotations

import ipaddress
import logging
from importlib.resources import files
from pathlib import Path
from typing import Literal

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from localive import __version__
from localive.engines.tts.voices import DEFAULT_VOICE, voice_names, voice_spec
from localive.models.registry import DEFAULT_MODEL
from localive.server.auth import Quota, Token, TokenStoreFull, TokenStoreUnavailable, new_token_name
from localive.server.origins import is_same_origin
from localive.server.state import ServerState
from localive.server.tokens_api import DEFAULT_EXPIRE_S, DEFAULT_NEW_SESSION_S, STORE_UNAVAILABLE, error, rfc3339

log = logging.getLogger("localive.access")

PlaygroundMode = Literal["local", "public", "off"]
PLAYGROUND_MODES: tuple[PlaygroundMode, ...] = ("local", "public", "off")
PRINCIPAL = "playground"  # who minted the page's tokens (logs); each token's sessions are its own principal
PLAYGROUND_QUOTA = Quota(tokens=60, setup_bytes=0)  # live page tokens per client address (30 min each)
PAGE_DIR = Path(str(files("localive") / "playground"))
FORWARDED_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")  # a proxy passed the request on


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def same_origin(request: Request) -> bool:
    """A browser request from another site carries its Origin: refuse it (no token for other pages, not even
    those --allow-origin lets use the server). The Host was checked against the server's names before."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return is_same_origin(origin, request.headers.get("host"))


def from_this_machine(request: Request) -> bool:
    """``--playground local``: a loopback peer that no proxy forwarded. This trusts whatever can reach 127.0.0.1:
    other local users, SSH tunnels, port forwards (docs/security.md)."""
    client = request.client.host if request.client else None
    return is_loopback(client) and not any(name in request.headers for name in FORWARDED_HEADERS)


# The page may not be framed by other sites (clickjacking of its microphone and camera buttons), and files are
# served as the type they are.
PAGE_HEADERS = {"Cache-Control": "no-cache", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "frame-ancestors 'none'", "Referrer-Policy": "no-referrer"}


async def index(request: Request) -> Response:
    return FileResponse(PAGE_DIR / "index.html", headers=PAGE_HEADERS)


async def page_config(request: Request) -> JSONResponse:
    """What the page offers: models, voices, tools that this server can run, and how to authenticate."""
    state: ServerState = request.app.state.localive
    models = [{
        "name": entry.name, "family": entry.family, "description": entry.description,
        "modalities": sorted(entry.response_modalities, key=lambda m: m != "AUDIO"), "tools": sorted(entry.tools),
    } for entry in state.registry]
    tools = state.engines.tools
    unavailable = {}
    if tools.sandbox is None:
        unavailable["codeExecution"] = tools.sandbox_problem
    if tools.search is None:
        unavailable["googleSearch"] = "search is off on this server"
    if not state.engines.tts is not None:
        for model in models:
            model["modalities"] = [m for m in model["modalities"] if m != "AUDIO"] or model["modalities"]
    voices = [{"name": name, "style": voice_spec(name).style} for name in voice_names()]
    return JSONResponse({
        "version": __version__,
        "models": models,
        "defaultModel": DEFAULT_MODEL if any(m["name"] == DEFAULT_MODEL for m in models) else models[0]["name"],
        "voices": voices,
        "defaultVoice": DEFAULT_VOICE,
        "auth": "none" if state.access.keys.open else "token",
        "unavailable": unavailable,
        "hears": state.engines.hears,
        "speaks": state.engines.tts is not None,
        "sees": state.engines.vision is not None,
    }, headers={"Cache-Control": "no-cache"})


async def mint_token(request: Request) -> JSONResponse:
    """A one-use ephemeral token for the page (only when keys are configured; see the module docstring)."""
    state: ServerState = request.app.state.localive
    mode: PlaygroundMode = request.app.state.playground
    if state.access.keys.open:
        return error(400, "FAILED_PRECONDITION", "This server needs no key: connect without a token.")
    if not same_origin(request):
        return error(403, "PERMISSION_DENIED", "Playground tokens are only given to the playground page.")
    client = request.client.host if request.client else None
    if mode == "local" and not from_this_machine(request):
        return error(403, "PERMISSION_DENIED",
                     "Playground tokens are only given to this machine; start the server with "
                     "--playground public to give them to other clients.")
    now = state.access.clock.time()
    token = Token(now + DEFAULT_EXPIRE_S, now + DEFAULT_NEW_SESSION_S, uses=1, principal=PRINCIPAL,
                  minter=f"{PRINCIPAL}@{client}")  # each client address has its own quota (security finding F9)
    name = new_token_name()
    try:
        await state.access.tokens.add(name, token, now, PLAYGROUND_QUOTA)
    except TokenStoreFull:
        return error(429, "RESOURCE_EXHAUSTED", "Too many playground tokens for this client; try again later.")
    except TokenStoreUnavailable:
        return error(503, "UNAVAILABLE", STORE_UNAVAILABLE)
    log.info('"POST %s" playground token for %s', request.url.path, client)
    return JSONResponse({"name": name, "expireTime": rfc3339(token.expire_at),
                         "newSessionExpireTime": rfc3339(token.new_session_until), "uses": 1},
                        headers={"Cache-Control": "no-store"})


async def to_index(request: Request) -> RedirectResponse:
    return RedirectResponse("/")


def playground_routes(mode: PlaygroundMode) -> list[BaseRoute]:
    if mode == "off":
        return []
    return [
        Route("/", index),
        Route("/playground", to_index),
        Route("/playground/config.json", page_config),
        Route("/playground/token", mint_token, methods=["POST"]),
        Mount("/playground", StaticFiles(directory=PAGE_DIR), name="playground"),
    ]
