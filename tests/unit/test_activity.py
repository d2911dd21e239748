from __future__ import annotations

import asyncio

import numpy as np
import pytest

from localive.audio.pcm import Pcm16
from localive.engines.turn.base import FakeEndOfTurn
from localive.engines.vad.energy import EnergyVAD
from localive.protocol import messages as wire
from localive.protocol.errors import InvalidArgument
from localive.session.activity import (
    ActivityDetector,
    ActivitySettings,
    PauseHeard,
    PauseStarted,
    SpeechEnded,
    SpeechGoingOn,
    SpeechStarted,
)
from localive.session.audio_in import AudioInput
from localive.testing.audio import tone

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


def test_a_pause_is_foreseen_with_the_audio_the_turn_will_hear_if_the_user_says_no_more() -> None:
    detector = ActivityDetector(ActivitySettings(min_speech_ms=64, silence_ms=500), FRAME, foresee=True)
    events = [e for _, e in run(detector, [1.0] * 20 + [0.0] * 20)]
    pause = next(e for e in events if isinstance(e, PauseStarted))
    ended = next(e for e in events if isinstance(e, SpeechEnded))
    assert events.index(pause) < events.index(ended) and pause.heard_frames == ended.heard_frames
    # what was cut at the pause's start gets the trailing silence the utterance ends with (here, as the padding,
    # digital silence: the very same audio)
    assert pause.audio.duration_s == ended.audio.duration_s and pause.audio.data == ended.audio.data


def test_speech_after_a_pause_makes_what_was_foreseen_out_of_date() -> None:
    detector = ActivityDetector(ActivitySettings(min_speech_ms=64, silence_ms=500), FRAME, foresee=True)
    events = [e for _, e in run(detector, [1.0] * 10 + [0.0] * 3 + [1.0] * 10 + [0.0] * 20)]
    kinds = [type(e).__name__ for e in events if not isinstance(e, SpeechGoingOn)]
    assert kinds == ["SpeechStarted", "PauseStarted", "SpeechResumed", "PauseStarted", "SpeechEnded"]
    first, last = [e for e in events if isinstance(e, PauseStarted)]
    ended = events[-1]
    assert isinstance(ended, SpeechEnded) and first.heard_frames != ended.heard_frames == last.heard_frames


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


# --- semantic turn-taking -----------------------------------------------------------------------------------------

def test_semantic_pauses_are_offered_to_the_end_of_turn_model() -> None:
    detector = ActivityDetector(ActivitySettings(semantic=True), FRAME)
    events = run(detector, [0.9] * 20 + [0.0] * 70)  # 2.24 s of silence after the speech
    kinds = [(i, type(e).__name__) for i, e in events]
    pauses = [i for i, kind in kinds if kind == "PauseHeard"]
    assert pauses == [20 + 5]  # asked once, at ~200 ms of silence (the 6th silent frame)
    ended = [i for i, kind in kinds if kind == "SpeechEnded"]
    assert ended == [20 + 61]  # nobody said "finished": the 2 s backstop (62nd silent frame) ends it, not 500 ms
    first = next(e for _, e in events if isinstance(e, PauseHeard))
    assert first.silence_ms == pytest.approx(192, abs=1) and first.audio.duration_s > 0.6


def test_a_finished_pause_ends_the_turn_at_once_unless_speech_resumed() -> None:
    detector = ActivityDetector(ActivitySettings(semantic=True), FRAME)
    events = run(detector, [0.9] * 20 + [0.0] * 7)
    assert any(isinstance(e, PauseHeard) for _, e in events) and detector.paused
    (ended,) = detector.end_at_pause()
    assert isinstance(ended, SpeechEnded) and not ended.forced and not detector.speaking
    detector = ActivityDetector(ActivitySettings(semantic=True), FRAME)
    run(detector, [0.9] * 20 + [0.0] * 7 + [0.9] * 2)  # they went on speaking before the answer came
    assert detector.end_at_pause() == [] and detector.speaking


def test_without_semantic_turns_the_silence_window_ends_the_turn() -> None:
    detector = ActivityDetector(ActivitySettings(semantic=False), FRAME)
    events = run(detector, [0.9] * 20 + [0.0] * 20)
    assert [type(e) for _, e in events] == [SpeechStarted, SpeechEnded]


async def test_audio_input_ends_a_finished_question_at_the_first_pause() -> None:
    finished = FakeEndOfTurn(1.0)
    events = await feed(AudioInput(ActivitySettings(semantic=True), manual=False, vad_factory=EnergyVAD,
                                   end_of_turn=finished))
    ended = [e for e in events if isinstance(e, SpeechEnded)]
    assert len(ended) == 1 and len(finished.calls) == 1
    assert ended[0].at_s == pytest.approx(1.0 + 0.2, abs=0.1)  # ~200 ms after the speech, not 500


async def test_audio_input_waits_out_an_unfinished_pause() -> None:
    unfinished = FakeEndOfTurn(0.1)
    audio = AudioInput(ActivitySettings(semantic=True), manual=False, vad_factory=EnergyVAD, end_of_turn=unfinished)
    events = await feed(audio)
    ended = [e for e in events if isinstance(e, SpeechEnded)]
    assert len(ended) == 1 and ended[0].at_s == pytest.approx(1.0 + 2.0, abs=0.1)
    assert len(unfinished.calls) == 1 and audio.pauses_judged[0][1] == pytest.approx(0.1)


async def test_the_end_of_turn_model_is_asked_as_soon_as_the_pause_starts() -> None:
    """Semantic turn-taking asks its model at the pause's first silent frame, on the audio padded with the silence
    it will have at PAUSE_MS, so the answer is ready then; the same pause is not judged twice."""
    finished = FakeEndOfTurn(1.0)
    audio = AudioInput(ActivitySettings(semantic=True), manual=False, vad_factory=EnergyVAD, end_of_turn=finished)
    loud, quiet = _tone_and_silence()
    for chunk in [loud] * 10 + [quiet]:  # 1 s of speech, then 100 ms of silence
        assert not [e for e in await audio.push(chunk, "audio/pcm;rate=16000") if isinstance(e, SpeechEnded)]
    for _ in range(100):
        if finished.calls:
            break
        await asyncio.sleep(0.01)
    assert len(finished.calls) == 1  # asked within 100 ms of the pause, before the 200 ms it is judged at
    events: list[object] = []
    for _ in range(10):
        events += await audio.push(quiet, "audio/pcm;rate=16000")
    ended = [e for e in events if isinstance(e, SpeechEnded)]
    assert len(ended) == 1 and ended[0].at_s == pytest.approx(1.0 + 0.2, abs=0.1)
    # the early question was about exactly the audio the pause was judged on
    assert finished.calls == [round(ended[0].audio.samples * 1.0)] and len(audio.pauses_judged) == 1


async def test_an_early_judgement_is_dropped_when_the_user_goes_on() -> None:
    """A pause that the user ends by speaking again is not judged on what was asked at its start: the next pause is
    asked about the longer utterance."""
    finished = FakeEndOfTurn(1.0)
    audio = AudioInput(ActivitySettings(semantic=True), manual=False, vad_factory=EnergyVAD,
                       end_of_turn=finished)
    loud, quiet = _tone_and_silence()
    events: list[object] = []
    for chunk in [loud] * 10 + [quiet] + [loud] * 5 + [quiet] * 10:  # 1 s, a 100 ms gap, 0.5 s, silence
        events += await audio.push(chunk, "audio/pcm;rate=16000")
        await asyncio.sleep(0.01)  # early judgements have time to run
    ended = [e for e in events if isinstance(e, SpeechEnded)]
    assert len(ended) == 1 and ended[0].at_s == pytest.approx(1.6 + 0.2, abs=0.1)
    assert ended[0].audio.duration_s > 1.5  # both parts
    assert len(finished.calls) == 2 and finished.calls[-1] == ended[0].audio.samples
    assert len(audio.pauses_judged) == 1  # only the pause that ended the turn was judged


def _tone_and_silence() -> tuple[bytes, bytes]:
    """100 ms of a loud tone and of silence, 16 kHz PCM."""
    t = np.arange(1600) / 16000
    return Pcm16.from_float32((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000).data, bytes(3200)


async def feed(audio: AudioInput) -> list[object]:
    """1 s of a loud tone, then 3 s of silence, in 100 ms chunks."""
    t = np.arange(1600) / 16000
    loud = Pcm16.from_float32((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000).data
    quiet = bytes(3200)
    events: list[object] = []
    for chunk in [loud] * 10 + [quiet] * 30:
        events += await audio.push(chunk, "audio/pcm;rate=16000")
    return events


async def test_audio_input_reads_each_chunks_mime_type() -> None:
    """The rate is parsed once per MIME type, not per chunk: a new type still takes effect, a bad one is refused."""
    audio, only_8k = (AudioInput(ActivitySettings(), manual=False, vad_factory=EnergyVAD) for _ in range(2))
    await audio.push(tone(0.1), "audio/pcm;rate=16000")
    for _ in range(5):
        await audio.push(tone(0.1, rate_hz=8000), "audio/pcm;rate=8000")  # resampled, as when it came first
        await only_8k.push(tone(0.1, rate_hz=8000), "audio/pcm;rate=8000")
    assert audio.received_s == pytest.approx(0.1 + only_8k.received_s) and only_8k.received_s > 0.4
    with pytest.raises(InvalidArgument):
        await audio.push(tone(0.1), "audio/opus")
    audio.close()
