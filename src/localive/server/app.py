"""The ASGI application: Live WebSocket routes, health, path normalisation, and the Host and Origin checks."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from localive import __version__
from localive.server.live_ws import live_endpoint
from localive.server.metrics import CONTENT_TYPE
from localive.server.origins import HostOriginGuard, OriginPolicy
from localive.server.playground import PlaygroundMode, playground_routes
from localive.server.state import ServerState
from localive.server.tokens_api import create_token

LIVE_PATH = "/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContent"
_SLASHES = re.compile(r"/{2,}")


class CollapseSlashes:
    """Both SDKs request ``//ws/…``: collapse repeated slashes before routing (docs/protocol-notes.md)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and "//" in scope["path"]:
            scope = dict(scope)
            scope["path"] = _SLASHES.sub("/", scope["path"])
            scope["raw_path"] = scope["path"].encode()
        await self.app(scope, receive, send)


async def healthz(request: Request) -> JSONResponse:
    """Liveness for anyone; with API keys configured, how busy the server is only for a caller with a key, and how
    many turns its watchdog has ended since it started (`stalls`: a turn that produced nothing for too long)."""
    state: ServerState = request.app.state.localive
    body: dict[str, object] = {"status": "ok", "version": __version__}
    if _has_key(request, state):
        body["activeSessions"] = state.active_sessions
        body["stalls"] = state.stalls
        body["models"] = sorted(e.name for e in state.registry)
    return JSONResponse(body)


READY_STORE_TIMEOUT_S = 1.0  # /readyz's bound on the session store's answer


async def readyz(request: Request) -> JSONResponse:
    """Whether this process takes new sessions now (a load balancer's readiness probe): 200, or 503 with the
    reasons — draining (shutting down), at capacity (--max-sessions), overloaded (new sessions are refused for the
    load: server/load.py), the session store unreachable. The engines
    are loaded before the server listens, so a process that answers has them."""
    state: ServerState = request.app.state.localive
    reasons = []
    if state.draining:
        reasons.append("draining")
    if state.active_sessions >= state.settings.max_sessions:
        reasons.append("at capacity")
    if state.load.overloaded(state.active_sessions) is not None:
        reasons.append("overloaded")
    if state.store is not None:
        try:
            async with asyncio.timeout(READY_STORE_TIMEOUT_S):
                await state.store.ping()
        except Exception:  # noqa: BLE001 - any failure means "not ready"; the reason says which part
            reasons.append("session store unreachable")
    if reasons:
        return JSONResponse({"status": "unavailable", "reasons": reasons}, status_code=503)
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    """Prometheus metrics (server/metrics.py): for anyone on an open server; with API keys configured, only for a
    caller presenting one (as Prometheus does with `authorization: Bearer KEY`), else 401."""
    state: ServerState = request.app.state.localive
    if not _has_key(request, state, bearer=True):
        return PlainTextResponse("An API key is required.", status_code=401, headers={"www-authenticate": "Bearer"})
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE)


def _has_key(request: Request, state: ServerState, *, bearer: bool = False) -> bool:
    """The server is open, or the caller presents one of its API keys (`x-goog-api-key`, `?key=`, and with
    `bearer`, `authorization: Bearer KEY`). Ephemeral tokens do not count: they are for one Live session."""
    key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
    if not key and bearer:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else None
    return state.access.keys.accepts(key)  # open: anything


def create_app(state: ServerState, playground: PlaygroundMode = "local") -> Any:
    app = Starlette(routes=[
        Route("/healthz", healthz),
        Route("/readyz", readyz),


        Route("/metrics", metrics),
        WebSocketRoute(LIVE_PATH, live_endpoint),
        WebSocketRoute(LIVE_PATH + "Constrained", live_endpoint),  # ephemeral tokens (docs/protocol-notes.md)
        Route("/{version}/auth_tokens", create_token, methods=["POST"]),
        *playground_routes(playground),
    ])
    app.state.localive = state
    app.state.playground = playground
    settings = state.settings  # every request, the page and /healthz included, must name this server (origins.py)
    policy = OriginPolicy.build(settings.host, settings.allow_hosts, settings.allow_origins)
    return HostOriginGuard(CollapseSlashes(app), policy)
