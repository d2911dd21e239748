from __future__ import annotations

import numpy as np
import pytest

from localive.protocol import messages as wire
from localive.session.activity import ActivityDetector, ActivitySettings, SpeechEnded, SpeechStarted
from localive.session.clauses import ClauseSplitter

FRAME = 512  # 32 ms at 16 kHz


def run(detector: ActivityDetector, probabilities: list[float]) -> list[tuple[int, object]]:
    events = []
    for i, p in enumerate(probabilities):
        frame = np.full(FRAME, 0.1 if p > 0.5 else 0.0, dtype=np.float32)
        events += [(i, e) for e in detector.push(frame, p)]
    return events


def test_speech_starts_after_prefix_padding_and_ends_after_silence() -> None:
    detector = ActivityDetector(ActivitySettings(min_speech_ms=96, silence_ms=320), FRAME)
    events = run(detector, [0.0] * 20 + [0.9] * 30 + [0.0] * 15)
    (i_start, start), (i_end, end) = events
    assert isinstance(start, SpeechStarted) and i_start == 22  # the 3rd speech frame commits the start
    assert isinstance(end, SpeechEnded) and i_end == 59  # 10 silent frames (320 ms) end it
    assert not end.forced
    # 30 speech frames + up to ~300 ms before + ~200 ms of trailing silence kept
    assert 1.0 < end.audio.duration_s < 1.6 and end.audio.sample_rate_hz == 16000


def test_short_blips_do_not_start_speech() -> None:
    detector = ActivityDetector(ActivitySettings(min_speech_ms=96), FRAME)
    assert run(detector, [0.9, 0.9, 0.0] * 10) == []


def test_pauses_shorter_than_the_silence_duration_keep_one_turn() -> None:
    detector = ActivityDetector(ActivitySettings(silence_ms=500), FRAME)
    events = run(detector, [0.9] * 10 + [0.0] * 10 + [0.9] * 10 + [0.0] * 20)
    assert [type(e) for _, e in events] == [SpeechStarted, SpeechEnded]


def test_flush_ends_speech_now() -> None:
    detector = ActivityDetector(ActivitySettings(), FRAME)
    run(detector, [0.9] * 10)
    (end,) = detector.flush()
    assert isinstance(end, SpeechEnded) and end.forced
    assert detector.flush() == []


def test_length_limit_forces_an_end() -> None:
    detector = ActivityDetector(ActivitySettings(max_utterance_s=1.0), FRAME)
    events = run(detector, [0.9] * 40)
    assert any(isinstance(e, SpeechEnded) and e.forced for _, e in events)


@pytest.mark.parametrize("aad, expected", [
    ({}, (0.5, 64, 500)),
    ({"startOfSpeechSensitivity": "START_SENSITIVITY_LOW", "endOfSpeechSensitivity": "END_SENSITIVITY_LOW"},
     (0.7, 192, 1000)),
    ({"prefixPaddingMs": 20, "silenceDurationMs": 100}, (0.5, 20, 100)),
])
def test_settings_from_setup(aad: dict, expected: tuple) -> None:
    config = wire.RealtimeInputConfig.model_validate({"automaticActivityDetection": aad})
    s = ActivitySettings.from_setup(config)
    assert (s.start_threshold, s.min_speech_ms, s.silence_ms) == expected


def test_clause_splitter_speaks_the_first_clause_early() -> None:
    splitter = ClauseSplitter()
    tokens = ["Well", ",", " the", " capital", " of", " France", ",", " as", " you", " know", ",", " is",
              " Paris", ".", " It", " is", " lovely", "."]
    pieces = []
    for t in tokens:
        pieces += splitter.push(t)
    pieces += splitter.flush()
    assert pieces == ["Well, the capital of France,", "as you know, is Paris.", "It is lovely."]


def test_clause_splitter_drops_pieces_without_words() -> None:
    splitter = ClauseSplitter()
    assert splitter.push("... ") == []
    assert splitter.flush() == []
