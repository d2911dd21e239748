"""The pure parts of the remote speech engines: WAV streams, voice maps, language codes, failures."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import pytest

from localive.engines.asr.openai_audio import language_code, primary_subtag
from localive.engines.speech_remote import BackendFailed, load_voice_map, redact
from localive.engines.tts.openai_speech import (
    OpenAISpeechTTS,
    WavError,
    decode_samples,
    default_voice_map,
    parse_wav_header,
)
from localive.engines.tts.voices import CATALOG, voice_names
from localive.protocol.errors import INTERNAL, close_for


def wav(samples: np.ndarray, rate: int, channels: int = 1) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()


def test_a_wav_header_is_read_once_it_has_all_arrived() -> None:
    data = wav(np.arange(100), 22050)
    assert parse_wav_header(data[:30]) is None  # the fmt chunk is cut short: wait for more
    offset, rate, channels, bits, tag = parse_wav_header(data) or (0, 0, 0, 0, 0)
    assert (rate, channels, bits, tag) == (22050, 1, 16, 1)
    assert np.array_equal(np.frombuffer(data[offset:], "<i2"), np.arange(100))
    with pytest.raises(WavError):
        parse_wav_header(b"ID3" + bytes(20))


def test_stereo_samples_become_mono() -> None:
    stereo = np.array([1000, 3000, -2000, -4000], dtype="<i2").tobytes()
    mono = decode_samples(stereo, channels=2, bits=16, tag=1)
    assert np.allclose(mono * 32768, [2000, -3000])


def test_every_live_voice_maps_to_a_server_voice_of_its_gender() -> None:
    mapping = default_voice_map()
    assert set(mapping) == set(voice_names())
    female = {spec.name for spec in CATALOG if spec.gender == "female"}
    assert {mapping[n] for n in female} <= {"nova", "shimmer", "coral", "sage"}
    assert {mapping[n] for n in set(mapping) - female} <= {"onyx", "echo", "ash", "fable"}


def test_a_voice_map_file_overrides_names_or_all(tmp_path: Path) -> None:
    path = tmp_path / "voices.toml"
    path.write_text('"*" = "en_US-joe-medium"\npuck = "am_adam"\n')
    tts = OpenAISpeechTTS("http://127.0.0.1:1/v1", "m", voice_map=load_voice_map(path))
    assert tts.voice_map["Puck"] == "am_adam" and tts.voice_map["Kore"] == "en_US-joe-medium"
    path.write_text('Nobody = "x"\n')
    with pytest.raises(ValueError, match="Nobody"):
        OpenAISpeechTTS("http://127.0.0.1:1/v1", "m", voice_map=load_voice_map(path))


def test_languages_reported_by_code_or_name_become_codes() -> None:
    assert primary_subtag("pt-BR") == "pt" and primary_subtag("") is None
    assert language_code("english") == "en" and language_code("de") == "de" and language_code(None) is None


def test_a_failing_stage_closes_1011_naming_it_even_inside_a_task_group() -> None:
    failure = BackendFailed("speech synthesis", "HTTP 500")
    for exc in (failure, ExceptionGroup("turn", [ValueError("x"), ExceptionGroup("speak", [failure])])):
        close = close_for(exc)
        assert close.code == INTERNAL and close.reason == "The speech synthesis backend failed: HTTP 500."


def test_urls_lose_their_credentials_in_messages() -> None:
    assert redact("http://user:secret@host:8000/v1") == "http://host:8000/v1"
    assert redact("http://host:8000/v1") == "http://host:8000/v1"
