"""``POST /{version}/auth_tokens``: mint an ephemeral token (docs/protocol-notes.md#ephemeral-tokens).

The body is an AuthToken as the SDKs send it (``client.auth_tokens.create``, ``ai.authTokens.create``): ``uses``,
``expireTime``, ``newSessionExpireTime``, ``bidiGenerateContentSetup`` and ``fieldMask``. Errors are Google REST
errors: ``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from localive.protocol import messages as wire
from localive.protocol.errors import LiveError
from localive.protocol.keys import normalise_keys
from localive.protocol.parse import describe_validation_error
from localive.server.auth import (
    INVALID_KEY,
    MISSING_KEY,
    Token,
    TokenStoreFull,
    TokenStoreUnavailable,
    is_token,
    mask_path,
    new_token_name,
    principal_of,
)
from localive.server.live_ws import API_VERSIONS
from localive.server.state import ServerState

log = logging.getLogger("localive.access")

DEFAULT_EXPIRE_S = 30 * 60.0
DEFAULT_NEW_SESSION_S = 60.0
MAX_AHEAD_S = 20 * 3600.0  # every time must be less than 20 hours ahead
MAX_BODY_BYTES = 128 * 1024
MAX_SETUP_BYTES = 64 * 1024  # a locked bidiGenerateContentSetup, as compact JSON (kept with the token)
STORE_UNAVAILABLE = "The token store is unavailable; try again later."
_FIELDS = {"name", "uses", "expireTime", "newSessionExpireTime", "bidiGenerateContentSetup", "fieldMask"}
_SETUP_FIELDS = frozenset(f.alias for f in wire.Setup.model_fields.values() if f.alias)
_GENERATION_FIELDS = frozenset(f.alias for f in wire.GenerationConfig.model_fields.values() if f.alias)


class BadRequest(Exception):
    """The request body is not a valid AuthToken (HTTP 400)."""


@dataclass(frozen=True)
class TokenRequest:
    uses: int
    expire_at: float
    new_session_until: float
    setup: dict[str, Any] | None
    field_mask: tuple[str, ...] | None


def parse_token_request(body: object, now: float) -> TokenRequest:
    """Validate an AuthToken body and fill in the defaults (uses 1, expiry in 30 min, new sessions for 60 s)."""
    if not isinstance(body, dict):
        raise BadRequest("Invalid JSON payload received: expected an object.")
    try:
        fields = normalise_keys(body)
    except LiveError as exc:
        raise BadRequest(exc.reason) from None
    if unknown := sorted(set(fields) - _FIELDS):
        raise BadRequest(f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.')
    uses = fields.get("uses", 1)
    if isinstance(uses, str) and uses.isdigit():
        uses = int(uses)
    if not isinstance(uses, int) or isinstance(uses, bool) or uses < 0:
        raise BadRequest("uses must be a whole number >= 0 (0: unlimited).")
    expire_at = _time(fields, "expireTime", now, now + DEFAULT_EXPIRE_S)
    # a new session cannot start after the token expires: a later newSessionExpireTime is cut to expireTime (and
    # the answer says so), instead of being echoed back as if it held
    new_session_until = min(_time(fields, "newSessionExpireTime", now, now + DEFAULT_NEW_SESSION_S), expire_at)
    return TokenRequest(uses, expire_at, new_session_until, _setup(fields.get("bidiGenerateContentSetup")),
                        _field_mask(fields.get("fieldMask")))


def _time(fields: dict[str, Any], name: str, now: float, default: float) -> float:
    value = fields.get(name)
    if value is None:
        return default
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise BadRequest(f"Invalid value at '{name}': expected an RFC 3339 time.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = moment.timestamp()
    if seconds <= now:
        raise BadRequest(f"{name} must be in the future.")
    if seconds >= now + MAX_AHEAD_S:
        raise BadRequest(f"{name} must be less than 20 hours in the future.")
    return seconds


def _setup(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest("Invalid value at 'bidiGenerateContentSetup': expected an object.")
    if len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")) > MAX_SETUP_BYTES:
        raise BadRequest(f"bidiGenerateContentSetup is larger than {MAX_SETUP_BYTES // 1024} KiB.")
    try:  # the model may be left to the client: check the rest with a stand-in
        wire.Setup.model_validate({"model": "models/any", **value})
    except ValidationError as exc:
        raise BadRequest(describe_validation_error("bidiGenerateContentSetup", exc)) from None
    return value


def _field_mask(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise BadRequest("fieldMask must be a comma-separated string of field paths.")
    paths: list[str] = []
    for item in items:
        if not item.strip():
            continue
        parts = mask_path(item)
        if not all(parts):
            raise BadRequest(f'Invalid field mask path "{item.strip()}".')
        if parts[0] not in _SETUP_FIELDS:
            if parts[0] not in _GENERATION_FIELDS:
                raise BadRequest(f'Invalid field mask path "{item.strip()}": not a setup field.')
            parts = ("generationConfig", *parts)  # e.g. lockAdditionalFields=['temperature'] from JS
        paths.append(".".join(parts))
    return tuple(dict.fromkeys(paths)) or None


def rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def error(code: int, status: str, message: str, reason: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message, "status": status}
    if reason:
        body["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                            "domain": "googleapis.com"}]
    return JSONResponse({"error": body}, status_code=code)


async def create_token(request: Request) -> JSONResponse:
    state: ServerState = request.app.state.localive
    version = request.path_params["version"]
    if version not in API_VERSIONS:
        return error(404, "NOT_FOUND", f"API version {version} is not supported.")
    key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
    if is_token(key):
        return error(403, "PERMISSION_DENIED", "Ephemeral tokens cannot create tokens; use an API key.")
    if not state.access.keys.accepts(key):
        if not key:
            return error(401, "UNAUTHENTICATED", MISSING_KEY)
        return error(400, "INVALID_ARGUMENT", INVALID_KEY, "API_KEY_INVALID")
    principal = principal_of(key)
    try:
        body = await _json_body(request)
        spec = parse_token_request(body, state.access.clock.time())
    except BadRequest as exc:
        return error(400, "INVALID_ARGUMENT", str(exc))
    name = new_token_name()
    token = Token(spec.expire_at, spec.new_session_until, spec.uses, principal, spec.setup, spec.field_mask)
    try:
        await state.access.tokens.add(name, token, state.access.clock.time())
    except TokenStoreFull:
        return error(429, "RESOURCE_EXHAUSTED", "Too many ephemeral tokens of this key are active; try again "
                     "later.")
    except TokenStoreUnavailable:
        return error(503, "UNAVAILABLE", STORE_UNAVAILABLE)
    log.info('"POST %s" principal=%s uses=%d locked=%s', request.url.path, principal, spec.uses,
             "none" if spec.setup is None and spec.field_mask is None else "yes")
    return JSONResponse({"name": name, "expireTime": rfc3339(spec.expire_at),
                         "newSessionExpireTime": rfc3339(spec.new_session_until), "uses": spec.uses})


async def _json_body(request: Request) -> object:
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise BadRequest("Request payload size exceeds the limit.")
    if not data.strip():
        return {}
    try:
        return json.loads(bytes(data))
    except (ValueError, RecursionError):
        raise BadRequest("Invalid JSON payload received.") from None
