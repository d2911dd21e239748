"""Load the embedded speech engines once per server: Silero VAD, Whisper ASR, hibari + piper TTS for English and
espeak-ng for other languages."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from localive.engines.asr.base import ASR
from localive.engines.llm.base import ModelNotInstalled
from localive.engines.tts.base import TTS
from localive.engines.turn.base import EndOfTurn
from localive.engines.vad.base import VADFactory

log = logging.getLogger("localive.engines")
VOICE_HINT = "pip install 'localive[voice]'"


@dataclass
class VoiceEngines:
    asr: ASR
    tts: TTS
    vad_factory: VADFactory
    vad_executor: ThreadPoolExecutor
    end_of_turn: EndOfTurn | None = None  # semantic turn-taking (Smart Turn v3.2), None: silence only

    def close(self) -> None:
        self.asr.close()
        self.tts.close()
        if self.end_of_turn is not None:
            self.end_of_turn.close()
        self.vad_executor.shutdown(wait=False, cancel_futures=True)


def load_voice_engines(*, progress: bool = True, semantic_turns: bool = True) -> VoiceEngines:
    """Load and warm every speech model now, so no session pays for it. Raises ModelNotInstalled.
    `semantic_turns`: also the end-of-turn model (Smart Turn v3.2)."""
    try:
        from localive.engines.asr.whisper import WhisperASR
        from localive.engines.tts.embedded import EmbeddedTTS
        from localive.engines.tts.espeak import EspeakTTS
        from localive.engines.tts.multilingual import MultilingualTTS
        from localive.engines.vad.silero import SileroVAD
        from localive.models.weights import WHISPER_BASE, ensure_model_dir
    except ImportError as exc:
        raise ModelNotInstalled(f"the speech engines are not installed ({exc.name}): {VOICE_HINT}") from exc
    started = time.monotonic()
    SileroVAD()  # fail now, not in the first session, if it cannot load
    asr = WhisperASR(ensure_model_dir(WHISPER_BASE, progress=progress))
    asr.load()
    fallback = EspeakTTS()
    tts = MultilingualTTS(EmbeddedTTS(), fallback)
    tts.load()
    if fallback.problem:
        log.warning("speech in other languages than English is off: %s", fallback.problem)
    end_of_turn = None
    if semantic_turns:
        from localive.engines.turn.smart_turn import SmartTurn

        end_of_turn = SmartTurn()
        end_of_turn.load()
    log.info("loaded speech engines (Silero VAD, Whisper base, hibari + piper, espeak-ng%s) in %.1f s",
             ", Smart Turn v3.2" if end_of_turn else "", time.monotonic() - started)
    return VoiceEngines(asr, tts, SileroVAD, ThreadPoolExecutor(max_workers=2, thread_name_prefix="vad"),
                        end_of_turn)
