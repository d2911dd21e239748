"""The speech emulator's contract (`--voice emulator`): what it hears, how it is configured, how it fails."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from localive import cli
from localive.audio.pcm import Pcm16
from localive.engines.asr.emulator import EmulatorHearing, HearingError, HearRule, speech_seconds
from localive.engines.llm.emulator import EmulatorScript
from localive.engines.voice import load_emulator_voice
from localive.models.errors import ModelNotInstalled

SCRIPT = Path(__file__).parent.parent / "data" / "voice_emulator.toml"


def tone(seconds: float, dbfs: float = -13.0, rate: int = 16000) -> Pcm16:
    t = np.arange(round(seconds * rate)) / rate
    return Pcm16.from_float32(10 ** (dbfs / 20) * np.sqrt(2) * np.sin(2 * np.pi * 300 * t), rate)


def test_speech_is_the_loud_part_rounded_to_a_tenth() -> None:
    audio = Pcm16.silence(0.3, 16000) + tone(1.23) + Pcm16.silence(0.5, 16000)
    assert speech_seconds(audio) == 1.2
    assert speech_seconds(tone(2.0, dbfs=-45.0)) == 0.0  # below -39 dBFS: not speech
    assert speech_seconds(tone(2.0, dbfs=-35.0)) == 2.0
    assert speech_seconds(Pcm16(b"", 16000)) == 0.0
    assert speech_seconds(tone(0.7, rate=24000)) == 0.7


def test_rules_pick_the_words_by_length_in_order() -> None:
    hearing = EmulatorHearing((HearRule("short", 1.0), HearRule("{seconds} s", 2.0)))
    assert hearing(tone(0.5)) == "short"
    assert hearing(tone(1.0)) == "short"
    assert hearing(tone(1.5)) == "1.5 s"
    assert hearing(tone(2.5)) == "I spoke for 2.5 seconds."
    assert hearing(Pcm16.silence(1.0, 16000)) == ""  # nothing loud: nothing heard
    assert EmulatorHearing((HearRule("anything"),))(tone(9.0)) == "anything"


def test_the_script_file_holds_both_hearing_and_replies() -> None:
    hearing = EmulatorHearing.load(SCRIPT)
    assert hearing.rules[0] == HearRule("What is the capital of France?", 1.0)
    assert EmulatorScript.load(SCRIPT).reply_to("What is the capital of France?")[0] == \
        "The capital of France is Paris."


@pytest.mark.parametrize("data", [
    {"hear": {"text": "x"}},
    {"hear": [{"up_to_s": 1.0}]},
    {"hear": [{"text": "x", "up_to_s": 0}]},
    {"hear": [{"text": "x", "up_to_s": "1"}]},
    {"hear": [{"text": "x", "up_to_s": True}]},
    {"hear": [{"text": "x", "longer_than_s": 1}]},
])
def test_bad_hear_rules_are_refused(data: dict[str, object]) -> None:
    with pytest.raises(HearingError):
        EmulatorHearing.from_dict(data)


async def test_the_engines_answer_deterministically_and_keep_no_record() -> None:
    voice = load_emulator_voice(EmulatorHearing((HearRule("hello", 1.0),)))
    try:
        assert voice.end_of_turn is None  # turns end on silence
        transcript = await voice.asr.transcribe(tone(0.6), "en-US")
        assert transcript.text == "hello"
        spoken = await voice.tts.synthesize("Hello there.", "Charon")  # Charon's pace: 60 ms a character
        assert spoken.sample_rate_hz == 24000 and spoken.duration_s == pytest.approx(12 * 0.06)
        assert spoken.data == (await voice.tts.synthesize("Hello there.", "Charon")).data
        puck = await voice.tts.synthesize("Hello there.", voice.tts.resolve_voice(None))  # the default, 1.03× faster
        assert puck.duration_s == pytest.approx(12 * 0.06 / 1.03, abs=1e-4)
        vad = voice.vad_factory()
        frame = tone(0.032).to_float32()
        assert vad.speech_probability(frame) == 1.0 and vad.speech_probability(frame * 0) == 0.0
        assert voice.asr.calls == [] and voice.tts.requests == []  # type: ignore[attr-defined]
    finally:
        voice.close()


def test_without_soxr_it_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "soxr", None)
    with pytest.raises(ModelNotInstalled, match=r"localive\[voice-emulator\]"):
        load_emulator_voice()


@pytest.mark.parametrize(("flags", "says"), [
    (["--turn-taking", "semantic"], "silence only"),
    (["--asr-url", "http://127.0.0.1:9/v1", "--asr-model", "w"], "--voice embedded"),
])
def test_serve_refuses_what_the_emulator_cannot_do(flags: list[str], says: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--voice", "emulator", "--data-dir", str(tmp_path), *flags]) == 2
    assert says in capsys.readouterr().err


def test_serve_refuses_bad_hear_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "script.toml"
    script.write_text('[[hear]]\nup_to_s = -1\ntext = "x"\n')
    assert cli.main(["serve", "--llm", "emulator", "--voice", "emulator", "--emulator-script", str(script),
                     "--data-dir", str(tmp_path)]) == 2
    assert "up_to_s" in capsys.readouterr().err
