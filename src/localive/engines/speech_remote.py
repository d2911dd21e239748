"""What the remote speech engines (and the remote vision stage, engines/vision/openai.py) share: the failure a
session reports, API keys from the environment, the start-up reachability check, and loading the stages `serve`
was asked to run remotely.

A remote stage that fails mid-turn raises `BackendFailed`: the session closes with 1011 and a reason that names
the stage and the kind of failure (HTTP status, timeout, unreachable), never the URL, a key or the server's reply
text. Keys come only from environment variables (LOCALIVE_ASR_API_KEY, LOCALIVE_TTS_API_KEY,
LOCALIVE_VISION_API_KEY) and are never logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from localive.protocol.errors import InternalError

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


def check_reachable(base_url: str, stage: str, key_env: str) -> str | None:
    """None when a server answers at `base_url` (any HTTP answer but 401/403: not every server has /models);
    otherwise one line saying what is wrong (no key, no URL credentials)."""
    try:
        response = httpx2.get(base_url.rstrip("/") + "/models", headers=auth_headers(key_env),
                              timeout=httpx2.Timeout(CONNECT_TIMEOUT_S))
    except httpx2.HTTPError as exc:
        return f"the {stage} backend at {redact(base_url)} is not reachable ({describe_failure(exc)})"
    if response.status_code in (401, 403):
        return (f"the {stage} backend at {redact(base_url)} refused the API key (HTTP {response.status_code}; "
                f"set {key_env})")
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

    def problems(self) -> list[str]:
        """One line for each remote stage that is misconfigured or not reachable now."""
        lines = []
        for stage, url, model, key in ((ASR_STAGE, self.asr_url, self.asr_model, ASR_KEY_ENV),
                                       (TTS_STAGE, self.tts_url, self.tts_model, TTS_KEY_ENV)):
            if url is None:
                continue
            if not model:
                flag = "--asr-model" if stage == ASR_STAGE else "--tts-model"
                lines.append(f"the {stage} backend needs a model name ({flag})")
                continue
            problem = check_reachable(url, stage, key)
            if problem:
                lines.append(problem)
        return lines
