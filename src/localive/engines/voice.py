"""Load the speech engines once per server: Silero VAD, Whisper ASR, hibari + piper TTS for English and
espeak-ng for other languages; or, stage by stage, recognition and synthesis on OpenAI-compatible servers
(engines/speech_remote.py); or the deterministic emulator (`--voice emulator`, `load_emulator_voice`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from localive.engines.asr.base import ASR
from localive.engines.asr.emulator import EmulatorHearing
from localive.engines.speech_remote import ASR_STAGE, TTS_STAGE, RemoteSpeech, load_voice_map
from localive.engines.tts.base import TTS
from localive.engines.turn.base import EndOfTurn
from localive.engines.vad.base import VADFactory, VADLoad
from localive.models.errors import ModelNotInstalled

log = logging.getLogger("localive.engines")
VOICE_HINT = "pip install 'localive[voice]'"
EMULATOR_HINT = "pip install 'localive[voice-emulator]'"


@dataclass
class VoiceEngines:
    asr: ASR
    tts: TTS
    vad_factory: VADFactory
    vad_executor: ThreadPoolExecutor
    end_of_turn: EndOfTurn | None = None  # semantic turn-taking (Smart Turn v3.2), None: silence only
    vad_close: Callable[[], None] | None = None  # stops the shared VAD worker (the batched Silero VAD)
    vad_load: Callable[[], VADLoad] | None = None  # how busy the shared VAD is (server/load.py, metrics)

    def close(self) -> None:
        if self.vad_close is not None:
            self.vad_close()
        self.asr.close()
        self.tts.close()
        if self.end_of_turn is not None:
            self.end_of_turn.close()
        self.vad_executor.shutdown(wait=False, cancel_futures=True)


def load_voice_engines(*, progress: bool = True, semantic_turns: bool = True,
                       remote: RemoteSpeech | None = None, down: frozenset[str] = frozenset(),
                       asr_threads: int | None = None, tts_threads: int | None = None) -> VoiceEngines:
    """Load and warm every speech model now, so no session pays for it. Raises ModelNotInstalled, and ValueError
    for a bad remote configuration. `semantic_turns`: also the end-of-turn model (Smart Turn v3.2). `remote`: the
    stages that run on OpenAI-compatible servers instead (VAD and turn-taking stay here); `down`: those of them
    whose server did not answer at start (ASR_STAGE, TTS_STAGE), whose sessions are refused until it answers.
    `asr_threads`, `tts_threads`: the embedded Whisper's and voices' threads (None: their measured defaults)."""
    remote = remote or RemoteSpeech()
    try:
        from localive.engines.asr.whisper import WhisperASR
        from localive.engines.blas import limit_blas_threads
        from localive.engines.tts.embedded import EmbeddedTTS
        from localive.engines.tts.espeak import EspeakTTS
        from localive.engines.tts.multilingual import MultilingualTTS
        from localive.engines.vad.silero import SileroBatcher
        from localive.models.weights import WHISPER_BASE, ensure_model_dir
    except ImportError as exc:
        raise ModelNotInstalled(f"the speech engines are not installed ({exc.name}): {VOICE_HINT}") from exc
    started = time.monotonic()
    limit_blas_threads(1)  # the engines' small matrix products: helpers would only spin on the cores (blas.py)
    vad = SileroBatcher()  # one model and one worker thread for every session's stream (engines/vad/silero.py)
    names: list[str] = ["Silero VAD"]
    asr: ASR
    if remote.asr_url and remote.asr_model:
        from localive.engines.asr.openai_audio import OpenAITranscriptionASR

        remote_asr = OpenAITranscriptionASR(remote.asr_url, remote.asr_model, timeout_s=remote.timeout_s,
                                            max_sessions=remote.asr_max_sessions)
        remote_asr.health.down = ASR_STAGE in down
        asr = remote_asr
        names.append(f"remote ASR {remote.asr_model}")
    else:
        whisper = WhisperASR(ensure_model_dir(WHISPER_BASE, progress=progress), cpu_threads=asr_threads)
        whisper.load()
        asr = whisper
        names.append(f"Whisper base on {_threads(whisper.cpu_threads)}")
    tts: TTS
    if remote.tts_url and remote.tts_model:
        from localive.engines.tts.openai_speech import OpenAISpeechTTS

        remote_tts = OpenAISpeechTTS(remote.tts_url, remote.tts_model,
                                     voice_map=load_voice_map(remote.tts_voice_map),
                                     response_format=remote.tts_format, languages=remote.tts_languages,
                                     timeout_s=remote.timeout_s, max_sessions=remote.tts_max_sessions)
        remote_tts.health.down = TTS_STAGE in down
        tts = remote_tts
        names.append(f"remote TTS {remote.tts_model}")
    else:
        fallback = EspeakTTS()
        embedded = EmbeddedTTS(threads=tts_threads or 1)
        multilingual = MultilingualTTS(embedded, fallback)
        multilingual.load()
        tts = multilingual
        names.append(f"hibari + piper on {_threads(embedded.threads)}, espeak-ng")
        if fallback.problem:
            log.warning("speech in other languages than English is off: %s", fallback.problem)
    end_of_turn = None
    if semantic_turns:
        from localive.engines.turn.smart_turn import SmartTurn

        end_of_turn = SmartTurn()
        end_of_turn.load()
    if end_of_turn is not None:
        names.append("Smart Turn v3.2")
    log.info("loaded speech engines (%s) in %.1f s", ", ".join(names), time.monotonic() - started)
    return VoiceEngines(asr, tts, vad.stream, ThreadPoolExecutor(max_workers=2, thread_name_prefix="vad"),
                        end_of_turn, vad_close=vad.close, vad_load=vad.load)


def _threads(count: int) -> str:
    return f"{count} thread" + ("" if count == 1 else "s")


def load_emulator_voice(hearing: EmulatorHearing | None = None) -> VoiceEngines:
    """The deterministic speech engines of `--voice emulator`, for apps' own tests: no model, no weights, loaded
    at once. Hears speech by energy (EnergyVAD), "recognises" it by its length (`hearing`, engines/asr/emulator.py)
    and speaks tones (ToneTTS: 60 ms a character, pitch by voice). They keep no record of what they were asked, so
    a long-running server stays flat. Raises ModelNotInstalled without numpy and soxr (every audio session
    needs them)."""
    try:
        import numpy  # noqa: F401
        import soxr  # noqa: F401

        from localive.engines.asr.fake import ScriptedASR
        from localive.engines.tts.fake import ToneTTS
        from localive.engines.vad.energy import EnergyVAD
    except ImportError as exc:
        raise ModelNotInstalled(f"the speech emulator needs {exc.name}: {EMULATOR_HINT}") from exc
    asr = ScriptedASR(hearing or EmulatorHearing(), name="emulator", keep_calls=False)
    log.info("loaded the speech emulator (energy VAD, transcripts by speech length, tone voices)")
    return VoiceEngines(asr, ToneTTS(keep_requests=False), EnergyVAD,
                        ThreadPoolExecutor(max_workers=1, thread_name_prefix="vad"))
