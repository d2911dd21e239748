"""A pytest plugin that puts a running localive in your app's tests: the `localive_server` fixture.

Installing localive registers it (a `pytest11` entry point named `localive`), so an app's suite needs no conftest:

    @pytest.mark.localive(script="tests/replies.toml")
    def test_my_app_answers(localive_server):
        assert "sunny" in my_app.ask("What's the weather?")    # genai.Client() reaches the emulator unmodified

`localive_server` yields a `LocaliveServer` (localive.testing.server) on free 127.0.0.1 ports and, for the test's
duration, sets what `eval "$(localive env)"` exports in `os.environ` (GOOGLE_GEMINI_BASE_URL, GEMINI_API_KEY,
SSL_CERT_FILE, NODE_EXTRA_CA_CERTS, NO_PROXY; GOOGLE_API_KEY and GOOGLE_GENAI_USE_VERTEXAI removed), so that a
`genai.Client()` made in the test and any subprocess it starts (the app under test) talk to that server.

What the server runs (`localive serve …`), from the `localive` markers on the test, its class and its module (the
nearest wins, key by key), then the ini options:

- `script="FILE"`: the emulator's script (`--emulator-script`); ini `localive_script`;
- `voice="off" | "emulator" | "embedded"`: `--voice` (default "off"); ini `localive_voice`;
- `replay="DIR"`: answer from the cassettes in DIR (`--replay`), with `timing="recorded" | "fast"`
  (`--replay-timing`); excludes `script` and `voice`;
- `args=[...]`: any other `serve` flags, after the ini's `localive_args` (a string, split like a shell's), so the
  marker's win.

With nothing configured: `localive serve --llm emulator --voice off` (the emulator's default reply, "You said: …").
Relative paths in `script`, `replay` and their ini options are taken from the folder of the ini file (pytest.ini,
pyproject.toml, …), else pytest's rootdir; paths inside `args` are passed as they are.

One server runs per distinct command line, for the whole session: started when a test first needs it (about a
second with the emulator), stopped when the session ends, its data and log (`server.log()`) in pytest's temporary
directory. A server that fails to start, or that has exited, fails the tests that need it with its log's tail.

This plugin does not turn on localive's leak watcher (localive.testing.pytest_plugin), which stays opt-in.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _pytest.nodes import Node  # pytest.Item's base, which FixtureRequest.node is (not exported by pytest)

from localive.testing.server import LaunchError, LocaliveServer, start_server

MARKER = "localive"
START_TIMEOUT_S = 120.0
KEYS = ("script", "voice", "replay", "timing", "args")
VOICES = ("off", "emulator", "embedded")
TIMINGS = ("recorded", "fast")
DROPPED_ENV = ("GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI")  # would send the SDK to a real key or to Vertex AI


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("localive_script", "the emulator script of localive_server's servers (a path; default: none)",
                  default="")
    parser.addini("localive_voice", "--voice of localive_server's servers: off (default), emulator or embedded",
                  default="off")
    parser.addini("localive_args", "more `localive serve` flags for localive_server's servers (split like a shell's)",
                  type="args", default=[])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(script=None, voice=None, replay=None, timing=None, args=()): "
                                       "the `localive serve` behind the localive_server fixture "
                                       "(localive.testing.fixtures)")


class ConfigError(ValueError):
    """A `localive` marker or ini option that does not make a command line: the test using it fails."""


def _base(config: pytest.Config) -> Path:
    return config.inipath.parent if config.inipath is not None else config.rootpath


def _marked(node: Node) -> dict[str, Any]:
    """The `localive` markers' keywords, the nearest marker's winning key by key."""
    found: dict[str, Any] = {}
    for mark in reversed(list(node.iter_markers(MARKER))):
        if mark.args:
            raise ConfigError(f"{node.nodeid}: @pytest.mark.localive takes keywords only ({', '.join(KEYS)})")
        unknown = sorted(set(mark.kwargs) - set(KEYS))
        if unknown:
            raise ConfigError(f"{node.nodeid}: @pytest.mark.localive has no {', '.join(unknown)} "
                              f"(it takes {', '.join(KEYS)})")
        found.update(mark.kwargs)
    return found


def serve_args(config: pytest.Config, marked: dict[str, Any]) -> tuple[str, ...]:
    """The `localive serve` flags for a test: its markers' keywords (`_marked`) over the ini options."""
    base = _base(config)
    args = [str(a) for a in config.getini("localive_args")]
    extra = marked.get("args", ())
    if isinstance(extra, str) or not all(isinstance(a, str | os.PathLike) for a in extra):
        raise ConfigError(f"@pytest.mark.localive(args=...) takes a list of strings, not {extra!r}")
    replay = marked.get("replay")
    if replay is not None:
        if marked.get("script") is not None or marked.get("voice") is not None:
            raise ConfigError("@pytest.mark.localive(replay=...) answers from cassettes: no script or voice with it")
        flags = ["--replay", str(base / replay)]
        if (timing := marked.get("timing")) is not None:
            if timing not in TIMINGS:
                raise ConfigError(f"@pytest.mark.localive(timing=...) is one of {', '.join(TIMINGS)}, not {timing!r}")
            flags += ["--replay-timing", timing]
    else:
        if marked.get("timing") is not None:
            raise ConfigError("@pytest.mark.localive(timing=...) goes with replay=...")
        voice = marked.get("voice") or config.getini("localive_voice") or "off"
        if voice not in VOICES:
            raise ConfigError(f"localive's voice is one of {', '.join(VOICES)}, not {voice!r}")
        flags = ["--llm", "emulator", "--voice", voice]
        script = marked.get("script") or config.getini("localive_script")
        if script:
            flags += ["--emulator-script", str(base / script)]
    return (*flags, *args, *(os.fspath(a) for a in extra))


@dataclass
class _Started:
    server: LocaliveServer | None
    failure: str = ""


class LocaliveServers:
    """The session's servers, one per command line, started on first use and stopped together."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self._factory = factory
        self._started: dict[tuple[str, ...], _Started] = {}

    def get(self, *args: str) -> LocaliveServer:
        """The running server for `localive serve ARGS` (started now if it is not yet); fails the test if it
        cannot be started or has exited."""
        shown = shlex.join(("localive", "serve", *args))
        started = self._started.get(args)
        if started is None:
            try:
                server = start_server(self._factory.mktemp("localive"), *args, timeout_s=START_TIMEOUT_S)
                started = _Started(server)
            except LaunchError as exc:
                started = _Started(None, f"{shown} did not start: {exc}")
            self._started[args] = started
        if started.server is None:
            pytest.fail(started.failure, pytrace=False)
        check_alive(started.server, shown)
        return started.server

    def stop(self) -> None:
        for started in self._started.values():
            if started.server is not None:
                started.server.stop()
        self._started.clear()


def check_alive(server: LocaliveServer, shown: str) -> None:
    code = server.process.process.poll()
    if code is not None:
        pytest.fail(f"{shown} (pid {server.pid}) has exited with status {code}; its log ends:\n{server.log_tail()}",
                    pytrace=False)


@pytest.fixture(scope="session")
def localive_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServers]:
    """The session's localive servers (`get(*serve_args)`), for fixtures of a wider scope than a test's."""
    servers = LocaliveServers(tmp_path_factory)
    yield servers
    servers.stop()


@pytest.fixture
def localive_server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                    localive_servers: LocaliveServers) -> Iterator[LocaliveServer]:
    """A running `localive serve` (see the `localive` marker), with its client settings in os.environ for the
    test."""
    try:
        args = serve_args(request.config, _marked(request.node))
    except ConfigError as exc:
        pytest.fail(str(exc), pytrace=False)
    server = localive_servers.get(*args)
    env = server.client_env()
    for name in DROPPED_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        if os.environ.get(name) != value:
            monkeypatch.setenv(name, value)
    yield server
    check_alive(server, shlex.join(("localive", "serve", *args)))
