"""Turn a validated `setup` into the session's settings, refusing what the model or localive cannot do."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic.alias_generators import to_camel

from localive.engines.llm.base import SamplingParams
from localive.engines.tts.base import TTS, UnknownVoice
from localive.engines.voice import VOICE_HINT
from localive.models.registry import ModelEntry, ModelRegistry
from localive.protocol import messages as wire
from localive.protocol.errors import InvalidArgument, Unimplemented
from localive.session.activity import ActivitySettings
from localive.session.engines import Engines
from localive.session.hearing import Recognition
from localive.session.languages import checked_tag, recognition, same_language
from localive.session.thinking import Thinking, thinking_of
from localive.session.translation import Translation, translation_of
from localive.tools.functions import FunctionTool, function_tools
from localive.tools.loader import ToolEngines


@dataclass(frozen=True)
class SessionConfig:
    model: ModelEntry
    response_modality: str
    system_instruction: str | None
    sampling: SamplingParams
    activity_interrupts: bool
    manual_activity: bool
    activity: ActivitySettings = field(default_factory=ActivitySettings)
    voice: str | None = None
    language: str | None = None  # what the model speaks and writes (speechConfig.languageCode / translation target)
    recognition: Recognition = field(default_factory=Recognition)  # what the recogniser listens for
    translation: Translation | None = None  # generationConfig.translationConfig
    input_transcription: bool = False
    output_transcription: bool = False
    tools: SessionTools = field(default_factory=lambda: SessionTools())
    compression: Compression | None = None
    media_resolution: str | None = None
    affective: bool = False  # enableAffectiveDialog: sense how the user sounds, adapt words and delivery
    thinking: Thinking | None = None  # reason before answering (thinkingConfig / a thinking model)
    proactive_audio: bool = False  # proactivity.proactiveAudio: stay silent for speech not meant for the model


@dataclass(frozen=True)
class Compression:
    """contextWindowCompression.slidingWindow: past `trigger_tokens`, drop the oldest turns to `target_tokens`.
    Unset values are fractions of the LLM's context (80 % and half of that)."""

    trigger_tokens: int | None = None
    target_tokens: int | None = None

    def bounds(self, context_tokens: int) -> tuple[int, int]:
        trigger = self.trigger_tokens or int(context_tokens * 0.8)
        target = self.target_tokens if self.target_tokens is not None else trigger // 2
        return trigger, min(target, trigger)


def _compression(setting: wire.ContextWindowCompression | None) -> Compression | None:
    if setting is None:
        return None
    trigger = setting.trigger_tokens
    target = setting.sliding_window.target_tokens if setting.sliding_window else None
    if (trigger is not None and trigger <= 0) or (target is not None and target < 0):
        raise InvalidArgument("contextWindowCompression token counts must be positive.")
    return Compression(trigger, target)


@dataclass(frozen=True)
class SessionTools:
    """The tools a session enabled (setup or contextUpdate), each one checked against the model and server."""

    functions: tuple[FunctionTool, ...] = ()
    code_execution: bool = False
    search: bool = False
    url_context: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.functions) or self.code_execution or self.search or self.url_context

    def function(self, name: str) -> FunctionTool | None:
        return next((f for f in self.functions if f.name == name), None)


# wire tool key → the capability name of the model registry (the seed's table)
_TOOL_KINDS = {"functionDeclarations": "functionDeclarations", "codeExecution": "codeExecution",
               "googleSearch": "googleSearch", "googleSearchRetrieval": "googleSearch", "urlContext": "urlContext"}


def session_tools(tools: list[wire.Tool], model: ModelEntry, engines: Engines | None) -> SessionTools:
    kinds: set[str] = set()
    for tool in tools:
        for key in tool.model_dump(by_alias=True, exclude_none=True):
            kind = _TOOL_KINDS.get(key)
            if kind is None:
                raise Unimplemented(f"The {key} tool is not supported by localive.")
            if kind not in model.tools:
                raise Unimplemented(f"The model {model.name} does not support the {key} tool.")
            kinds.add(kind)
    tool_engines = engines.tools if engines else ToolEngines()
    if "codeExecution" in kinds and tool_engines.sandbox is None:
        raise Unimplemented(f"codeExecution is not available on this server: {tool_engines.sandbox_problem}"[:120])
    if "googleSearch" in kinds and tool_engines.search is None:
        raise Unimplemented("googleSearch is not available on this server (no search provider configured).")
    if "urlContext" in kinds and tool_engines.urls is None:
        raise Unimplemented("urlContext is not available on this server.")
    return SessionTools(
        functions=tuple(function_tools(tools)),
        code_execution="codeExecution" in kinds,
        search="googleSearch" in kinds,
        url_context="urlContext" in kinds,
    )


def _refuse_unsupported(setup: wire.Setup) -> None:
    """Setup fields Gemini has and localive does not do: refused by name (1008), never silently ignored.
    docs/conformance.md lists them with the reason."""
    gen = setup.generation_config
    for name in wire.UNSUPPORTED_GENERATION:
        if gen is not None and getattr(gen, name) is not None:
            raise Unimplemented(f"generationConfig.{to_camel(name)} is not supported in localive's Live sessions.")
    if setup.avatar_config is not None:
        raise Unimplemented("avatarConfig is not supported by localive (no avatar video).")
    if setup.explicit_vad_signal:
        raise Unimplemented("explicitVadSignal is not supported by localive (Vertex AI only); "
                            "it sends voiceActivity instead.")
    for where, transcription in (("inputAudioTranscription", setup.input_audio_transcription),
                                 ("outputAudioTranscription", setup.output_audio_transcription)):
        if transcription is not None and transcription.word_timestamp:
            raise Unimplemented(f"{where}.wordTimestamp is not supported by localive (no per-word timings).")
        if transcription is not None and transcription.diarization:
            raise Unimplemented(f"{where}.diarization is not supported by localive (no speaker labels).")


def content_text(content: wire.Content, where: str) -> str:
    texts = []
    for part in content.parts:
        if part.text is not None and not part.thought:
            texts.append(part.text)
        elif part.thought:
            continue
        elif part.audio_transcription is not None and part.inline_data is None:  # what was said, as history
            texts.append(part.audio_transcription.text or "")
        else:
            kind = next((k for k, v in part.model_dump(by_alias=True).items() if v is not None), None)
            if kind is None:
                raise InvalidArgument(f"{where}: a part has no data (text, inlineData, …).")
            raise Unimplemented(f"{where}: '{kind}' parts are not supported yet by localive (text only).")
    return "\n\n".join(texts)


def session_config(setup: wire.Setup, registry: ModelRegistry, api_version: str,
                   engines: Engines | None = None) -> SessionConfig:
    model = registry.resolve(setup.model, api_version)
    gen = setup.generation_config or wire.GenerationConfig()

    _refuse_unsupported(setup)
    if gen.candidate_count not in (None, 1):
        raise InvalidArgument("Only one candidate (candidateCount 1) is supported.")
    modalities = list(dict.fromkeys(gen.response_modalities or []))
    if len(modalities) > 1:
        raise InvalidArgument("Only one response modality (TEXT or AUDIO) is supported per session.")
    if not modalities:
        modalities = ["AUDIO" if "AUDIO" in model.response_modalities else "TEXT"]
    modality = modalities[0]
    if modality not in model.response_modalities:
        raise InvalidArgument(
            f"The requested combination of response modalities ({modality}) is not supported by the model."
        )
    tts = engines.tts if engines else None
    if modality == "AUDIO" and tts is None:
        raise Unimplemented(f"Speech output is not installed on this server ({VOICE_HINT}).")
    voice, language = _speech(gen.speech_config, tts)
    translation = translation_of(gen.translation_config)
    hearing = recognition(setup.input_audio_transcription, language, translating=translation is not None)
    if translation is not None:
        if language is not None and not same_language(language, translation.target):
            raise InvalidArgument(f"speechConfig.languageCode '{language[:20]}' differs from "
                                  f"translationConfig.targetLanguageCode '{translation.target[:20]}'.")
        language = translation.target
    if modality == "AUDIO" and tts is not None and not tts.speaks(language):
        raise Unimplemented(f"No voice speaks '{(language or '')[:20]}' on this server (non-English speech needs "
                            "espeak-ng; Japanese also pykakasi).")
    if gen.enable_affective_dialog:
        _check_affective(model)

    tools = session_tools(setup.tools or [], model, engines)
    if translation is not None and tools.enabled:
        raise Unimplemented("translationConfig cannot be combined with tools in localive.")
    compression = _compression(setup.context_window_compression)
    proactive = _proactive_audio(setup.proactivity, model, engines)

    system = content_text(setup.system_instruction, "systemInstruction") if setup.system_instruction else None
    rtc = setup.realtime_input_config or wire.RealtimeInputConfig()
    aad = rtc.automatic_activity_detection
    return SessionConfig(
        activity=ActivitySettings.from_setup(rtc, semantic=_semantic_turns(model, aad, engines)),
        tools=tools,
        compression=compression,
        media_resolution=gen.media_resolution,
        voice=voice,
        language=language,
        recognition=hearing,
        translation=translation,
        input_transcription=setup.input_audio_transcription is not None,
        output_transcription=setup.output_audio_transcription is not None,
        model=model,
        response_modality=modality,
        system_instruction=system or None,
        sampling=SamplingParams(
            temperature=gen.temperature,
            top_p=gen.top_p,
            top_k=gen.top_k,
            max_output_tokens=gen.max_output_tokens,
            seed=gen.seed,
            stop=tuple(gen.stop_sequences or ()),
            presence_penalty=gen.presence_penalty,
            frequency_penalty=gen.frequency_penalty,
        ),
        activity_interrupts=rtc.activity_handling != "NO_INTERRUPTION",
        manual_activity=bool(aad and aad.disabled),
        affective=bool(gen.enable_affective_dialog),
        thinking=thinking_of(model, gen),
        proactive_audio=proactive,
    )


def _proactive_audio(proactivity: wire.Proactivity | None, model: ModelEntry, engines: Engines | None) -> bool:
    """proactivity.proactiveAudio: a native-audio feature, judged by the server's `Engines.judge_for`;
    proactiveVideo is not supported here."""
    if proactivity is None:
        return False
    if proactivity.proactive_video:
        raise Unimplemented("proactivity.proactiveVideo is not supported by localive.")
    if proactivity.proactive_audio and not model.proactive_audio:
        raise Unimplemented(f"proactivity is not supported by {model.name}; use a native-audio model.")
    if proactivity.proactive_audio and engines is not None and engines.judge_for is None:
        raise Unimplemented("proactivity.proactiveAudio is not available on this server (no judge).")
    return bool(proactivity.proactive_audio)


def _semantic_turns(model: ModelEntry, aad: wire.AutomaticActivityDetection | None, engines: Engines | None) -> bool:
    """Semantic turn-taking where the server offers it for this model family, unless the client chose its own
    silence window (silenceDurationMs is then honoured exactly)."""
    if engines is None or engines.end_of_turn is None or model.family not in engines.semantic_families:
        return False
    return not (aad and (aad.disabled or aad.silence_duration_ms is not None))


def _check_affective(model: ModelEntry) -> None:
    """Affective dialog is a native-audio feature (accepted on every API version, see docs/affective-dialog.md)."""
    if not model.affective_dialog:
        raise Unimplemented(f"enableAffectiveDialog is not supported by {model.name}; use a native-audio model.")
    try:
        import parselmouth  # noqa: F401  # Praat's pitch tracker, from localive[voice]
    except ImportError:
        raise Unimplemented(f"enableAffectiveDialog needs the pitch tracker ({VOICE_HINT}).") from None


def _speech(speech: wire.SpeechConfig | None, tts: TTS | None) -> tuple[str | None, str | None]:
    """The voice (canonical name) and language code asked for; unknown voices are refused like Gemini does."""
    if speech is None:
        return (tts.resolve_voice(None) if tts else None), None
    if speech.multi_speaker_voice_config:
        raise Unimplemented("multiSpeakerVoiceConfig is not supported in Live sessions.")
    voice_config = speech.voice_config or wire.VoiceConfig()
    if voice_config.replicated_voice_config:
        raise Unimplemented("Voice cloning (replicatedVoiceConfig) is not supported by localive.")
    prebuilt = voice_config.prebuilt_voice_config
    name = (prebuilt.voice_name if prebuilt else None) or voice_config.voice
    language = checked_tag(speech.language_code, "speechConfig.languageCode") if speech.language_code else None
    if tts is None:  # a text-only server: the voice is never used
        return name, language
    try:
        return tts.resolve_voice(name), language
    except UnknownVoice:
        raise InvalidArgument(f"Voice name '{(name or '')[:40]}' is not supported.") from None
