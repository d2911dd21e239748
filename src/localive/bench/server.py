"""Start a real `localive serve` process on free ports: `localive bench`'s launcher, and the one under
localive.testing's `serve` / `start_server` (which add the client settings and a context manager).

It only ever talks to 127.0.0.1, and bypasses any HTTP proxy set in the environment.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
LIVE_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
_POLL_S = 0.2  # between health checks while the server loads its models


class BenchError(RuntimeError):
    """The benchmark cannot go on (the server failed, a session was refused, a wait timed out)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    port: int
    plain_port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def live_url(self) -> str:
        """The Live endpoint on the plain ws:// listener."""
        return f"ws://{HOST}:{self.plain_port}{LIVE_PATH}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def drain(self, timeout_s: float = 60.0) -> int:
        """SIGTERM, as an orchestrator stops a process: its sessions get goAway and it exits after --drain-s, or
        once they have left. Returns its exit status (killed after `timeout_s`)."""
        self.process.terminate()
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def stop(self) -> None:
        """Stop now: two SIGTERMs (the first would drain the open sessions for --drain-s: `drain` does that)."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _healthy(plain_port: int) -> bool:
    try:
        with _NO_PROXY.open(f"http://{HOST}:{plain_port}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def start_server(workdir: Path, *args: str, timeout_s: float = 300.0, command: str = "serve",
                 env: dict[str, str] | None = None) -> RunningServer:
    """Start `localive serve` (or `command`: relay) with `args` and return once /healthz answers (or raise
    BenchError). Admission by load is off unless `args` say `--admission load` (server/load.py). `env`: the
    process's environment (default: this one's)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port, plain_port = free_port(), free_port()
    data_dir = workdir / "data"
    log_path = workdir / "server.log"
    with log_path.open("wb") as log_file:  # the child keeps its own descriptor
        process = subprocess.Popen(
            # --admission off: a server for tests and benchmarks takes every session up to --max-sessions, however busy
            # the machine running them is (a later "--admission load" in `args` wins: argparse keeps the last)
            [sys.executable, "-m", "localive", command, "--host", HOST, "--port", str(port),
             "--plain-port", str(plain_port), "--data-dir", str(data_dir), "--admission", "off", *args],
            stdout=log_file, stderr=subprocess.STDOUT, env=env,
        )
    server = RunningServer(port, plain_port, data_dir, log_path, process)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _healthy(plain_port):
            return server
        try:  # wait for the next poll, returning at once if the server exits
            process.wait(timeout=_POLL_S)
        except subprocess.TimeoutExpired:
            continue
        raise BenchError(f"localive {command} exited with {process.returncode}:\n{server.log_tail()}")
    server.stop()
    raise BenchError(f"localive {command} did not become healthy in {timeout_s:.0f} s:\n{server.log_tail()}")
