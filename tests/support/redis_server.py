"""A throwaway `redis-server` on 127.0.0.1 for the tests: its own port and folder, AOF on (fsync always)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from localive.testing.server import free_port

MISSING = "redis-server is not installed: apt-get install redis-server (scripts/test.sh installs it)"


@dataclass
class RedisServer:
    directory: Path
    port: int
    appendonly: bool = True
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def start(cls, directory: Path, *, appendonly: bool = True) -> RedisServer:
        server = cls(directory, free_port(), appendonly)
        server.restart()
        return server

    def restart(self) -> None:
        """(Re)start on the same port and folder: an AOF left there is loaded."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(MISSING)  # the tests fail, never skip: CI installs it
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always", "--save", "",
             "--daemonize", "no", "--logfile", str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                with redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1) as client:
                    if client.ping() and client.info("persistence").get("loading") == 0:
                        return
            except redis.RedisError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {self.log_tail()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """`kill -9`: no shutdown, no final fsync."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self) -> str:
        log = self.directory / "redis.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-10:]) if log.exists() else "(no log)"
