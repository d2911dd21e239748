from localive.engines.tts.base import TTS, UnknownVoice

__all__ = ["TTS", "UnknownVoice"]
