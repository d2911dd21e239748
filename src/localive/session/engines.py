"""The engines a session uses, shared by all sessions of a server (loaded once)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

from localive.engines.asr.base import ASR
from localive.engines.llm.base import LLM
from localive.engines.tts.base import TTS
from localive.engines.vad.base import VADFactory
from localive.models.registry import ModelEntry


@dataclass(frozen=True)
class Engines:
    llm_for: Callable[[ModelEntry], LLM]
    asr: ASR | None = None
    tts: TTS | None = None
    vad_factory: VADFactory | None = None
    vad_executor: Executor | None = None  # where VAD frames are scored (None: the loop's default executor)

    @property
    def hears(self) -> bool:
        return self.asr is not None and self.vad_factory is not None
