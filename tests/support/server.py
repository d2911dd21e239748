"""Start a real `localive serve` process on free ports, for tests and benchmarks."""

from __future__ import annotations

import os
import shlex
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    port: int
    plain_port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    log_file: Any = None
    env: dict[str, str] = field(default_factory=dict)  # what `eval "$(localive env)"` would export

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
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log_file is not None:
            self.log_file.close()


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
    workdir.mkdir(parents=True, exist_ok=True)
    port, plain_port = free_port(), free_port()
    data_dir = workdir / "data"
    log_path = workdir / "server.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "localive", "serve", "--port", str(port), "--plain-port", str(plain_port),
         "--data-dir", str(data_dir), *args],
        stdout=log_file, stderr=subprocess.STDOUT,
    )
    server = RunningServer(port, plain_port, data_dir, log_path, process, log_file)
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # health checks go straight to it
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"localive serve exited with {process.returncode}:\n{server.log()}")
        try:
            with no_proxy.open(f"http://127.0.0.1:{plain_port}/healthz", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.2)
    else:
        server.stop()
        raise RuntimeError(f"localive serve did not become healthy in {timeout_s} s:\n{server.log()}")
    server.env = localive_env(port, data_dir)
    return server
