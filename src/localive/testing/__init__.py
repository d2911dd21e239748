"""Tools for testing apps built on localive, and localive itself: used by localive's own tests/ and benchmarks/.

- a server launcher: `serve` (`with` / `async with`), `start_server`, `LocaliveServer` (localive.testing.server);
- test audio: `speech_pcm` (espeak-ng + sox), `room_noise` (localive.testing.speech); `silence`, `tone`,
  `audio_frame`, `tone_frame` (localive.testing.audio, no audio library needed); checks on what a user would
  notice: `word_error_rate`, `text_language` (localive.testing.text);
- the deterministic engines: `EmulatorLLM`, `EmulatorScript`, `ScriptedASR`, `ToneTTS`, `FakeEndOfTurn`,
  `EnergyVAD` (localive.testing.fakes);
- `VirtualClock`: time that moves only when the test moves it (localive.clock);
- a session harness: `SessionHarness`, `send`, `drain_turn` (localive.testing.session): a Live session driven in
  this process, without a server;
- a pytest plugin, localive.testing.pytest_plugin: fails a test that leaves an asyncio task or a thread running
  (opt-in);
- the `localive_server` fixture and `localive` marker (localive.testing.fixtures, loaded in every pytest suite where
  localive is installed: a `pytest11` entry point): a running server, with its client settings in os.environ;
- for Node tests, `startLocalive` (node/localive.mjs, an ES module shipped as package data; docs/testing.md).

Backends for the remote-engine options (llama-cpp-python's server, faster-whisper-server, local-tts-studio) are
started by localive.testing.backends; a closed-mouth hum for backchannel tests is localive.testing.hum.

Names are imported on first use: `import localive.testing` loads neither numpy nor pytest (a plain
`pip install localive` has neither). The speech helpers and some fakes need localive's `voice` extra; the plugin
needs pytest and pytest-asyncio.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localive.clock import VirtualClock
    from localive.testing.audio import audio_frame, silence, tone, tone_frame
    from localive.testing.fakes import (
        ASRCall,
        EmulatorLLM,
        EmulatorScript,
        EnergyVAD,
        FakeEndOfTurn,
        ScriptedASR,
        SynthesisRequest,
        ToneTTS,
    )
    from localive.testing.server import LaunchError, LocaliveServer, free_port, serve, start_server
    from localive.testing.session import SessionClosed, SessionHarness, drain_turn, send
    from localive.testing.speech import room_noise, speech_pcm, speech_wav
    from localive.testing.text import CLOSE_WER, text_language, word_error_rate

_WHERE = {
    "VirtualClock": "localive.clock",
    **dict.fromkeys(("ASRCall", "EmulatorLLM", "EmulatorScript", "EnergyVAD", "FakeEndOfTurn", "ScriptedASR",
                     "SynthesisRequest", "ToneTTS"), "localive.testing.fakes"),
    **dict.fromkeys(("LaunchError", "LocaliveServer", "free_port", "serve", "start_server"), "localive.testing.server"),
    **dict.fromkeys(("SessionClosed", "SessionHarness", "drain_turn", "send"), "localive.testing.session"),
    **dict.fromkeys(("audio_frame", "silence", "tone", "tone_frame"), "localive.testing.audio"),
    **dict.fromkeys(("room_noise", "speech_pcm", "speech_wav"), "localive.testing.speech"),
    **dict.fromkeys(("CLOSE_WER", "text_language", "word_error_rate"), "localive.testing.text"),
}

__all__ = [
    "CLOSE_WER",
    "ASRCall",
    "EmulatorLLM",
    "EmulatorScript",
    "EnergyVAD",
    "FakeEndOfTurn",
    "LaunchError",
    "LocaliveServer",
    "ScriptedASR",
    "SessionClosed",
    "SessionHarness",
    "SynthesisRequest",
    "ToneTTS",
    "VirtualClock",
    "audio_frame",
    "drain_turn",
    "free_port",
    "room_noise",
    "send",
    "serve",
    "silence",
    "speech_pcm",
    "speech_wav",
    "start_server",
    "text_language",
    "tone",
    "tone_frame",
    "word_error_rate",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'localive.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value
