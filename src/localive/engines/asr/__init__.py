from localive.engines.asr.base import ASR, Transcript

__all__ = ["ASR", "Transcript"]
