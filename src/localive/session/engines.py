"""The engines a session uses, shared by all sessions of a server (loaded once)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

from localive.engines.asr.base import ASR
from localive.engines.llm.base import LLM
from localive.engines.llm.scoring import Scorer
from localive.engines.tts.base import TTS
from localive.engines.turn.base import EndOfTurn
from localive.engines.vad.base import VADFactory, VADLoad
from localive.engines.vision.base import Vision
from localive.models.registry import ModelEntry
from localive.tools.loader import ToolEngines


@dataclass(frozen=True)
class Engines:
    llm_for: Callable[[ModelEntry], LLM]
    asr: ASR | None = None
    tts: TTS | None = None
    vad_factory: VADFactory | None = None
    vad_executor: Executor | None = None  # where VAD frames are scored (None: the loop's default executor)
    vad_load: Callable[[], VADLoad] | None = None  # how busy a shared VAD is now (None: none to read)
    tools: ToolEngines = field(default_factory=ToolEngines)
    code_llm_for: Callable[[ModelEntry], LLM] | None = None  # codeExecution and thinking (None: llm_for)
    judge_for: Callable[[ModelEntry], Scorer] | None = None  # proactive audio's judge (None: proactiveAudio is refused)
    vision: Vision | None = None  # describes video frames (None: video input is refused)
    end_of_turn: EndOfTurn | None = None  # semantic turn-taking (None: silence-based VAD only)
    semantic_families: frozenset[str] = frozenset()  # model families whose sessions use it by default
    foresee: bool = True  # work ahead in the user's pauses (session/foresight.py)

    @property
    def hears(self) -> bool:
        return self.asr is not None and self.vad_factory is not None
