"""Languages: which voice speaks which language, what the LLM is told, what the recogniser is asked for, and
translation sessions (translationConfig), with the shipped fakes (tone TTS, energy VAD, scripted ASR)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Sequence

import numpy as np
import pytest

from localive.engines.asr.fake import ScriptedASR
from localive.engines.asr.whisper import pick_language, whisper_languages
from localive.engines.llm.base import ChatMessage, FunctionCalls, FunctionSpec, SamplingParams
from localive.engines.llm.emulator import EmulatorLLM
from localive.engines.tts.base import UnsupportedLanguage
from localive.engines.tts.espeak import EspeakTTS, command, parse_voices, voice_for
from localive.engines.tts.fake import ToneTTS
from localive.engines.tts.multilingual import MultilingualTTS
from localive.engines.tts.voices import voice_spec
from localive.engines.vad.energy import EnergyVAD
from localive.models.registry import ModelRegistry
from localive.protocol.errors import InvalidArgument, LiveError, Unimplemented
from localive.session.engines import Engines
from localive.session.hearing import MAX_VOCABULARY_CHARS, Recognition
from localive.session.live import LiveSession
from localive.testing.audio import tone_frame
from localive.testing.session import drain_turn, send

MODEL = "gemini-2.0-flash-live-001"
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

VOICES = """\
Pty Language       Age/Gender VoiceName          File                 Other Languages
 5  de              --/M      German             gmw/de
 2  en-us           --/M      English_(America)  gmw/en-US            (en 3)
 5  es              --/M      Spanish_(Spain)    roa/es
 5  es-419          --/M      Spanish_(Latin_America) roa/es-419           (es-mx 6)(es 6)
 5  fr-be           --/M      French_(Belgium)   roa/fr-BE            (fr 8)
 5  fr-fr           --/M      French_(France)    roa/fr               (fr 5)
 5  hi              --/M      Hindi              inc/hi
 5  ja              --/M      Japanese           jpx/ja
 5  cmn             --/M      Chinese_(Mandarin) sit/cmn              (zh-cmn 5)(zh 5)
"""


class RecordingLLM(EmulatorLLM):
    """The emulator, keeping every prompt it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.prompts: list[list[ChatMessage]] = []

    async def stream(self, messages: list[ChatMessage], params: SamplingParams,
                     functions: Sequence[FunctionSpec] = ()) -> AsyncIterator[str | FunctionCalls]:
        self.prompts.append(list(messages))
        async for piece in super().stream(messages, params, functions):
            yield piece


def make_session(*, tts: ToneTTS | MultilingualTTS | None = None, asr: ScriptedASR | None = None,
                 llm: RecordingLLM | None = None) -> tuple[LiveSession, RecordingLLM]:
    model = llm or RecordingLLM()
    engines = Engines(llm_for=lambda entry: model, asr=asr or ScriptedASR(["hello"]),
                      tts=tts or ToneTTS(ms_per_char=1.0), vad_factory=EnergyVAD)
    return LiveSession(registry=ModelRegistry(), engines=engines, session_id="lang"), model


def setup(modality: str = "TEXT", generation: dict | None = None, **extra: object) -> dict:
    return {"setup": {"model": MODEL, "generationConfig": {"responseModalities": [modality], **(generation or {})},
                      **extra}}


async def speak_once(session: LiveSession) -> list[dict]:
    """One utterance (silence, a tone, then enough silence to end the turn) and the turn it starts."""
    for frame in (tone_frame(0.2, False), tone_frame(0.6, True), tone_frame(0.7, False)):
        await send(session, frame)
    return await drain_turn(session)


async def ask(session: LiveSession, text: str) -> list[dict]:
    await send(session, {"clientContent": {"turns": [{"role": "user", "parts": [{"text": text}]}],
                                           "turnComplete": True}})
    return await drain_turn(session)


def said(messages: list[dict]) -> str:
    """What the model said: its text parts, or the output transcription of its speech."""
    out = []
    for m in messages:
        content = m.get("serverContent", {})
        if "outputTranscription" in content:
            out.append(content["outputTranscription"].get("text", ""))  # the closing {finished: true} has none
        for part in content.get("modelTurn", {}).get("parts", []):
            out.append(part.get("text", ""))
    return "".join(out)


async def refused(frame: dict, **engines: object) -> LiveError:
    session, _ = make_session(**engines)  # type: ignore[arg-type]
    with pytest.raises(LiveError) as caught:
        await send(session, frame)
    await session.aclose()
    return caught.value


# --- which voice speaks which language -------------------------------------------------------------------


def test_espeak_voice_for_a_language_tag() -> None:
    table = parse_voices(VOICES)
    assert voice_for(table, "es-ES") == "es" and voice_for(table, "es") == "es"
    assert voice_for(table, "es-US") == "es-419" and voice_for(table, "es-MX") == "es-419"
    assert voice_for(table, "fr-FR") == "fr-fr" and voice_for(table, "fr-CA") == "fr-fr"  # priority 5 beats 8
    assert voice_for(table, "de-DE") == "de" and voice_for(table, "hi-IN") == "hi" and voice_for(table, "ja") == "ja"
    assert voice_for(table, "cmn-CN") == "cmn" and voice_for(table, "zh") == "cmn"
    assert voice_for(table, "en-GB") == "en-us"
    assert voice_for(table, "xx-YY") is None and voice_for(table, None) is None and voice_for(table, " ") is None


def test_espeak_command_keeps_the_live_voice_gender_rate_and_pitch() -> None:
    kore, fenrir = voice_spec("Kore"), voice_spec("Fenrir")
    female = command("espeak-ng", "es", kore)
    male = command("espeak-ng", "es", fenrir)
    assert female[female.index("-v") + 1] == "es+f3" and male[male.index("-v") + 1] == "es+m3"
    assert int(male[male.index("-s") + 1]) > int(female[female.index("-s") + 1])  # Fenrir 1.15×, Kore 0.95×
    assert int(female[female.index("-p") + 1]) < 50 < int(male[male.index("-p") + 1])  # -2 and +2.5 semitones
    assert "--stdout" in female


async def test_multilingual_tts_routes_english_to_the_embedded_voice_and_the_rest_to_the_fallback() -> None:
    english, fallback = ToneTTS(languages={"en"}), ToneTTS(languages={"es", "fr", "de", "hi", "ja"})
    tts = MultilingualTTS(english, fallback)
    await tts.synthesize("Hello", "Kore", None)
    await tts.synthesize("Hello", "Kore", "en-GB")
    await tts.synthesize("Hola", "Puck", "es-ES")
    await tts.synthesize("こんにちは", "Puck", "ja-JP")
    assert [r.language for r in english.requests] == [None, "en-GB"]
    assert [(r.text, r.voice, r.language) for r in fallback.requests] == [("Hola", "Puck", "es-ES"),
                                                                         ("こんにちは", "Puck", "ja-JP")]
    assert tts.speaks("de") and not tts.speaks("ko-KR")
    with pytest.raises(UnsupportedLanguage):
        await tts.synthesize("안녕하세요", "Puck", "ko-KR")
    assert tts.voices() == english.voices() and tts.resolve_voice("kore") == "Kore"


async def test_without_espeak_no_other_language_is_spoken() -> None:
    tts = EspeakTTS(binary="")
    tts.load()
    assert not tts.speaks("es") and "espeak-ng" in tts.problem
    with pytest.raises(UnsupportedLanguage, match="espeak-ng"):
        await tts.synthesize("Hola", "Kore", "es")
    tts.close()


class FakeKakasi:
    """pykakasi's interface: convert(text) → items with a "hira" reading."""

    def convert(self, text: str) -> list[dict[str, str]]:
        return [{"orig": text, "hira": text.replace("今日", "きょう")}]


@needs_espeak
async def test_japanese_is_spoken_only_with_kanji_readings(monkeypatch: pytest.MonkeyPatch) -> None:
    import localive.engines.tts.espeak as espeak

    monkeypatch.setattr(espeak, "_kana_reader", lambda: None)
    without = EspeakTTS()
    without.load()
    assert not without.speaks("ja-JP") and without.speaks("es")  # kanji would come out as "Chinese letter"
    without.close()
    monkeypatch.setattr(espeak, "_kana_reader", FakeKakasi)
    with_readings = EspeakTTS()
    with_readings.load()
    assert with_readings.speaks("ja-JP")
    kanji = await with_readings.synthesize("今日", "Kore", "ja")
    kana = await with_readings.synthesize("きょう", "Kore", "ja")
    assert kanji.data == kana.data and kana.duration_s > 0.2
    with_readings.close()


@needs_espeak
async def test_espeak_speaks_spanish_off_the_event_loop_at_24_khz() -> None:
    tts = EspeakTTS()
    tts.load()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    ticker = asyncio.create_task(tick())
    try:
        audio = await tts.synthesize("Buenos días. ¿Qué tal estás hoy? " * 4, "Kore", "es-ES")
    finally:
        ticker.cancel()
    assert audio.sample_rate_hz == 24000 and audio.duration_s > 3.0
    assert ticks > 3  # the loop kept running while espeak-ng spoke
    peak = float(np.max(np.abs(audio.to_float32())))
    assert 0.1 < peak <= 0.9
    assert (await tts.synthesize("[[ ]]", "Kore", "es")).duration_s == 0.0
    tts.close()


# --- setup: refusals --------------------------------------------------------------------------------------


async def test_a_voice_session_in_a_language_no_voice_speaks_is_refused_naming_it() -> None:
    error = await refused(setup("AUDIO", {"speechConfig": {"languageCode": "es-ES"}}),
                          tts=ToneTTS(languages={"en"}))
    assert isinstance(error, Unimplemented) and error.close_code == 1008 and "es-ES" in error.reason
    # a text session in that language needs no voice
    session, _ = make_session(tts=ToneTTS(languages={"en"}))
    await send(session, setup("TEXT", {"speechConfig": {"languageCode": "es-ES"}}))
    await session.aclose()


async def test_malformed_language_codes_are_invalid_arguments() -> None:
    for frame in (setup("TEXT", {"speechConfig": {"languageCode": "spanish please"}}),
                  setup("TEXT", inputAudioTranscription={"languageCodes": ["es", "1234"]}),
                  setup("TEXT", {"translationConfig": {"targetLanguageCode": "x"}}),
                  setup("TEXT", {"translationConfig": {"echoTargetLanguage": True}})):
        error = await refused(frame)
        assert isinstance(error, InvalidArgument) and error.close_code == 1007, frame


async def test_translation_refusals() -> None:
    with_tools = setup("TEXT", {"translationConfig": {"targetLanguageCode": "es"}},
                       tools=[{"functionDeclarations": [{"name": "f"}]}])
    error = await refused(with_tools)
    assert isinstance(error, Unimplemented) and "translationConfig" in error.reason
    conflicting = setup("TEXT", {"translationConfig": {"targetLanguageCode": "es"},
                                 "speechConfig": {"languageCode": "fr-FR"}})
    error = await refused(conflicting)
    assert isinstance(error, InvalidArgument) and "targetLanguageCode" in error.reason
    error = await refused(setup("AUDIO", {"translationConfig": {"targetLanguageCode": "ko"}}),
                          tts=ToneTTS(languages={"en", "es"}))
    assert isinstance(error, Unimplemented) and "'ko'" in error.reason


# --- what the LLM is told ---------------------------------------------------------------------------------


async def test_the_llm_is_told_the_sessions_language() -> None:
    session, llm = make_session()
    await send(session, setup("TEXT", {"speechConfig": {"languageCode": "fr-FR"}},
                              systemInstruction={"parts": [{"text": "Be brief."}]}))
    await session.outbox.get()
    await ask(session, "Bonjour")
    system = llm.prompts[0][0]
    assert system.role == "system" and system.text.startswith("Be brief.")
    assert "Always answer in French (fr-FR)" in system.text
    await session.aclose()

    for english in ({"speechConfig": {"languageCode": "en-US"}}, {}):
        session, llm = make_session()
        await send(session, setup("TEXT", english))
        await session.outbox.get()
        await ask(session, "Hello")
        assert not any("answer in" in m.text for m in llm.prompts[0] if m.role == "system")
        await session.aclose()


async def test_a_translation_session_asks_for_a_translation_of_each_message_alone() -> None:
    session, llm = make_session()
    await send(session, setup("TEXT", {"translationConfig": {"targetLanguageCode": "es-ES"}},
                              systemInstruction={"parts": [{"text": "Use a formal register."}]}))
    await session.outbox.get()
    first = await ask(session, "Good morning")
    await ask(session, "Where is the station?")
    assert said(first)  # the model's text comes back as usual
    for prompt, text in zip(llm.prompts, ["Good morning", "Where is the station?"], strict=True):
        assert [m.role for m in prompt] == ["system", "user"]  # not the conversation: only the newest words
        assert "translator" in prompt[0].text and "Spanish (es-ES)" in prompt[0].text
        assert prompt[0].text.endswith("Use a formal register.")
        assert prompt[1].text == f"Translate into Spanish (es-ES):\n\n{text}"
    await session.aclose()


async def test_a_spoken_translation_uses_the_target_languages_voice() -> None:
    english, fallback = ToneTTS(ms_per_char=1.0, languages={"en"}), ToneTTS(ms_per_char=1.0, languages={"de"})
    asr = ScriptedASR(["good evening"], language="en")
    session, llm = make_session(tts=MultilingualTTS(english, fallback), asr=asr)
    await send(session, setup("AUDIO", {"translationConfig": {"targetLanguageCode": "de"}},
                              inputAudioTranscription={}, outputAudioTranscription={}))
    await session.outbox.get()
    messages = await speak_once(session)
    assert asr.calls[0].detect_among == ()  # the user's language is detected, not assumed
    assert llm.prompts[0][1].text.endswith("good evening")
    assert fallback.requests and not english.requests
    assert all(r.language == "de" for r in fallback.requests)
    assert said(messages)
    await session.aclose()


@pytest.mark.parametrize("echo", [True, False])
async def test_speech_already_in_the_target_language_is_echoed_or_left_unanswered(echo: bool) -> None:
    asr = ScriptedASR(["buenos días a todos"], language="es")
    session, llm = make_session(asr=asr)
    await send(session, setup("AUDIO", {"translationConfig": {"targetLanguageCode": "es-ES",
                                                              "echoTargetLanguage": echo}},
                              outputAudioTranscription={}))
    await session.outbox.get()
    messages = await speak_once(session)
    has_audio = any("modelTurn" in m.get("serverContent", {}) for m in messages)
    if echo:
        assert said(messages).strip() == "buenos días a todos" and has_audio  # word for word, not a model's rendering
    else:
        assert said(messages) == "" and not has_audio
    assert not llm.prompts  # the LLM had nothing to translate
    await session.aclose()


# --- what the recogniser is asked for ---------------------------------------------------------------------


async def heard_with(**extra: object) -> ScriptedASR:
    asr = ScriptedASR(["hello"])
    session, _ = make_session(asr=asr)
    generation = extra.pop("generation", None)
    await send(session, setup("TEXT", generation, **extra))  # type: ignore[arg-type]
    await session.outbox.get()
    await speak_once(session)
    await session.aclose()
    return asr


async def test_transcription_options_reach_the_recogniser() -> None:
    one = await heard_with(inputAudioTranscription={"languageCodes": ["de-DE"]})
    assert (one.calls[0].language, one.calls[0].detect_among) == ("de-DE", None)
    several = await heard_with(inputAudioTranscription={"languageCodes": ["es-ES", "fr-FR", "es-ES"]})
    assert several.calls[0].detect_among == ("es-ES", "fr-FR")
    auto = await heard_with(inputAudioTranscription={"languageAuto": {}})
    assert auto.calls[0].detect_among == ()
    deprecated = await heard_with(inputAudioTranscription={"languageHints": {"languageCodes": ["ja"]},
                                                           "adaptationPhrases": ["Shinkansen"]})
    assert deprecated.calls[0].language == "ja" and deprecated.calls[0].expect == "Shinkansen."
    session_language = await heard_with(generation={"speechConfig": {"languageCode": "hi-IN"}})
    assert session_language.calls[0].language == "hi-IN"
    # languageCodes win over speechConfig.languageCode for recognition
    both = await heard_with(generation={"speechConfig": {"languageCode": "hi-IN"}},
                            inputAudioTranscription={"languageCodes": ["en-IN"]})
    assert both.calls[0].language == "en-IN"
    vocabulary = await heard_with(inputAudioTranscription={"customVocabulary": ["Kubernetes", " localive "],
                                                           "adaptationPhrases": ["localive", "Qwen"]})
    assert vocabulary.calls[0].expect == "Kubernetes, localive, Qwen."
    plain = await heard_with()
    assert (plain.calls[0].language, plain.calls[0].detect_among, plain.calls[0].expect) == (None, None, None)


def test_recognition_prompt_puts_the_vocabulary_before_the_expected_words_and_bounds_it() -> None:
    assert Recognition(vocabulary=("Kubernetes",)).prompt("Mm-hm. Yeah.") == "Kubernetes. Mm-hm. Yeah."
    assert Recognition().prompt(None) is None and Recognition().prompt("Okay.") == "Okay."
    long = Recognition(vocabulary=tuple(f"term{i:04d}" for i in range(1000))).prompt()
    assert long is not None and len(long) <= MAX_VOCABULARY_CHARS + 1 and long.startswith("term0000, term0001")


def test_whisper_detection_is_restricted_to_the_allowed_languages() -> None:
    known = frozenset({"en", "es", "fr", "de", "pt"})
    probabilities = [("<|pt|>", 0.5), ("<|es|>", 0.3), ("<|fr|>", 0.1), ("<|en|>", 0.05)]
    assert pick_language(probabilities, frozenset(), known) == "pt"
    assert pick_language(probabilities, frozenset({"es", "fr"}), known) == "es"
    assert pick_language(probabilities, frozenset({"de"}), known) == "en"  # none qualifies: English
    assert pick_language([("fr", 0.9)], frozenset(), known) == "fr"  # faster-whisper's own list: bare codes
    assert whisper_languages(("es-MX", "fr", "xx-YY", "iw"), frozenset({"es", "fr", "he"})) == {"es", "fr", "he"}


async def test_the_input_transcription_says_the_detected_language_when_detection_was_asked() -> None:
    async def transcription(**extra: object) -> dict:
        session, _ = make_session(asr=ScriptedASR(["hola"], language="es"))
        await send(session, setup("TEXT", None, **extra))  # type: ignore[arg-type]
        await session.outbox.get()
        messages = await speak_once(session)
        await session.aclose()
        return next(m["serverContent"]["inputTranscription"] for m in messages
                    if "inputTranscription" in m.get("serverContent", {}))

    assert (await transcription(inputAudioTranscription={"languageAuto": {}}))["languageCode"] == "es"
    assert (await transcription(inputAudioTranscription={"languageCodes": ["es", "fr"]}))["languageCode"] == "es"
    assert "languageCode" not in await transcription(inputAudioTranscription={})  # nothing was detected
