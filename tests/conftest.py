from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localive.testing.server import LocaliveServer, start_server

# A test that leaves an asyncio task or a thread running fails (localive/testing/pytest_plugin.py).
pytest_plugins = ["localive.testing.pytest_plugin"]

EMULATOR_SCRIPT = Path(__file__).parent / "data" / "emulator_script.toml"
# The shared servers end turns on silence alone: their test speech is espeak-ng, whose flat intonation the
# semantic end-of-turn model does not read well (docs/turn-taking.md); semantic turn-taking has its own tests
# with the neural voice (tests/integration/test_turn_taking.py).
SILENCE_TURNS = ("--turn-taking", "silence")


@pytest.fixture(scope="session")
def emulator_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    """A real server process where every model name is served by the scripted emulator."""
    server = start_server(tmp_path_factory.mktemp("emulator-server"), "--llm", "emulator",
                          "--emulator-script", str(EMULATOR_SCRIPT), *SILENCE_TURNS)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    """A real server process with the default registry: Gemini names served by the embedded Qwen model."""
    server = start_server(tmp_path_factory.mktemp("llm-server"), "--url-allow", "127.0.0.1", *SILENCE_TURNS)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def whisper() -> Iterator[object]:
    """The embedded Whisper engine in the test process, to check what the server's audio says."""
    from localive.engines.asr.whisper import WhisperASR
    from localive.models.weights import WHISPER_BASE, ensure_model_dir

    asr = WhisperASR(ensure_model_dir(WHISPER_BASE, progress=False))
    asr.load()
    yield asr
    asr.close()
