from localive.engines.turn.base import SAMPLE_RATE_HZ, EndOfTurn, FakeEndOfTurn, to_float32

__all__ = ["SAMPLE_RATE_HZ", "EndOfTurn", "FakeEndOfTurn", "to_float32"]
