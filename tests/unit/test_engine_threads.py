"""`localive serve --llm-threads/--asr-threads/--tts-threads` and `localive bench --server-arg`: parsed, and handed
to the embedded engines' constructors (which only keep the count: nothing is loaded here); and a turn's prompt
counted off the event loop where counting takes time."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from localive.cli import build_parser, main
from localive.engines.llm.base import ChatMessage, FunctionSpec
from localive.session.prompt import count_prompt_tokens


def test_serve_thread_options_default_to_the_engines_own_choice() -> None:
    args = build_parser().parse_args(["serve"])
    assert (args.llm_threads, args.asr_threads, args.tts_threads) == (None, None, None)
    args = build_parser().parse_args(["serve", "--llm-threads", "1", "--asr-threads=2", "--tts-threads", "3"])
    assert (args.llm_threads, args.asr_threads, args.tts_threads) == (1, 2, 3)


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_serve_thread_options_refuse_what_is_not_a_positive_count(value: str,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--llm-threads", value])
    assert "--llm-threads" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["--llm-url", "http://127.0.0.1:9/v1", "--llm-threads", "2"], "--llm-threads is for the embedded LLM"),
    (["--voice", "off", "--asr-threads", "2"], "--asr-threads is for the embedded Whisper, not with --voice off"),
    (["--voice", "emulator", "--tts-threads", "2"], "--tts-threads is for the embedded voices, not with --voice"),
    (["--tts-url", "http://127.0.0.1:9/v1", "--tts-model", "m", "--tts-threads", "2"], "not with --tts-url"),
])
def test_serve_refuses_threads_for_an_engine_it_does_not_run(argv: list[str], message: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", *argv]) == 2  # before anything is loaded or listened on
    assert message in capsys.readouterr().err


def test_serve_help_names_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = capsys.readouterr().out
    for flag in ("--llm-threads", "--asr-threads", "--tts-threads"):
        assert flag in text
    assert "measured" in text


def test_engines_keep_the_given_thread_count_or_their_default(tmp_path: Path) -> None:
    from localive.engines.asr.whisper import WhisperASR
    from localive.engines.llm.llama import LlamaLLM
    from localive.engines.tts.embedded import EmbeddedTTS

    assert LlamaLLM(tmp_path / "model.gguf", name="m").n_threads == max(1, min(4, os.cpu_count() or 1))
    assert LlamaLLM(tmp_path / "model.gguf", name="m", n_threads=1).n_threads == 1
    assert WhisperASR(tmp_path, cpu_threads=None).cpu_threads == 1  # the short window's measured default
    assert WhisperASR(tmp_path, cpu_threads=2).cpu_threads == 2
    assert EmbeddedTTS().threads == 1
    assert EmbeddedTTS(threads=2).threads == 2


def test_bench_server_args_are_repeatable_and_kept_in_order() -> None:
    args = build_parser().parse_args(["bench"])
    assert args.server_arg == []
    args = build_parser().parse_args(["bench", "--server-arg=--llm-threads=1", "--server-arg=--asr-threads=2",
                                      "--server-arg", "off"])
    assert args.server_arg == ["--llm-threads=1", "--asr-threads=2", "off"]


class _Counter:
    """An LLM's token counting only (all `count_prompt_tokens` needs), recording the thread it ran on."""

    def __init__(self, on_a_thread: bool) -> None:
        self.counts_on_a_thread = on_a_thread
        self.threads: list[int] = []

    def count_prompt_tokens(self, messages: list[ChatMessage], functions: Sequence[FunctionSpec] = ()) -> int:
        self.threads.append(threading.get_ident())
        return len(messages)


async def test_a_prompt_is_counted_off_the_event_loop_when_the_llm_says_counting_takes_time() -> None:
    messages = [ChatMessage("user", "Hello")]
    slow, fast = _Counter(True), _Counter(False)
    assert await count_prompt_tokens(slow, messages, ()) == 1  # type: ignore[arg-type]
    assert await count_prompt_tokens(fast, messages, ()) == 1  # type: ignore[arg-type]
    assert slow.threads != [threading.get_ident()]
    assert fast.threads == [threading.get_ident()]  # the emulator's count stays in the loop's (virtual) time


_MATMUL_THREADS = """
import os, sys, time
import numpy as np
from localive.engines.blas import limit_blas_threads
if sys.argv[1] == "limited":
    print("limits", limit_blas_threads(1))
def others_cpu_ns():  # CPU time of every thread but this one
    me, total = str(os.getpid()), 0
    for tid in os.listdir("/proc/self/task"):
        if tid != me:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
    return total
a = np.random.default_rng(0).random((600, 600))
time.sleep(0.5)  # helpers that were busy before (loading, the random numbers) have gone to sleep
before = others_cpu_ns()
for _ in range(10):
    a @ a
print("helpers ms", round((others_cpu_ns() - before) / 1e6))
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir() or (os.cpu_count() or 1) < 2, reason="needs /proc, 2 cores")
def test_the_server_keeps_numpys_blas_on_one_thread() -> None:
    """The voice engines' small matrix products run on the calling thread: no BLAS helper thread takes CPU that
    llama.cpp needs (engines/blas.py). Without the limit, the same products keep helpers busy."""
    import subprocess
    import sys

    def helpers_ms(mode: str) -> int:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.pop(name, None)
        done = subprocess.run([sys.executable, "-c", _MATMUL_THREADS, mode], capture_output=True, text=True,
                              env=env, timeout=120, check=True)
        if mode == "limited":
            assert "limits [1]" in done.stdout, done.stdout
        return int(done.stdout.rsplit("helpers ms", 1)[1])

    if helpers_ms("default") <= 10:
        pytest.skip("numpy's BLAS uses no helper threads on this machine: nothing to limit")
    assert helpers_ms("limited") <= 2
