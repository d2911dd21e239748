"""What localive does with every field an official SDK can put on the Live wire, and when it sends each server field.

The conformance test (tests/conformance/test_conformance.py) drives every client field the SDK knows into a live
server and checks each outcome against these rules; a field no rule names fails the test, so a new SDK release that
adds a field is caught. docs/conformance.md is rendered from these tables (``python -m tests.conformance.render``).

A pattern is a wire path in camelCase: segments joined by ".", "[]" after a list, "*" for one segment, "**" for
anything below (free-form values such as function arguments). The first matching rule applies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WORKS = "works"
NO_EFFECT = "no effect"
INVALID = "1007"  # refused: the value is invalid (as Gemini refuses it)
UNSUPPORTED = "1008"  # refused: Gemini has it, localive does not do it (the reason names the field)


@dataclass(frozen=True)
class Rule:
    pattern: str
    behaviour: str  # WORKS, NO_EFFECT, INVALID or UNSUPPORTED
    note: str
    test: str = ""  # where the behaviour is shown
    values: dict[str, str] = field(default_factory=dict)  # enum value → behaviour, where one differs

    def behaviour_for(self, value: object) -> str:
        return self.values.get(str(value).upper(), self.behaviour) if isinstance(value, str) else self.behaviour


def _parts(prefix: str, where: str) -> list[Rule]:
    """The rules for the parts of a Content (clientContent turns, systemInstruction, contextUpdate)."""
    history = prefix.startswith("clientContent")
    image = (WORKS, "an image (JPEG, PNG or WebP) is shown to the model as the latest video frame; other types "
             "1007 or 1008",
             "tests/integration/test_conformance_session.py") if history else (
        UNSUPPORTED, f"{where} takes text only")
    return [
        Rule(prefix, INVALID, "a part with no data at all (`{}`) is refused", "tests/unit/test_conformance_parts.py"),
        Rule(f"{prefix}.text", WORKS, "the text", "tests/integration/test_python_sdk.py"),
        Rule(f"{prefix}.thought", NO_EFFECT, "thought parts are left out of the model's context"),
        Rule(f"{prefix}.thoughtSignature", NO_EFFECT, "signatures belong to Gemini's own thoughts; nothing to check"),
        Rule(f"{prefix}.inlineData.**", image[0], image[1], image[2] if history else ""),
        Rule(f"{prefix}.audioTranscription.**", WORKS,
             "a transcription part is taken as the text of what was said", "tests/unit/test_conformance_parts.py"),
        Rule(f"{prefix}.mediaResolution.**", NO_EFFECT,
             "per-part media resolution: frames are read at one detail here (see generationConfig.mediaResolution)",
             "tests/integration/test_conformance_session.py"),
        Rule(f"{prefix}.videoMetadata.**", NO_EFFECT, "describes video data, which localive does not take in parts"),
        Rule(f"{prefix}.partMetadata.**", NO_EFFECT, "the app's own metadata, kept with nothing to do"),
        Rule(f"{prefix}.mediaProcessing", NO_EFFECT, "media are read one way here"),
        Rule(f"{prefix}.speechMetadata.**", NO_EFFECT, "speaker/style notes on a part; the model sees the text"),
        Rule(f"{prefix}.documentMetadata.**", NO_EFFECT, "describes document data, which localive does not take"),
        Rule(f"{prefix}.spreadsheetMetadata.**", NO_EFFECT, "describes spreadsheet data, which localive does not take"),
        Rule(f"{prefix}.audioMetadata.**", NO_EFFECT, "describes audio data, which localive does not take in parts"),
        Rule(f"{prefix}.fileData.**", UNSUPPORTED, "files by URI are not fetched (1008 names the part)"),
        *([Rule(f"{prefix}.functionCall.**", WORKS, "a call the model made, replayed into history (model turns)",
                "tests/unit/test_conformance_parts.py"),
           Rule(f"{prefix}.functionResponse.**", WORKS, "its result, replayed into history",
                "tests/unit/test_conformance_parts.py"),
           Rule(f"{prefix}.executableCode.**", WORKS, "code the model ran, replayed into history",
                "tests/unit/test_conformance_parts.py"),
           Rule(f"{prefix}.codeExecutionResult.**", WORKS, "the code's output, replayed into history",
                "tests/unit/test_conformance_parts.py")] if history else
          [Rule(f"{prefix}.{kind}.**", UNSUPPORTED, f"{where} takes text only")
           for kind in ("functionCall", "functionResponse", "executableCode", "codeExecutionResult")]),
        Rule(f"{prefix}.toolCall.**", UNSUPPORTED, "server-side tool history cannot be replayed yet"),
        Rule(f"{prefix}.toolResponse.**", UNSUPPORTED, "server-side tool history cannot be replayed yet"),
    ]


_TRANSCRIPTION = [
    Rule("setup.inputAudioTranscription.languageCodes[]", WORKS,
         "the recogniser's language; several codes: Whisper detects among them (docs/languages.md)",
         "tests/unit/test_languages.py"),
    Rule("setup.inputAudioTranscription.languageHints.languageCodes[]", WORKS,
         "the SDK's older name for languageCodes", "tests/unit/test_languages.py"),
    Rule("setup.inputAudioTranscription.languageAuto", WORKS, "Whisper detects the language",
         "tests/unit/test_languages.py"),
    Rule("setup.inputAudioTranscription.customVocabulary[]", WORKS, "Whisper's prompt (words to expect)",
         "tests/unit/test_languages.py"),
    Rule("setup.inputAudioTranscription.adaptationPhrases[]", WORKS, "the SDK's older name for customVocabulary",
         "tests/unit/test_languages.py"),
    Rule("setup.outputAudioTranscription.languageCodes[]", NO_EFFECT,
         "the output transcript is the text that was spoken, in its language"),
    Rule("setup.outputAudioTranscription.languageHints.languageCodes[]", NO_EFFECT, "as languageCodes"),
    Rule("setup.outputAudioTranscription.languageAuto", NO_EFFECT, "as languageCodes"),
    Rule("setup.outputAudioTranscription.customVocabulary[]", NO_EFFECT, "the transcript is the spoken text itself"),
    Rule("setup.outputAudioTranscription.adaptationPhrases[]", NO_EFFECT, "as customVocabulary"),
    Rule("setup.*AudioTranscription.wordTimestamp", UNSUPPORTED, "no per-word timings (1008 when true)"),
    Rule("setup.*AudioTranscription.diarization", UNSUPPORTED, "no speaker labels (1008 when true)"),
    Rule("setup.*AudioTranscription.mode", NO_EFFECT, "Whisper writes one way (close to VERBATIM)"),
    Rule("setup.*AudioTranscription.sourceText", NO_EFFECT, "no reference text is used"),
    Rule("setup.*AudioTranscription", WORKS, "transcripts of the user's speech / the model's speech",
         "tests/integration/test_voice.py"),
]

_GENERATION_UNSUPPORTED = ("responseMimeType", "responseSchema", "responseJsonSchema", "responseLogprobs",
                           "logprobs", "routingConfig", "modelSelectionConfig", "audioTimestamp",
                           "enableEnhancedCivicAnswers", "responseFormat", "audioTranscriptionConfig")

_NOT_OBJECT = dict.fromkeys(("STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "NULL"), INVALID)

CLIENT_RULES: list[Rule] = [
    # --- setup ---------------------------------------------------------------------------------------------
    Rule("setup.model", WORKS, "the registry's names (docs/models in README); unknown names 1008 as Gemini",
         "tests/unit/test_registry.py"),
    Rule("setup.generationConfig.responseModalities[]", WORKS, "TEXT or AUDIO, one per session",
         "tests/integration/test_python_sdk.py", values={"IMAGE": INVALID, "VIDEO": INVALID}),
    *[Rule(f"setup.generationConfig.{name}", WORKS, "sampling, passed to the LLM", "tests/unit/test_session.py")
      for name in ("temperature", "topP", "topK", "maxOutputTokens", "seed", "stopSequences[]", "presencePenalty",
                   "frequencyPenalty")],
    Rule("setup.generationConfig.candidateCount", WORKS, "1 only; any other count 1007"),
    Rule("setup.generationConfig.mediaResolution", WORKS, "video token accounting (LOW 66, else 258 a frame)",
         "tests/unit/test_vision.py"),
    Rule("setup.generationConfig.speechConfig.voiceConfig.prebuiltVoiceConfig.voiceName", WORKS,
         "all 30 Live voice names (docs/voices.md); unknown names 1007", "tests/integration/test_voice.py"),
    Rule("setup.generationConfig.speechConfig.voiceConfig.voice", WORKS, "as voiceName"),
    Rule("setup.generationConfig.speechConfig.voiceConfig.replicatedVoiceConfig.**", UNSUPPORTED,
         "voice cloning is not offered"),
    Rule("setup.generationConfig.speechConfig.multiSpeakerVoiceConfig.**", UNSUPPORTED,
         "one voice per session (the SDK refuses it too, except through generation_config)"),
    Rule("setup.generationConfig.speechConfig.languageCode", WORKS,
         "the answer's language: the LLM is told it, non-English speech uses espeak-ng (docs/languages.md)",
         "tests/integration/test_languages.py"),
    Rule("setup.generationConfig.thinkingConfig.**", WORKS, "docs/thinking.md", "tests/unit/test_thinking.py"),
    Rule("setup.generationConfig.enableAffectiveDialog", WORKS,
         "native-audio models that have it (1008 on others); docs/affective-dialog.md",
         "tests/integration/test_affective.py"),
    Rule("setup.generationConfig.translationConfig.**", WORKS,
         "the user's words translated into the target language and spoken in it (docs/languages.md)",
         "tests/integration/test_languages.py"),
    *[Rule(f"setup.generationConfig.{name}.**", UNSUPPORTED,
           "only through the SDK's deprecated generation_config; not offered in Live sessions here")
      for name in _GENERATION_UNSUPPORTED],
    Rule("setup.systemInstruction.role", WORKS, "ignored as Gemini does"),
    *_parts("setup.systemInstruction.parts[]", "systemInstruction"),
    Rule("setup.tools[].functionDeclarations[].parameters.nullable", INVALID,
         "the parameters object itself cannot be null (1007)"),
    Rule("setup.tools[].functionDeclarations[].parameters.type", WORKS, "parameters describe an object; any other "
         "type is refused (1007)", "tests/unit/test_function_tools.py", values=_NOT_OBJECT),
    Rule("setup.tools[].functionDeclarations[].**", WORKS, "function calling (docs/tools.md)",
         "tests/integration/test_tools.py"),
    Rule("setup.tools[].codeExecution.**", WORKS, "a sandboxed Python (docs/code-execution.md)",
         "tests/integration/test_tools.py"),
    Rule("setup.tools[].googleSearch.**", WORKS, "local search (docs/search.md); its filters have no effect",
         "tests/integration/test_tools.py"),
    Rule("setup.tools[].googleSearchRetrieval.**", WORKS, "as googleSearch"),
    Rule("setup.tools[].urlContext.**", WORKS, "docs/url-context.md", "tests/integration/test_tools.py"),
    Rule("setup.tools[].googleMaps.**", UNSUPPORTED, "no maps"),
    Rule("setup.tools[].computerUse.**", UNSUPPORTED, "no computer use"),
    Rule("setup.tools[].fileSearch.**", UNSUPPORTED, "no file stores"),
    Rule("setup.tools[].mcpServers[].**", UNSUPPORTED, "no MCP servers"),
    Rule("setup.realtimeInputConfig.automaticActivityDetection.**", WORKS, "docs/turn-taking.md",
         "tests/integration/test_voice.py"),
    Rule("setup.realtimeInputConfig.activityHandling", WORKS, "NO_INTERRUPTION queues the reply",
         "tests/integration/test_voice.py"),
    Rule("setup.realtimeInputConfig.turnCoverage", WORKS, "TURN_INCLUDES_ALL_INPUT keeps audio before speech"),
    Rule("setup.realtimeInputConfig.interimTranscriptTimestampEnabled", NO_EFFECT,
         "no interim transcripts are sent here (one per utterance), so there is nothing to timestamp",
         "tests/integration/test_conformance_session.py"),
    Rule("setup.sessionResumption.**", WORKS, "docs/sessions.md", "tests/integration/test_long_sessions.py"),
    Rule("setup.contextWindowCompression.**", WORKS, "docs/sessions.md", "tests/integration/test_long_sessions.py"),
    *_TRANSCRIPTION,
    Rule("setup.proactivity.proactiveAudio", WORKS, "native-audio models that have it; docs/proactive-audio.md",
         "tests/integration/test_proactive.py"),
    Rule("setup.proactivity.proactiveVideo", UNSUPPORTED, "no proactive video"),
    Rule("setup.explicitVadSignal", UNSUPPORTED, "Vertex AI only; localive sends voiceActivity instead"),
    Rule("setup.historyConfig.initialHistoryInClientContent", WORKS,
         "the first clientContent up to turnComplete is history and is not answered",
         "tests/integration/test_server_signals.py"),
    Rule("setup.avatarConfig.**", UNSUPPORTED, "no avatar video"),
    Rule("setup.safetySettings[].**", NO_EFFECT, "localive does not filter content, so no threshold is enforced"),
    Rule("setup.labels.**", NO_EFFECT, "billing labels; there is no bill"),
    # --- clientContent ----------------------------------------------------------------------------------------
    Rule("clientContent.turns[].role", WORKS, "user or model; others 1007", "tests/integration/test_python_sdk.py"),
    *_parts("clientContent.turns[].parts[]", "clientContent"),
    Rule("clientContent.turnComplete", WORKS, "true starts the model's turn", "tests/integration/test_python_sdk.py"),
    # --- realtimeInput ----------------------------------------------------------------------------------------
    Rule("realtimeInput.audio.**", WORKS, "PCM at any rate 8–96 kHz; bare audio/pcm is 16 kHz",
         "tests/integration/test_voice.py"),
    Rule("realtimeInput.video.**", WORKS, "JPEG, PNG or WebP frames", "tests/integration/test_video.py"),
    Rule("realtimeInput.mediaChunks[].**", WORKS, "the deprecated form: audio or a frame"),
    Rule("realtimeInput.text", WORKS, "a user turn", "tests/integration/test_python_sdk.py"),
    Rule("realtimeInput.audioStreamEnd", WORKS, "ends the utterance", "tests/integration/test_voice.py"),
    Rule("realtimeInput.activityStart", WORKS, "manual activity (with automatic detection disabled)",
         "tests/integration/test_voice.py"),
    Rule("realtimeInput.activityEnd", WORKS, "as activityStart", "tests/integration/test_voice.py"),
    # --- toolResponse -----------------------------------------------------------------------------------------
    Rule("toolResponse.functionResponses[].id", WORKS, "must answer a pending call; unknown ids 1007",
         "tests/integration/test_tools.py"),
    Rule("toolResponse.functionResponses[].name", WORKS, "must match the call"),
    Rule("toolResponse.functionResponses[].response.**", WORKS, "the result, in the model's context",
         "tests/integration/test_tools.py"),
    Rule("toolResponse.functionResponses[].willContinue", WORKS, "NON_BLOCKING generators",
         "tests/integration/test_tools.py"),
    Rule("toolResponse.functionResponses[].scheduling", WORKS, "SILENT, WHEN_IDLE, INTERRUPT",
         "tests/unit/test_session_tools.py"),
    Rule("toolResponse.functionResponses[].parts[].inlineData.**", WORKS,
         "the model is told which media came back (not their content)"),
    Rule("toolResponse.functionResponses[].parts[].fileData.**", WORKS, "as inlineData"),
    Rule("toolResponse.functionResponses[].parts[].**", NO_EFFECT, "metadata about returned media"),
    # --- contextUpdate ----------------------------------------------------------------------------------------
    *_parts("contextUpdate.systemInstruction.parts[]", "contextUpdate.systemInstruction"),
    Rule("contextUpdate.systemInstruction.role", WORKS, "ignored as Gemini does"),
    Rule("contextUpdate.tools.tools[].functionDeclarations[].parameters.nullable", INVALID,
         "the parameters object itself cannot be null (1007)"),
    Rule("contextUpdate.tools.tools[].functionDeclarations[].parameters.type", WORKS, "as in setup",
         values=_NOT_OBJECT),
    Rule("contextUpdate.tools.tools[].functionDeclarations[].**", WORKS, "replaces the tools",
         "tests/integration/test_python_sdk.py"),
    Rule("contextUpdate.tools.tools[].codeExecution.**", WORKS, "as in setup"),
    Rule("contextUpdate.tools.tools[].googleSearch.**", WORKS, "as in setup"),
    Rule("contextUpdate.tools.tools[].googleSearchRetrieval.**", WORKS, "as in setup"),
    Rule("contextUpdate.tools.tools[].urlContext.**", WORKS, "as in setup"),
    Rule("contextUpdate.tools.tools[].*.**", UNSUPPORTED, "as in setup"),
]

SEVERITY = {WORKS: 0, NO_EFFECT: 0, INVALID: 1, UNSUPPORTED: 1}


@dataclass(frozen=True)
class ServerField:
    path: str
    when: str
    test: str = ""


SERVER_FIELDS: list[ServerField] = [
    ServerField("setupComplete", "first message, once setup is accepted", "tests/integration/test_bad_input.py"),
    ServerField("setupComplete.sessionId", "always", "tests/integration/test_bad_input.py"),
    ServerField("setupComplete.voiceConsentSignature", "never: voice cloning (replicatedVoiceConfig) is refused"),
    ServerField("serverContent.modelTurn", "the answer: text parts, or 24 kHz PCM audio parts",
                "tests/integration/test_python_sdk.py"),
    ServerField("serverContent.turnComplete", "end of every model turn (after playback time for audio)",
                "tests/integration/test_python_sdk.py"),
    ServerField("serverContent.interrupted", "barge-in or a new clientContent during an answer",
                "tests/integration/test_voice.py"),
    ServerField("serverContent.generationComplete", "the model finished generating (not on interrupted turns)",
                "tests/integration/test_python_sdk.py"),
    ServerField("serverContent.groundingMetadata", "answers that used googleSearch", "tests/integration/test_tools.py"),
    ServerField("serverContent.urlContextMetadata", "answers that read URLs", "tests/integration/test_tools.py"),
    ServerField("serverContent.inputTranscription", "with inputAudioTranscription: once per utterance, finished; "
                "with the detected languageCode when the session asked for detection (languageAuto or several "
                "languageCodes); never words[], speakerLabel or offsets", "tests/integration/test_voice.py"),
    ServerField("serverContent.outputTranscription", "with outputAudioTranscription: a piece per spoken clause, "
                "then {finished: true} before generationComplete (or interrupted)",
                "tests/integration/test_server_signals.py"),
    ServerField("serverContent.turnCompleteReason", "MALFORMED_FUNCTION_CALL when the model's call failed its "
                "schema; NEED_MORE_INPUT is never sent (a held pause starts no turn: waitingForInput instead)",
                "tests/unit/test_session_tools.py"),
    ServerField("serverContent.waitingForInput", "semantic turn-taking holds a pause judged mid-sentence",
                "tests/integration/test_server_signals.py"),
    ServerField("serverContent.interimInputTranscription", "never: transcripts come once per utterance"),
    ServerField("serverContent.interactionStatus", "never: a non-idle status would change where the Python SDK's "
                "receive() ends a turn"),
    ServerField("toolCall", "the model calls declared functions", "tests/integration/test_tools.py"),
    ServerField("toolCallCancellation", "an interrupted turn had pending calls", "tests/integration/test_tools.py"),
    ServerField("usageMetadata", "with every turnComplete", "tests/integration/test_python_sdk.py"),
    ServerField("goAway", "before the connection's time limit (--limits gemini, --max-connection-s)",
                "tests/integration/test_long_sessions.py"),
    ServerField("sessionResumptionUpdate", "with sessionResumption: at every resumable point",
                "tests/integration/test_long_sessions.py"),
    ServerField("voiceActivity", "automatic activity detection heard speech start / end (with its offset)",
                "tests/integration/test_server_signals.py"),
    ServerField("voiceActivityDetectionSignal", "never: explicitVadSignal (Vertex AI) is refused"),
]
