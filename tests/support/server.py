"""A real `localive serve` process on free ports for the tests: the bench's launcher plus client settings."""

from __future__ import annotations

import os
import shlex
import ssl
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from google import genai

from localive.bench import server as launcher


@dataclass
class RunningServer:
    process: launcher.RunningServer
    env: dict[str, str] = field(default_factory=dict)  # what `eval "$(localive env)"` would export

    @property
    def port(self) -> int:
        return self.process.port

    @property
    def plain_port(self) -> int:
        return self.process.plain_port

    @property
    def data_dir(self) -> Path:
        return self.process.data_dir

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def plain_base_url(self) -> str:
        return f"http://127.0.0.1:{self.plain_port}"

    def client_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
        env.update(self.env)
        env["NO_PROXY"] = "127.0.0.1,localhost"
        return env

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.data_dir / "tls" / "ca.pem"))

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.stop()


def sdk_client(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> genai.Client:
    """A google-genai client configured as an app would be after `eval "$(localive env)"`."""
    for name, value in server.client_env().items():
        monkeypatch.setenv(name, value)
    return genai.Client()


def localive_env(port: int, data_dir: Path) -> dict[str, str]:
    """Run `localive env` and parse its export lines, as `eval` would."""
    clean = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    out = subprocess.run([sys.executable, "-m", "localive", "env", "--port", str(port), "--data-dir", str(data_dir)],
                         check=True, capture_output=True, text=True, env=clean).stdout
    env = {}
    for line in out.splitlines():
        assert line.startswith("export "), line
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = shlex.split(value)[0]
    return env


def start_server(workdir: Path, *args: str, timeout_s: float = 300.0) -> RunningServer:
    process = launcher.start_server(workdir, *args, timeout_s=timeout_s)
    return RunningServer(process, localive_env(process.port, process.data_dir))
