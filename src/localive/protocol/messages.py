"""Client → server wire messages (docs/protocol-notes.md#client-messages), validated after key normalisation.

We own these models instead of reusing google-genai's types: those are client-side types, incomplete as a server
schema (e.g. ``LiveClientSetup`` has no ``realtimeInputConfig``) and lenient about unknown fields. Here unknown
fields are refused (close 1007), as Google's proto3 parser refuses them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictStr
from pydantic.alias_generators import to_camel

from localive.protocol.b64 import decode_lenient


class WireModel(BaseModel):
    # bytes (base64 on the wire) dump back to base64 in JSON mode: a saved setup (sessionResumption) round-trips
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True,
                              ser_json_bytes="base64")


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _bytes(value: Any) -> Any:
    if isinstance(value, str):
        return decode_lenient(value)
    raise ValueError("expected a base64 string")


# A proto enum is given by name; names are matched case-insensitively: Annotated[Literal[...], UPPER].
UPPER = BeforeValidator(_upper)


Outcome = Annotated[Literal[
    "OUTCOME_UNSPECIFIED",
    "OUTCOME_OK",
    "OUTCOME_FAILED",
    "OUTCOME_DEADLINE_EXCEEDED",
], UPPER]
ThinkingLevel = Annotated[Literal[
    "THINKING_LEVEL_UNSPECIFIED",
    "MINIMAL",
    "LOW",
    "MEDIUM",
    "HIGH",
    "XHIGH",
], UPPER]
MediaResolution = Annotated[Literal[
    "MEDIA_RESOLUTION_UNSPECIFIED",
    "MEDIA_RESOLUTION_LOW",
    "MEDIA_RESOLUTION_MEDIUM",
    "MEDIA_RESOLUTION_HIGH",
], UPPER]
StartSensitivity = Annotated[Literal[
    "START_SENSITIVITY_UNSPECIFIED",
    "START_SENSITIVITY_HIGH",
    "START_SENSITIVITY_LOW",
], UPPER]
EndSensitivity = Annotated[Literal[
    "END_SENSITIVITY_UNSPECIFIED",
    "END_SENSITIVITY_HIGH",
    "END_SENSITIVITY_LOW",
], UPPER]
ActivityHandling = Annotated[Literal[
    "ACTIVITY_HANDLING_UNSPECIFIED",
    "START_OF_ACTIVITY_INTERRUPTS",
    "NO_INTERRUPTION",
], UPPER]
TurnCoverage = Annotated[Literal[
    "TURN_COVERAGE_UNSPECIFIED",
    "TURN_INCLUDES_ONLY_ACTIVITY",
    "TURN_INCLUDES_ALL_INPUT",
    "TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO",
], UPPER]

Base64Bytes = Annotated[bytes, BeforeValidator(_bytes)]
FreeForm = Any  # a proto Struct/Value: kept verbatim


class Empty(WireModel):
    pass


# --- Content -------------------------------------------------------------------------------------------------

class Blob(WireModel):
    mime_type: StrictStr = ""
    data: Base64Bytes = b""
    display_name: StrictStr | None = None


class FileData(WireModel):
    mime_type: StrictStr | None = None
    file_uri: StrictStr
    display_name: StrictStr | None = None


class FunctionCall(WireModel):
    id: StrictStr | None = None
    name: StrictStr
    args: dict[str, FreeForm] | None = None
    partial_args: list[FreeForm] | None = None
    will_continue: StrictBool | None = None


Scheduling = Annotated[Literal["SCHEDULING_UNSPECIFIED", "SILENT", "WHEN_IDLE", "INTERRUPT"], UPPER]


PartMediaResolutionLevel = Annotated[Literal[
    "MEDIA_RESOLUTION_UNSPECIFIED",
    "MEDIA_RESOLUTION_LOW",
    "MEDIA_RESOLUTION_MEDIUM",
    "MEDIA_RESOLUTION_HIGH",
    "MEDIA_RESOLUTION_ULTRA_HIGH",
], UPPER]
VideoLayer = Annotated[Literal["CONTENT_LAYER_UNSPECIFIED", "FRAMES", "AUDIO", "TRANSCRIPT"], UPPER]
DocumentLayer = Annotated[Literal["CONTENT_LAYER_UNSPECIFIED", "PAGE_IMAGE", "PAGE_TEXT"], UPPER]
SpreadsheetLayer = Annotated[Literal["CONTENT_LAYER_UNSPECIFIED", "DATA", "FORMULAS", "VISUAL"], UPPER]
MediaProcessing = Annotated[Literal["MEDIA_PROCESSING_UNSPECIFIED", "STATIC", "AGENTIC"], UPPER]


class PartMediaResolution(WireModel):
    """Per-part media resolution (Gemini 3). No effect here: frames are read at one detail (docs/conformance.md)."""

    level: PartMediaResolutionLevel | None = None
    num_tokens: int | None = None


class VideoMetadata(WireModel):
    start_offset: StrictStr | None = None
    end_offset: StrictStr | None = None
    fps: float | None = None
    content_layers: list[VideoLayer] | None = None


class DocumentMetadata(WireModel):
    start_page: int | None = None
    end_page: int | None = None
    content_layers: list[DocumentLayer] | None = None


class SpreadsheetMetadata(WireModel):
    visible_cells: StrictStr | None = None
    sheet_index: int | None = None
    content_layers: list[SpreadsheetLayer] | None = None


class AudioMetadata(WireModel):
    start_offset: StrictStr | None = None
    end_offset: StrictStr | None = None


class FunctionResponsePart(WireModel):
    inline_data: Blob | None = None
    file_data: FileData | None = None
    media_processing: MediaProcessing | None = None
    media_resolution: PartMediaResolution | None = None
    video_metadata: VideoMetadata | None = None
    document_metadata: DocumentMetadata | None = None
    spreadsheet_metadata: SpreadsheetMetadata | None = None
    audio_metadata: AudioMetadata | None = None


class FunctionResponse(WireModel):
    id: StrictStr | None = None
    name: StrictStr | None = None
    response: dict[str, FreeForm] | None = None
    parts: list[FunctionResponsePart] | None = None
    will_continue: StrictBool | None = None
    scheduling: Scheduling | None = None


class ExecutableCode(WireModel):
    id: StrictStr | None = None
    language: Annotated[Literal["LANGUAGE_UNSPECIFIED", "PYTHON"], UPPER] = "PYTHON"
    code: StrictStr


class CodeExecutionResult(WireModel):
    id: StrictStr | None = None
    outcome: Outcome
    output: StrictStr | None = None


ToolType = Annotated[Literal[
    "TOOL_TYPE_UNSPECIFIED",
    "GOOGLE_SEARCH_WEB",
    "GOOGLE_SEARCH_IMAGE",
    "URL_CONTEXT",
    "GOOGLE_MAPS",
    "FILE_SEARCH",
    "MEDIA_PROCESSING",
], UPPER]


class ServerToolCall(WireModel):
    """A server-side tool's call in history (`Part.toolCall`)."""

    id: StrictStr | None = None
    tool_type: ToolType | None = None
    args: dict[str, FreeForm] | None = None


class ServerToolResponse(WireModel):
    """A server-side tool's result in history (`Part.toolResponse`)."""

    id: StrictStr | None = None
    tool_type: ToolType | None = None
    response: dict[str, FreeForm] | None = None


class WordInfo(WireModel):
    word: StrictStr | None = None
    start_offset: StrictStr | None = None
    end_offset: StrictStr | None = None
    confidence: float | None = None


class Transcription(WireModel):
    text: StrictStr | None = None
    finished: StrictBool | None = None
    language_code: StrictStr | None = None
    speaker_label: StrictStr | None = None
    words: list[WordInfo] | None = None
    start_offset: StrictStr | None = None
    end_offset: StrictStr | None = None


class SpeechMetadata(WireModel):
    speaker: StrictStr | None = None
    style: StrictStr | None = None


class Part(WireModel):
    text: StrictStr | None = None
    inline_data: Blob | None = None
    file_data: FileData | None = None
    function_call: FunctionCall | None = None
    function_response: FunctionResponse | None = None
    executable_code: ExecutableCode | None = None
    code_execution_result: CodeExecutionResult | None = None
    thought: StrictBool | None = None
    thought_signature: Base64Bytes | None = None
    video_metadata: VideoMetadata | None = None
    # Newer fields (SDK 3.3 – 3.6): metadata about the part; what each does here is in docs/conformance.md.
    media_resolution: PartMediaResolution | None = None
    part_metadata: dict[str, FreeForm] | None = None
    tool_call: ServerToolCall | None = None
    tool_response: ServerToolResponse | None = None
    audio_transcription: Transcription | None = None
    media_processing: MediaProcessing | None = None
    speech_metadata: SpeechMetadata | None = None
    document_metadata: DocumentMetadata | None = None
    spreadsheet_metadata: SpreadsheetMetadata | None = None
    audio_metadata: AudioMetadata | None = None


MAX_PARTS = 1_000  # parts of one Content
MAX_TURNS = 1_000  # turns of one clientContent


class Content(WireModel):
    role: StrictStr | None = None
    parts: list[Part] = Field(default_factory=list, max_length=MAX_PARTS)


# --- Setup ---------------------------------------------------------------------------------------------------

Modality = Annotated[Literal["MODALITY_UNSPECIFIED", "TEXT", "IMAGE", "AUDIO", "VIDEO"], UPPER]


class PrebuiltVoiceConfig(WireModel):
    voice_name: StrictStr | None = None


class ReplicatedVoiceConfig(WireModel):
    mime_type: StrictStr | None = None
    voice_sample_audio: Base64Bytes | None = None
    consent_audio: Base64Bytes | None = None
    voice_consent_signature: dict[str, FreeForm] | None = None


class VoiceConfig(WireModel):
    prebuilt_voice_config: PrebuiltVoiceConfig | None = None
    replicated_voice_config: ReplicatedVoiceConfig | None = None
    voice: StrictStr | None = None


class SpeechConfig(WireModel):
    voice_config: VoiceConfig | None = None
    language_code: StrictStr | None = None
    multi_speaker_voice_config: dict[str, FreeForm] | None = None


class ThinkingConfig(WireModel):
    include_thoughts: StrictBool | None = None
    thinking_budget: int | None = None
    thinking_level: ThinkingLevel | None = None


class TranslationConfig(WireModel):
    target_language_code: StrictStr | None = None
    echo_target_language: StrictBool | None = None


class GenerationConfig(WireModel):
    response_modalities: list[Modality] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_output_tokens: int | None = None
    candidate_count: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    stop_sequences: list[StrictStr] | None = None
    seed: int | None = None
    media_resolution: MediaResolution | None = None
    speech_config: SpeechConfig | None = None
    thinking_config: ThinkingConfig | None = None
    enable_affective_dialog: StrictBool | None = None
    translation_config: TranslationConfig | None = None
    # GenerationConfig fields the SDK can still send through its deprecated `generation_config` passthrough, which
    # Live sessions here do not support: known names (not 1007 "Unknown name"), refused by the session with 1008.
    response_mime_type: FreeForm | None = None
    response_schema: FreeForm | None = None
    response_json_schema: FreeForm | None = None
    response_logprobs: FreeForm | None = None
    logprobs: FreeForm | None = None
    routing_config: FreeForm | None = None
    model_selection_config: FreeForm | None = None
    audio_timestamp: FreeForm | None = None
    enable_enhanced_civic_answers: FreeForm | None = None
    response_format: FreeForm | None = None
    audio_transcription_config: FreeForm | None = None


UNSUPPORTED_GENERATION = ("response_mime_type", "response_schema", "response_json_schema", "response_logprobs",
                          "logprobs", "routing_config", "model_selection_config", "audio_timestamp",
                          "enable_enhanced_civic_answers", "response_format", "audio_transcription_config")


class FunctionDeclaration(WireModel):
    name: StrictStr
    description: StrictStr | None = None
    parameters: dict[str, Any] | None = None
    parameters_json_schema: FreeForm | None = None
    response: FreeForm | None = None
    response_json_schema: FreeForm | None = None
    behavior: Annotated[Literal["UNSPECIFIED", "BLOCKING", "NON_BLOCKING"], UPPER] | None = None


class Tool(WireModel):
    function_declarations: list[FunctionDeclaration] | None = None
    code_execution: dict[str, FreeForm] | None = None
    google_search: dict[str, FreeForm] | None = None
    google_search_retrieval: dict[str, FreeForm] | None = None
    url_context: dict[str, FreeForm] | None = None
    google_maps: dict[str, FreeForm] | None = None
    computer_use: dict[str, FreeForm] | None = None
    file_search: dict[str, FreeForm] | None = None
    mcp_servers: list[FreeForm] | None = None


class AutomaticActivityDetection(WireModel):
    disabled: StrictBool | None = None
    start_of_speech_sensitivity: StartSensitivity | None = None
    end_of_speech_sensitivity: EndSensitivity | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None


class RealtimeInputConfig(WireModel):
    automatic_activity_detection: AutomaticActivityDetection | None = None
    activity_handling: ActivityHandling | None = None
    turn_coverage: TurnCoverage | None = None
    # Timestamps on interim input transcripts. Accepted with no effect: localive sends one input transcript per
    # utterance, never interim ones, so there is nothing to timestamp (README, "How voice works here").
    interim_transcript_timestamp_enabled: StrictBool | None = None


class SessionResumptionConfig(WireModel):
    handle: StrictStr | None = None
    transparent: StrictBool | None = None


class SlidingWindow(WireModel):
    target_tokens: int | None = None


class ContextWindowCompression(WireModel):
    trigger_tokens: int | None = None
    sliding_window: SlidingWindow | None = None


class LanguageHints(WireModel):
    language_codes: list[StrictStr] | None = None


class AudioTranscriptionConfig(WireModel):
    language_codes: list[StrictStr] | None = None
    language_auto: Empty | None = None  # deprecated in the SDK; an empty message
    language_hints: LanguageHints | None = None  # deprecated in the SDK, for language_codes
    custom_vocabulary: list[StrictStr] | None = None
    adaptation_phrases: list[StrictStr] | None = None  # deprecated in the SDK, for custom_vocabulary
    word_timestamp: StrictBool | None = None
    diarization: StrictBool | None = None
    mode: Annotated[Literal["MODE_UNSPECIFIED", "VERBATIM", "SMART"], UPPER] | None = None
    source_text: StrictStr | None = None


class Proactivity(WireModel):
    proactive_audio: StrictBool | None = None
    proactive_video: StrictBool | None = None


class HistoryConfig(WireModel):
    initial_history_in_client_content: StrictBool | None = None


class SafetySetting(WireModel):
    category: StrictStr | None = None
    threshold: StrictStr | None = None
    method: StrictStr | None = None


class Setup(WireModel):
    model: StrictStr
    generation_config: GenerationConfig | None = None
    system_instruction: Content | None = None
    tools: list[Tool] | None = None
    realtime_input_config: RealtimeInputConfig | None = None
    session_resumption: SessionResumptionConfig | None = None
    context_window_compression: ContextWindowCompression | None = None
    input_audio_transcription: AudioTranscriptionConfig | None = None
    output_audio_transcription: AudioTranscriptionConfig | None = None
    proactivity: Proactivity | None = None
    explicit_vad_signal: StrictBool | None = None
    history_config: HistoryConfig | None = None
    avatar_config: dict[str, FreeForm] | None = None
    safety_settings: list[SafetySetting] | None = None
    labels: dict[str, StrictStr] | None = None


# --- Runtime messages ----------------------------------------------------------------------------------------

class ClientContent(WireModel):
    turns: list[Content] | None = Field(default=None, max_length=MAX_TURNS)
    turn_complete: StrictBool = False


class RealtimeInput(WireModel):
    audio: Blob | None = None
    video: Blob | None = None
    text: StrictStr | None = None
    audio_stream_end: StrictBool | None = None
    activity_start: Empty | None = None
    activity_end: Empty | None = None
    media_chunks: list[Blob] | None = None


class ToolResponse(WireModel):
    function_responses: list[FunctionResponse] = Field(default_factory=list)


class ContextUpdateTools(WireModel):
    tools: list[Tool] | None = None


class ContextUpdate(WireModel):
    system_instruction: Content | None = None
    tools: ContextUpdateTools | None = None


ClientMessage = Setup | ClientContent | RealtimeInput | ToolResponse | ContextUpdate

_BLOB_FIELDS_SET = frozenset({"mime_type", "data"})
_AUDIO_FIELDS_SET = frozenset({"audio"})
_NO_REALTIME_INPUT = dict.fromkeys(RealtimeInput.model_fields)


def _built(model: type[WireModel], values: dict[str, Any], fields_set: frozenset[str]) -> Any:
    """An instance of `model` from values already checked, as `model_validate` would leave it (what pydantic's
    `model_construct` does, without its per-field walk, a third of an audio chunk's parse)."""
    instance = model.__new__(model)
    object.__setattr__(instance, "__dict__", values)
    object.__setattr__(instance, "__pydantic_fields_set__", set(fields_set))
    object.__setattr__(instance, "__pydantic_extra__", None)
    object.__setattr__(instance, "__pydantic_private__", None)
    return instance


def audio_chunk_input(mime_type: str, data: bytes) -> RealtimeInput:
    """``RealtimeInput(audio=Blob(mime_type=..., data=...))`` for a chunk whose fields are checked already
    (protocol/parse.py's fast path); equal to what validating it gives (tests/unit/test_protocol.py)."""
    blob = _built(Blob, {"mime_type": mime_type, "data": data, "display_name": None}, _BLOB_FIELDS_SET)
    result: RealtimeInput = _built(RealtimeInput, {**_NO_REALTIME_INPUT, "audio": blob}, _AUDIO_FIELDS_SET)
    return result

# camelCase top-level key → model (after normalisation snake keys arrive here as camelCase too)
TOP_LEVEL: dict[str, type[WireModel]] = {
    "setup": Setup,
    "clientContent": ClientContent,
    "realtimeInput": RealtimeInput,
    "toolResponse": ToolResponse,
    "contextUpdate": ContextUpdate,
}


# --- joined audio chunks (server/live_ws.py: a session behind real time catches up) ---------------------------

JOIN_CHUNKS = 16  # audio chunks joined into one at most (0.32 s of 20 ms chunks)
JOIN_BYTES = 64 * 1024  # and at most this much audio


def audio_only(message: RealtimeInput) -> Blob | None:
    """The audio of a realtimeInput that holds an audio chunk and nothing else, else None."""
    if message.audio is None or message.video is not None or message.text is not None or message.media_chunks \
            or message.audio_stream_end is not None or message.activity_start or message.activity_end:
        return None
    return message.audio


def joinable(last: RealtimeInput, after: RealtimeInput, joined_bytes: int) -> bool:
    """Whether `after` may be applied together with the audio-only chunks before it (the `last` of them, holding
    `joined_bytes` in all): the same MIME type, whole 16-bit samples in each (a chunk that is wrong is applied
    alone, so it fails where it always did), and within JOIN_BYTES together."""
    a, b = audio_only(last), audio_only(after)
    return (a is not None and b is not None and a.mime_type == b.mime_type and not len(a.data) % 2
            and not len(b.data) % 2 and joined_bytes + len(b.data) <= JOIN_BYTES)


def join_audio(chunks: list[RealtimeInput]) -> RealtimeInput:
    """Joinable chunks (see `joinable`, checked pairwise in order) as one, their audio in order."""
    if len(chunks) == 1:
        return chunks[0]
    first = audio_only(chunks[0])
    assert first is not None
    return audio_chunk_input(first.mime_type, b"".join(c.audio.data for c in chunks if c.audio is not None))
