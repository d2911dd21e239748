from localive.engines.vad.base import VAD, VADFactory

__all__ = ["VAD", "VADFactory"]
