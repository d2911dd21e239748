"""A real `localive serve` process on free 127.0.0.1 ports, for tests: start it, wait until it answers, stop it.

    with serve("--llm", "emulator") as server:          # or: async with serve(...) as server:
        env = server.client_env()                       # what `eval "$(localive env)"` exports, for an SDK client

`serve` starts the server on entering the `with` (in a worker thread under `async with`, so the event loop keeps
running while the models load) and stops it on leaving. `start_server` is the same without the context manager,
for fixtures that stop the server themselves. The process runs `python -m localive serve` with this interpreter,
its data (TLS certificates, keys, sessions) in `workdir` (a temporary directory removed at the end when none is
given), its output in `workdir/server.log`. The launcher itself is `localive bench`'s (localive/bench/server.py).
It starts the server with `--admission off`: a test server takes every session up to `--max-sessions` however busy
the machine running the tests is (pass `--admission load` to test that rule: the last flag wins).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType

from localive.bench import server as launcher
from localive.bench.server import HOST, BenchError, free_port

__all__ = ["HOST", "LaunchError", "LocaliveServer", "free_port", "localive_env", "serve", "start_relay",
           "start_server"]

LaunchError = BenchError  # raised when the server exits or does not become healthy (a RuntimeError)


class LocaliveServer:
    """A started `localive serve`: its ports and URLs, the client settings `localive env` gives, its log."""

    def __init__(self, process: launcher.RunningServer, env: dict[str, str],
                 own_dir: tempfile.TemporaryDirectory[str] | None = None) -> None:
        self.process = process
        self.env = env  # what `eval "$(localive env)"` would export (GOOGLE_GEMINI_BASE_URL, the key, the CA, …)
        self._own_dir = own_dir

    @property
    def port(self) -> int:
        """The TLS listener (https://, wss://): what SDKs configured by `localive env` use."""
        return self.process.port

    @property
    def plain_port(self) -> int:
        """The plain listener (http://, ws://) on 127.0.0.1."""
        return self.process.plain_port

    @property
    def data_dir(self) -> Path:
        return self.process.data_dir

    @property
    def base_url(self) -> str:
        return f"https://{HOST}:{self.port}"

    @property
    def plain_base_url(self) -> str:
        return f"http://{HOST}:{self.plain_port}"

    @property
    def live_url(self) -> str:
        """The Live API's WebSocket endpoint on the plain listener (a raw client needs no key or TLS there)."""
        return self.process.live_url

    @property
    def pid(self) -> int:
        return self.process.pid

    def client_env(self) -> dict[str, str]:
        """This process's environment with the server's client settings (and without a real Gemini key): the
        environment an app or SDK client runs in to talk to this server."""
        env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
        env.update(self.env)
        env["NO_PROXY"] = "127.0.0.1,localhost"
        return env

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts the server's own certificate authority (for a raw client on the TLS listener)."""
        return ssl.create_default_context(cafile=str(self.data_dir / "tls" / "ca.pem"))

    def log(self) -> str:
        """Everything the server has logged so far."""
        return self.process.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines)

    def stop(self) -> None:
        """Terminate the server (kill it after 15 s) and remove its temporary directory, if it made one."""
        self.process.stop()
        if self._own_dir is not None:
            self._own_dir.cleanup()
            self._own_dir = None

    def __enter__(self) -> LocaliveServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


def localive_env(port: int, data_dir: Path) -> dict[str, str]:
    """Run `localive env` for this server and parse its export lines, as `eval` would."""
    clean = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    out = subprocess.run([sys.executable, "-m", "localive", "env", "--port", str(port), "--data-dir", str(data_dir)],
                         check=True, capture_output=True, text=True, env=clean).stdout
    env = {}
    for line in out.splitlines():
        if not line.startswith("export "):
            raise LaunchError(f"unexpected line from `localive env`: {line!r}")
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = shlex.split(value)[0]
    return env


def start_server(workdir: Path | None, *args: str, timeout_s: float = 300.0, command: str = "serve",
                 env: dict[str, str] | None = None) -> LocaliveServer:
    """Start `localive serve ARGS` (or `localive COMMAND ARGS`: `relay`) and return once it is healthy (LaunchError
    if it exits or takes longer than `timeout_s`). `workdir` holds its data and log; None: a temporary directory,
    removed by `stop()`. `env`: the process's environment (default: this one's)."""
    own_dir = tempfile.TemporaryDirectory(prefix="localive-test-") if workdir is None else None
    where = Path(own_dir.name) if own_dir is not None else workdir
    assert where is not None
    try:
        process = launcher.start_server(where, *args, timeout_s=timeout_s, command=command, env=env)
        try:
            return LocaliveServer(process, localive_env(process.port, process.data_dir), own_dir)
        except BaseException:
            process.stop()
            raise
    except BaseException:
        if own_dir is not None:
            own_dir.cleanup()
        raise


def start_relay(workdir: Path | None, upstream: LocaliveServer, *args: str, upstream_key: str | None = None,
                timeout_s: float = 60.0) -> LocaliveServer:
    """Start `localive relay ARGS` in front of `upstream` (another localive, on its plain listener) and return once
    it is healthy. The relay's GEMINI_API_KEY: `upstream_key`, else the key `localive env` gives for it."""
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    if key := upstream_key or upstream.env.get("GEMINI_API_KEY"):
        env["GEMINI_API_KEY"] = key
    return start_server(workdir, "--upstream", upstream.plain_base_url, *args, timeout_s=timeout_s, command="relay",
                        env=env)


def _stop_started(starting: asyncio.Future[LocaliveServer]) -> None:
    if not starting.cancelled() and starting.exception() is None:
        starting.result().stop()


class serve:  # used like a function: `with serve(...)`
    """`with serve(*args) as server:` / `async with serve(*args) as server:` — `localive serve ARGS` running
    for the block (see the module's doc)."""

    def __init__(self, *args: str, workdir: Path | None = None, timeout_s: float = 300.0,
                 command: str = "serve") -> None:
        self._args = args
        self._workdir = workdir
        self._timeout_s = timeout_s
        self._command = command
        self._server: LocaliveServer | None = None

    def __enter__(self) -> LocaliveServer:
        self._server = start_server(self._workdir, *self._args, timeout_s=self._timeout_s, command=self._command)
        return self._server

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    async def __aenter__(self) -> LocaliveServer:
        starting = asyncio.ensure_future(asyncio.to_thread(start_server, self._workdir, *self._args,
                                                           timeout_s=self._timeout_s, command=self._command))
        try:
            self._server = await asyncio.shield(starting)
        except asyncio.CancelledError:  # the start goes on in its thread: stop the server it brings up
            starting.add_done_callback(_stop_started)
            raise
        return self._server

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await asyncio.to_thread(server.stop)
