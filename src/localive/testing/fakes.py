"""Deterministic engines with no models, for fast tests of apps and of session logic: the ones localive itself
ships and serves with (`localive serve --llm emulator`), imported here under one roof.

- `EmulatorLLM` / `EmulatorScript`: the scripted language model (replies, function calls, code, delays; its script
  format is documented in localive/engines/llm/emulator.py and README, "The emulator model");
- `ScriptedASR` (`ASRCall`): speech recognition that returns scripted texts, or what a function of the audio says;
- `ToneTTS` (`SynthesisRequest`): speech synthesis that returns a tone as long as the text, for every voice;
- `FakeEndOfTurn`: semantic end-of-turn detection with a fixed (or computed) probability;
- `EnergyVAD`: voice activity by loudness alone (a tone is speech, silence is not).

ToneTTS, FakeEndOfTurn and EnergyVAD need numpy (localive's `voice` extra).
"""

from __future__ import annotations

from localive.engines.asr.fake import ASRCall, ScriptedASR
from localive.engines.llm.emulator import EmulatorLLM, EmulatorScript
from localive.engines.tts.fake import SynthesisRequest, ToneTTS
from localive.engines.turn.base import FakeEndOfTurn
from localive.engines.vad.energy import EnergyVAD

__all__ = ["ASRCall", "EmulatorLLM", "EmulatorScript", "EnergyVAD", "FakeEndOfTurn", "ScriptedASR",
           "SynthesisRequest", "ToneTTS"]
