"""What the remote speech engines (and the remote vision stage, engines/vision/openai.py) share: the failure a
session reports, API keys from the environment, the start-up reachability check, their HTTP client, admission of
new sessions, and the stages `serve` was asked to run remotely.

A remote stage that fails mid-turn raises `BackendFailed`: the session closes with 1011 and a reason that names
the stage and the kind of failure (HTTP status, timeout, unreachable), never the URL, a key or the server's reply
text. Keys come only from environment variables (LOCALIVE_ASR_API_KEY, LOCALIVE_TTS_API_KEY,
LOCALIVE_VISION_API_KEY) and are never logged.

Admission, as for a remote LLM (engines/remote_backend.py): a stage that is down (it did not answer at start,
with --asr-may-start-down / --tts-may-start-down, or a connection to it was refused during a turn) refuses the new
sessions that would use it with 1013 until it answers again (asked at most every 2 s, when a new session comes);
with a concurrency limit, a session beyond it is refused with 1013 too.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from localive.engines.remote_backend import BackendHealth, SessionSlots
from localive.protocol.errors import InternalError

log = logging.getLogger("localive.engines")

ASR_STAGE = "speech recognition"
TTS_STAGE = "speech synthesis"
ASR_KEY_ENV = "LOCALIVE_ASR_API_KEY"
TTS_KEY_ENV = "LOCALIVE_TTS_API_KEY"
VISION_STAGE = "vision"
VISION_KEY_ENV = "LOCALIVE_VISION_API_KEY"
CONNECT_TIMEOUT_S = 5.0


class BackendFailed(InternalError):
    """A remote stage failed: ends the session with 1011 and a reason naming the stage (no URL, no key)."""

    def __init__(self, stage: str, what: str) -> None:
        self.stage = stage
        super().__init__(f"The {stage} backend failed: {what}.")


def describe_failure(exc: BaseException) -> str:
    """A short, secret-free description of an HTTP failure."""
    if isinstance(exc, httpx2.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, httpx2.TimeoutException):
        return "timed out"
    if isinstance(exc, (httpx2.ConnectError, httpx2.RemoteProtocolError, httpx2.ReadError, httpx2.WriteError)):
        return "connection failed"
    return type(exc).__name__


def auth_headers(key_env: str) -> dict[str, str]:
    key = os.environ.get(key_env, "").strip()
    return {"Authorization": f"Bearer {key}"} if key else {}


def timeouts(read_s: float) -> httpx2.Timeout:
    """Connect within CONNECT_TIMEOUT_S; each read (the first byte of the answer included) within `read_s`."""
    return httpx2.Timeout(read_s, connect=CONNECT_TIMEOUT_S)


def answered(status_code: int) -> bool:
    """Whether an answer to GET /models shows a usable server: any HTTP answer but 401/403 (not every server has
    /models)."""
    return status_code not in (401, 403)


def check_reachable(base_url: str, stage: str, key_env: str) -> tuple[str, bool] | None:
    """None when a server answers at `base_url` (see `answered`); otherwise one line saying what is wrong (no key,
    no URL credentials) and whether the server did not answer at all (rather than refusing the key)."""
    try:
        response = httpx2.get(base_url.rstrip("/") + "/models", headers=auth_headers(key_env),
                              timeout=httpx2.Timeout(CONNECT_TIMEOUT_S))
    except httpx2.HTTPError as exc:
        return f"the {stage} backend at {redact(base_url)} is not reachable ({describe_failure(exc)})", True
    if not answered(response.status_code):
        return (f"the {stage} backend at {redact(base_url)} refused the API key (HTTP {response.status_code}; "
                f"set {key_env})"), False
    return None


def redact(url: str) -> str:
    """The URL without credentials in it (user:password@)."""
    try:
        parsed = httpx2.URL(url)
    except Exception:  # noqa: BLE001 - an unparsable URL is reported as such, not echoed
        return "(invalid URL)"
    return str(parsed.copy_with(username=None, password=None)) if parsed.userinfo else url


def load_voice_map(path: Path | None) -> dict[str, str]:
    """Live voice name → server voice name, from a TOML file of `LiveName = "server-voice"` lines (a `"*"` entry
    applies to every voice not listed). Raises ValueError."""
    if path is None:
        return {}
    import tomllib

    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"--tts-voice-map {path}: {exc}") from exc
    table = data.get("voices", data)
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise ValueError(f"--tts-voice-map {path}: expected lines such as Puck = \"onyx\"")
    return {str(k): str(v) for k, v in table.items()}


class RemoteSpeechEngine:
    """The part of a remote speech engine that is not its endpoint: one HTTP client per event loop, whether the
    server is down (`reachable`, for the session's admission) and its session slots."""

    def __init__(self, base_url: str, stage: str, key_env: str, *, timeout_s: float,
                 max_sessions: int | None) -> None:
        self.stage = stage
        self._base_url = base_url.rstrip("/")
        self._key_env = key_env
        self._timeout = timeouts(timeout_s)
        self._client: httpx2.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.slots = SessionSlots(max_sessions)
        self.health = BackendHealth(self._answers, timeout_s=CONNECT_TIMEOUT_S)

    def _http(self) -> httpx2.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:  # one client (its connection pool) per event loop
            self._client = httpx2.AsyncClient(timeout=self._timeout)
            self._loop = loop
        return self._client

    async def reachable(self) -> bool:
        """Whether a new session may use this stage (remote_backend.BackendHealth)."""
        return await self.health.reachable()

    async def _answers(self) -> bool:
        response = await self._http().get(self._base_url + "/models", headers=auth_headers(self._key_env))
        return answered(response.status_code)

    def _failed(self, exc: httpx2.HTTPError) -> BackendFailed:
        """The session's failure for a request that failed; a refused connection also marks the stage down."""
        log.warning("%s backend: %s", self.stage, describe_failure(exc))
        self.health.failed(exc)
        return BackendFailed(self.stage, describe_failure(exc))

    def close(self) -> None:
        """Forget the client: `serve` closes its event loop (and with it the connections) before this."""
        self._client = None
        self._loop = None


@dataclass(frozen=True)
class StartCheck:
    """What `serve` learns about its remote speech stages at start."""

    problems: tuple[str, ...] = ()  # one line each; serve stops with the first
    down: frozenset[str] = frozenset()  # stages that do not answer yet and may start down (ASR_STAGE, TTS_STAGE)
    down_lines: tuple[str, ...] = ()  # one line for each of those, saying what is wrong


@dataclass(frozen=True)
class RemoteSpeech:
    """What `serve` was asked to run remotely (None: that stage is embedded)."""

    asr_url: str | None = None
    asr_model: str | None = None
    tts_url: str | None = None
    tts_model: str | None = None
    tts_voice_map: Path | None = None
    tts_format: str = "wav"
    tts_languages: tuple[str, ...] = ("en",)
    timeout_s: float = 30.0
    asr_may_start_down: bool = False  # a server down at start: serve starts, its sessions get 1013 until it answers
    tts_may_start_down: bool = False
    asr_max_sessions: int | None = None  # sessions using the stage at once; more are refused with 1013
    tts_max_sessions: int | None = None

    def check(self) -> StartCheck:
        """Each remote stage's configuration, and whether its server answers now. A server that does not answer
        is a problem unless its stage may start down; a refused key or a missing model always is."""
        problems: list[str] = []
        down: dict[str, str] = {}
        for stage, url, model, key, may_start_down in (
                (ASR_STAGE, self.asr_url, self.asr_model, ASR_KEY_ENV, self.asr_may_start_down),
                (TTS_STAGE, self.tts_url, self.tts_model, TTS_KEY_ENV, self.tts_may_start_down)):
            if url is None:
                continue
            if not model:
                flag = "--asr-model" if stage == ASR_STAGE else "--tts-model"
                problems.append(f"the {stage} backend needs a model name ({flag})")
                continue
            found = check_reachable(url, stage, key)
            if found is None:
                continue
            line, unreachable = found
            if unreachable and may_start_down:
                down[stage] = line
            else:
                problems.append(line)
        return StartCheck(tuple(problems), frozenset(down), tuple(down.values()))
