"""Speech recognition: the real Whisper base model on speech made here with espeak-ng, and the scripted fake."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from localive.audio.pcm import Pcm16
from localive.clock import VirtualClock
from localive.engines.asr.base import ASR
from localive.engines.asr.fake import ASRCall, ScriptedASR
from localive.engines.asr.whisper import (
    WhisperASR,
    join_segments,
    looks_like_a_loop,
    split_timestamped,
    trim_silence,
    whisper_language,
)
from localive.models.errors import ModelNotInstalled
from localive.models.weights import WHISPER_BASE, ensure_model_dir
from localive.session.backchannel import LISTENER_WORDS, is_backchannel, lets_the_model_go_on
from localive.testing.text import CLOSE_WER, spoken_words, word_error_rate
from tests.support.off_loop import runs_off_the_loop

Say = Callable[..., Pcm16]

# Phrases both decoding paths get right on espeak's voice (some others lose a word: "capital and France").
PHRASES = [
    "can you tell me the weather in Paris tomorrow",
    "how many kilometers is it from London to Berlin",
    "remind me to call my mother tomorrow morning",
]


words, wer = spoken_words, word_error_rate


@pytest.fixture(scope="session")
def say(tmp_path_factory: pytest.TempPathFactory) -> Say:
    """Speech for a text: espeak-ng (US English, 160 wpm), converted by sox without dither (deterministic)."""
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"the ASR tests need {' and '.join(missing)} (Debian: apt-get install espeak-ng sox)")
    folder = tmp_path_factory.mktemp("speech")
    made: dict[tuple[str, int], Pcm16] = {}

    def make(text: str, sample_rate_hz: int = 16000) -> Pcm16:
        if (text, sample_rate_hz) not in made:
            raw, out = folder / f"raw{len(made)}.wav", folder / f"utt{len(made)}.wav"
            subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(raw), text], check=True)
            subprocess.run(["sox", "-D", str(raw), "-r", str(sample_rate_hz), "-c", "1", "-b", "16", str(out)],
                           check=True)
            with wave.open(str(out)) as wav:
                made[text, sample_rate_hz] = Pcm16(wav.readframes(wav.getnframes()), wav.getframerate())
        return made[text, sample_rate_hz]

    return make


@pytest.fixture(scope="session")
def whisper_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_model_dir(WHISPER_BASE, directory=tmp_path_factory.mktemp("models"), progress=False)


@pytest.fixture(scope="session")
def asr(whisper_dir: Path) -> Iterator[WhisperASR]:
    engine = WhisperASR(whisper_dir)
    engine.load()
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def asr_full(whisper_dir: Path) -> Iterator[WhisperASR]:
    engine = WhisperASR(whisper_dir, short_window=False)
    engine.load()
    yield engine
    engine.close()


# --- the real model ------------------------------------------------------------------------------------


async def test_capital_of_france(asr: WhisperASR, say: Say) -> None:
    engine: ASR = asr  # implements the protocol
    speech = say("what is the capital of France")
    transcript = await engine.transcribe(speech, "en-US")
    assert {"capital", "france"} <= set(words(transcript.text)), transcript
    assert transcript.language == "en"
    assert transcript.audio_s == pytest.approx(speech.duration_s)
    assert transcript.compute_s > 0  # measured (how fast is for the benchmarks)


@pytest.mark.parametrize("phrase", PHRASES)
async def test_phrases(asr: WhisperASR, say: Say, phrase: str) -> None:
    transcript = await asr.transcribe(say(phrase))
    assert wer(phrase, transcript.text) <= CLOSE_WER, transcript.text


async def test_listener_words_as_previous_text_steer_short_backchannels(asr: WhisperASR, say: Say) -> None:
    # With a listener's words before it, espeak's "Yeah." is heard as a listener's sound (session/backchannel.py);
    # what Whisper makes of it without them differs between machines, so that is not asserted.
    heard = (await asr.transcribe(say("Yeah."), expect=LISTENER_WORDS)).text
    assert is_backchannel(heard), heard
    for request in ("Wait.", "Stop.", "Hold on."):  # a request is still heard as words that stop the answer
        heard = (await asr.transcribe(say(request), expect=LISTENER_WORDS)).text
        assert words(heard) and not is_backchannel(heard), heard


@pytest.mark.parametrize("f0_hz", [110.0, 200.0])
async def test_a_closed_mouth_hum_lets_the_model_go_on(asr: WhisperASR, f0_hz: float) -> None:
    # A hum that is one (formant synthesis; the neural voices put a vowel in it and are heard as "Mama"): no
    # word in it, so with the listener prior it is a listener's sound and the answer goes on (session/listening.py).
    from localive.testing.hum import closed_mouth_hum

    hum = Pcm16(closed_mouth_hum(f0_hz).tobytes(), 16000)
    heard = (await asr.transcribe(hum, "en-US", expect=LISTENER_WORDS)).text
    assert lets_the_model_go_on(heard), heard


async def test_the_previous_text_reaches_the_30_s_path(asr_full: WhisperASR, say: Say,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # What Whisper makes of "Yeah." without the prior differs between machines ("" on some, "Yeah." on others):
    # only what a user notices is asserted, and that the prior is really given to faster-whisper's decoder.
    model = asr_full._model
    assert model is not None
    prompts: list[str | None] = []
    real = model.transcribe

    def spy(*args: object, **kwargs: Any) -> Any:
        prompts.append(kwargs.get("initial_prompt"))
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "transcribe", spy)
    heard = (await asr_full.transcribe(say("Yeah."), expect=LISTENER_WORDS)).text
    assert is_backchannel(heard), heard
    assert prompts == [LISTENER_WORDS.strip()]


@pytest.mark.parametrize("sample_rate_hz", [8000, 48000])
async def test_other_sample_rates_are_resampled(asr: WhisperASR, say: Say, sample_rate_hz: int) -> None:
    speech = say(PHRASES[0], sample_rate_hz)
    assert speech.sample_rate_hz == sample_rate_hz
    transcript = await asr.transcribe(speech)
    assert wer(PHRASES[0], transcript.text) <= CLOSE_WER, transcript.text
    assert transcript.audio_s == pytest.approx(speech.duration_s)


@pytest.mark.parametrize("engine", ["asr", "asr_full"])
async def test_silence_and_noise_give_no_text(request: pytest.FixtureRequest, engine: str) -> None:
    """Whisper hallucinates sentences on silence; the engine guards itself (level gate + no-speech check)."""
    model: WhisperASR = request.getfixturevalue(engine)
    rng = np.random.default_rng(7)
    quiet_noise = Pcm16.from_float32(rng.normal(0.0, 0.003, 32000), 16000)  # ~ -50 dBFS: decoded
    loud_noise = Pcm16.from_float32(rng.normal(0.0, 0.03, 32000), 16000)  # ~ -30 dBFS: decoded
    for audio in (Pcm16.silence(2.0, 16000), Pcm16(b"", 16000), quiet_noise, loud_noise):
        assert (await model.transcribe(audio)).text == ""


async def test_silence_around_speech_adds_nothing(asr: WhisperASR, say: Say) -> None:
    phrase = PHRASES[1]
    padded = Pcm16.silence(3.0, 16000) + say(phrase) + Pcm16.silence(4.0, 16000)
    transcript = await asr.transcribe(padded)
    assert wer(phrase, transcript.text) <= CLOSE_WER, transcript.text


async def test_short_window_agrees_with_the_30_s_path(asr: WhisperASR, asr_full: WhisperASR, say: Say) -> None:
    # Both paths hear each phrase as it was said (which one is faster is for the benchmarks: bench/).
    for phrase in PHRASES:
        short = await asr.transcribe(say(phrase))
        full = await asr_full.transcribe(say(phrase))
        assert wer(phrase, short.text) <= CLOSE_WER and wer(phrase, full.text) <= CLOSE_WER, (short.text, full.text)


async def test_the_model_runs_off_the_event_loop(asr_full: WhisperASR, say: Say) -> None:
    # While Whisper decodes, the event loop goes on serving (shown without timing: tests/support/off_loop.py).
    assert asr_full._model is not None
    off_loop, transcript = await runs_off_the_loop(asr_full._model, "transcribe", asr_full.transcribe(say(PHRASES[0])))
    assert off_loop
    assert wer(PHRASES[0], transcript.text) <= CLOSE_WER, transcript.text


async def test_a_cancelled_request_leaves_the_engine_usable(asr: WhisperASR, say: Say) -> None:
    first = asyncio.create_task(asr.transcribe(say(PHRASES[0])))
    queued = asyncio.create_task(asr.transcribe(say(PHRASES[1])))
    await asyncio.sleep(0)
    queued.cancel()
    first.cancel()
    for task in (first, queued):
        with pytest.raises(asyncio.CancelledError):
            await task
    transcript = await asr.transcribe(say(PHRASES[2]))
    assert wer(PHRASES[2], transcript.text) <= CLOSE_WER


async def test_the_engine_is_busy_until_a_pass_is_over_even_one_whose_caller_gave_up(asr: WhisperASR,
                                                                                    say: Say) -> None:
    assert asr.idle
    started, original = threading.Event(), asr._transcribe_on_worker

    def noting(*args: Any) -> Any:
        started.set()
        return original(*args)

    asr._transcribe_on_worker = noting  # type: ignore[method-assign]
    try:
        spoken = say(PHRASES[0])
        long = Pcm16(spoken.data * 4, spoken.sample_rate_hz)  # a pass long enough to still run when cancelled
        given_up = asyncio.create_task(asr.transcribe(long))
        assert await asyncio.to_thread(started.wait, 30)  # the pass runs on the worker
    finally:
        asr._transcribe_on_worker = original  # type: ignore[method-assign]
    given_up.cancel()
    with pytest.raises(asyncio.CancelledError):
        await given_up
    assert not asr.idle  # the worker still runs it: work ahead must not start another pass now
    await asr.transcribe(say(PHRASES[1]))  # queued behind it: both are over when this returns
    assert asr.idle


async def test_language_hints(asr: WhisperASR, say: Say) -> None:
    speech = say(PHRASES[0])
    assert (await asr.transcribe(speech, "en-GB")).language == "en"
    assert (await asr.transcribe(speech, "tlh")).language == "en"  # unknown to Whisper: the default


async def test_language_detection(whisper_dir: Path, say: Say) -> None:
    engine = WhisperASR(whisper_dir, default_language=None)
    try:
        transcript = await engine.transcribe(say(PHRASES[0]))  # loads on first use
    finally:
        engine.close()
    assert transcript.language == "en"
    assert wer(PHRASES[0], transcript.text) <= CLOSE_WER


async def test_closed_engine_refuses(whisper_dir: Path) -> None:
    engine = WhisperASR(whisper_dir)
    engine.close()
    with pytest.raises(RuntimeError, match="closed"):
        await engine.transcribe(Pcm16.silence(1.0, 16000))


def test_a_missing_model_directory_says_what_to_do(tmp_path: Path) -> None:
    engine = WhisperASR(tmp_path / "nowhere")
    try:
        with pytest.raises(ModelNotInstalled, match="models prepare"):
            engine.load()
    finally:
        engine.close()


# --- pure helpers --------------------------------------------------------------------------------------


def test_whisper_language() -> None:
    known = frozenset({"en", "pt", "zh", "he", "no"})
    assert whisper_language("en-US", known, "en") == "en"
    assert whisper_language("pt_BR", known, "en") == "pt"
    assert whisper_language("cmn-Hans-CN", known, "en") == "zh"
    assert whisper_language("iw", known, "en") == "he"
    assert whisper_language("nb-NO", known, "en") == "no"
    assert whisper_language("xx", known, "en") == "en"
    assert whisper_language(None, known, "en") == "en"
    assert whisper_language("", known, None) is None


def test_trim_silence_keeps_speech_with_a_margin() -> None:
    rate = 16000
    tone = (0.3 * np.sin(np.arange(rate) * 0.2)).astype(np.float32)
    samples = np.concatenate([np.zeros(3 * rate, np.float32), tone, np.zeros(2 * rate, np.float32)])
    trimmed = trim_silence(samples, rate, -60.0)
    assert 1.5 <= trimmed.size / rate <= 1.7  # 1 s of tone + 0.25 s before + 0.35 s after
    assert trim_silence(np.zeros(rate, np.float32), rate, -60.0).size == 0
    assert trim_silence(np.zeros(10, np.float32), rate, -60.0).size == 0


@pytest.mark.parametrize(("text", "loop"), [
    ("Can Can Can Can Can Can Can Can Can Can Can Can", True),  # seen: "Can you tell me the weather in Paris today?"
    ("Turn on the radio turn on the radio radio radio radio", True),
    ("Tokyo right now Tokyo right now Tokyo right now Tokyo right now Tokyo right now", True),  # compresses well
    ("Can you tell me the weather in Paris today?", False),
    ("No, no, no. That is not what I meant.", False),  # three in a row is speech
    ("I would like a cup of coffee, please.", False),
    ("", False),
])
def test_a_short_window_pass_that_loops_is_recognised(text: str, loop: bool) -> None:
    """Such a pass is redone on the 30 s path, also when it did not reach the length cap."""
    assert looks_like_a_loop(text) is loop


def test_join_segments_drops_repeated_sentences() -> None:
    assert join_segments(["Turn it off.", "Turn it off!", "Thanks. Turn it off."]) == "Turn it off. Thanks."
    assert join_segments(["no, no, no", ""]) == "no, no, no"


def test_split_timestamped() -> None:
    begin, eot = 1000, 999
    tokens = [begin + 0, 1, 2, begin + 50, begin + 50, 3, begin + 100, begin + 400, 4, eot]
    assert split_timestamped(tokens, begin, eot) == [(0.0, [1, 2]), (1.0, [3]), (8.0, [4])]


# --- the scripted fake ---------------------------------------------------------------------------------


async def test_scripted_asr_returns_texts_in_order_and_records_calls() -> None:
    fake = ScriptedASR(["hello", "what time is it"])
    engine: ASR = fake  # implements the protocol
    one = await engine.transcribe(Pcm16.silence(1.5, 16000), "en-US")
    two = await engine.transcribe(Pcm16.silence(0.5, 48000))
    three = await engine.transcribe(Pcm16.silence(0.25, 16000))
    assert [one.text, two.text, three.text] == ["hello", "what time is it", ""]
    assert one.language == "en-US" and two.language == "en" and one.audio_s == 1.5
    assert fake.audio_durations_s == [1.5, 0.5, 0.25]
    assert fake.calls[1] == ASRCall(audio_s=0.5, sample_rate_hz=48000, language=None)
    assert fake.remaining == 0


async def test_scripted_asr_with_a_callable_and_a_virtual_delay() -> None:
    clock = VirtualClock()
    fake = ScriptedASR(lambda audio, language: f"{audio.duration_s:.1f} s in {language}", delay_s=0.25,
                       clock=clock)
    call = asyncio.create_task(fake.transcribe(Pcm16.silence(2.0, 16000), "de-DE"))
    await clock.advance(0.125)
    assert not call.done()
    await clock.advance(0.125)
    transcript = await call
    assert transcript.text == "2.0 s in de-DE" and transcript.compute_s == 0.25


async def test_scripted_asr_delay_is_cancellable_and_close_refuses() -> None:
    fake = ScriptedASR(["slow", "next"], delay_s=60.0)
    task = asyncio.create_task(fake.transcribe(Pcm16.silence(1.0, 16000)))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake.remaining == 1 and len(fake.calls) == 1
    fake.close()
    with pytest.raises(RuntimeError, match="closed"):
        await fake.transcribe(Pcm16.silence(1.0, 16000))
    with pytest.raises(TypeError):
        ScriptedASR("one string")  # a str is an Iterable[str]: refused, not split into characters
