"""The wire layer, driven with the exact frames both SDKs send (docs/protocol-notes.md#key-names-and-values)."""

from __future__ import annotations

import json

import pytest

from localive.protocol import messages as wire
from localive.protocol.b64 import decode_lenient, encode_standard
from localive.protocol.errors import InvalidArgument, close_for, truncate_reason
from localive.protocol.keys import normalise_keys
from localive.protocol.parse import parse_client_message
from localive.protocol.server_messages import ModalityCount, Usage, dumps, model_text, turn_complete

PYTHON_SETUP = {"setup": {"model": "models/gemini-live-2.5-flash-preview",
  "generationConfig": {"responseModalities": ["AUDIO"], "temperature": 0.7, "topP": 0.9,
    "topK": 40.0, "maxOutputTokens": 256, "mediaResolution": "MEDIA_RESOLUTION_LOW", "seed": 3,
    "speechConfig": {"voice_config": {"prebuilt_voice_config": {"voice_name": "Kore"}}, "language_code": "en-US"},
    "thinkingConfig": {"include_thoughts": True, "thinking_budget": 0},
    "enableAffectiveDialog": True},
  "systemInstruction": {"parts": [{"text": "You are terse."}], "role": "user"},
  "tools": [{"codeExecution": {}}, {"googleSearch": {}}, {"urlContext": {}},
    {"functionDeclarations": [{"description": "d", "name": "turn_on",
      "parameters": {"properties": {"a_b": {"type": "INTEGER"}}, "type": "OBJECT"}, "behavior": "NON_BLOCKING"}]}],
  "sessionResumption": {"handle": "prev-handle"},
  "inputAudioTranscription": {}, "outputAudioTranscription": {},
  "realtimeInputConfig": {"automatic_activity_detection": {"disabled": False,
      "start_of_speech_sensitivity": "START_SENSITIVITY_LOW", "end_of_speech_sensitivity": "END_SENSITIVITY_HIGH",
      "prefix_padding_ms": 20, "silence_duration_ms": 100},
    "activity_handling": "NO_INTERRUPTION", "turn_coverage": "TURN_INCLUDES_ALL_INPUT"},
  "contextWindowCompression": {"trigger_tokens": 25600, "sliding_window": {"target_tokens": 12800}},
  "proactivity": {"proactive_audio": True}}}

JS_SETUP_PARTS = {"setup": {"model": "models/x", "generationConfig": {"responseModalities": ["TEXT"], "topK": 40,
    "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}, "languageCode": "en-US"}},
  "realtimeInputConfig": {"automaticActivityDetection": {"startOfSpeechSensitivity": "START_SENSITIVITY_LOW"}},
  "contextWindowCompression": {"triggerTokens": "25600", "slidingWindow": {"targetTokens": "12800"}}}}


def test_python_sdk_setup_with_mixed_case_parses() -> None:
    setup = parse_client_message(json.dumps(PYTHON_SETUP))
    assert isinstance(setup, wire.Setup)
    gen = setup.generation_config
    assert gen is not None and gen.top_k == 40 and gen.response_modalities == ["AUDIO"]
    assert gen.speech_config.voice_config.prebuilt_voice_config.voice_name == "Kore"
    assert gen.thinking_config.thinking_budget == 0
    assert setup.realtime_input_config.automatic_activity_detection.silence_duration_ms == 100
    assert setup.context_window_compression.sliding_window.target_tokens == 12800
    decl = setup.tools[3].function_declarations[0]
    assert decl.parameters == {"properties": {"a_b": {"type": "INTEGER"}}, "type": "OBJECT"}  # property name kept


def test_js_sdk_setup_with_int64_strings_parses() -> None:
    setup = parse_client_message(json.dumps(JS_SETUP_PARTS))
    assert setup.context_window_compression.trigger_tokens == 25600
    assert setup.generation_config.speech_config.language_code == "en-US"


@pytest.mark.parametrize("frame", [
    {"client_content": {"turns": [{"parts": [{"text": "hi"}], "role": "user"}], "turnComplete": False}},
    {"client_content": {"turns": [{"parts": [{"text": "deprecated send"}], "role": "user"}], "turn_complete": True}},
    {"realtime_input": {"audio": {"data": "-vv8_f7_-vv8_f7_", "mime_type": "audio/pcm;rate=16000"}}},
    {"realtime_input": {"audioStreamEnd": True}},
    {"realtime_input": {"video": {"data": "_9j_", "mime_type": "image/jpeg"}}},
    {"realtime_input": {"mediaChunks": [{"data": "AAE=", "mime_type": "audio/pcm"}]}},
    {"realtime_input": {"activityStart": {}}},
    {"realtime_input": {"text": "typed"}},
    {"tool_response": {"functionResponses": [{"will_continue": True, "scheduling": "INTERRUPT", "id": "fc-1",
                                              "name": "turn_on", "response": {"result_value": "ok"}}]}},
    {"contextUpdate": {"systemInstruction": {"parts": [{"text": "new SI"}], "role": "user"}, "tools": {"tools": []}}},
])
def test_captured_runtime_messages_parse(frame: dict) -> None:
    parse_client_message(json.dumps(frame))


def test_function_response_payload_is_kept_verbatim() -> None:
    msg = parse_client_message(json.dumps({"tool_response": {"functionResponses": [
        {"id": "a", "name": "f", "response": {"snake_key": {"inner_key": 1}}}]}}))
    assert msg.function_responses[0].response == {"snake_key": {"inner_key": 1}}


def test_both_base64_alphabets_decode_and_output_is_standard() -> None:
    data = bytes(range(250, 256)) * 3
    assert decode_lenient("-vv8_f7_-vv8_f7_-vv8_f7_") == data
    assert decode_lenient("+vv8/f7/+vv8/f7/+vv8/f7/") == data
    assert decode_lenient("AAE") == decode_lenient("AAE=") == b"\x00\x01"
    assert "-" not in encode_standard(data) and "_" not in encode_standard(data)
    with pytest.raises(InvalidArgument):
        decode_lenient("not base64!")


@pytest.mark.parametrize("frame, fragment", [
    ("{not json", "Invalid JSON"),
    ('{"setup": {"model": "m", "bogus": 1}}', 'Unknown name "bogus"'),
    ('{"setup": {"model": "m", "generationConfig": {"temperature": "hot"}}}', "generationConfig.temperature"),
    ('{"setup": {}}', "setup.model"),
    ('{"clientContent": {"turnComplete": "yes"}}', "turnComplete"),
    ('{"setup": {"model": "m"}, "clientContent": {}}', "exactly one"),
    ('{"somethingElse": {}}', 'Unknown name "somethingElse"'),
    ("[" * 100000 + "]" * 100000, "nested"),
    ('{"setup": {"model": "m", "generation_config": {}, "generationConfig": {}}}', "twice"),
    ("", "Invalid JSON"),
])
def test_bad_frames_are_invalid_arguments_with_short_reasons(frame: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_client_message(frame)
    close = close_for(info.value)
    assert close.code == 1007 and fragment in close.reason
    assert len(close.reason.encode()) <= 123


def test_unexpected_exceptions_map_to_1011_without_details() -> None:
    close = close_for(KeyError("secret-api-key"))
    assert close.code == 1011 and "secret" not in close.reason


def test_reasons_truncate_on_a_character_boundary() -> None:
    assert len(truncate_reason("é" * 100).encode()) == 122


def test_normalise_keys_skips_free_form_payloads() -> None:
    value = {"function_call": {"args": {"my_arg": 1}, "will_continue": True}}
    assert normalise_keys(value) == {"functionCall": {"args": {"my_arg": 1}, "willContinue": True}}


def test_server_messages_are_camel_case_and_compact() -> None:
    usage = Usage(prompt=[ModalityCount("TEXT", 10)], response=[ModalityCount("TEXT", 3)])
    wire_msg = json.loads(dumps(turn_complete(usage)))
    assert wire_msg == {"serverContent": {"turnComplete": True}, "usageMetadata": {
        "promptTokenCount": 10, "responseTokenCount": 3, "totalTokenCount": 13,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 10}],
        "responseTokensDetails": [{"modality": "TEXT", "tokenCount": 3}]}}
    assert json.loads(dumps(model_text("hi")))["serverContent"]["modelTurn"]["parts"] == [{"text": "hi"}]
    with pytest.raises(ValueError):
        dumps(model_text("x" * (600 * 1024)))


# --- bounded work per message (security finding F2) ------------------------------------------------------------

def test_a_message_of_60000_parts_is_refused_before_validation() -> None:
    frame = json.dumps({"clientContent": {"turns": [{"role": "user", "parts": [{"text": "x"}] * 60_000}]}})
    with pytest.raises(InvalidArgument, match="too many") as refused:
        parse_client_message(frame)
    assert close_for(refused.value).code == 1007


def test_values_inside_free_form_fields_count_too() -> None:
    args = {f"k{i}": i for i in range(30_000)}
    frame = json.dumps({"toolResponse": {"functionResponses": [{"id": "a", "name": "f", "response": args}]}})
    with pytest.raises(InvalidArgument, match="too many"):
        parse_client_message(frame)


def test_turns_and_parts_have_their_own_caps() -> None:
    from localive.protocol.messages import MAX_PARTS, MAX_TURNS

    turns = [{"role": "user", "parts": [{"text": "x"}]}] * (MAX_TURNS + 1)
    with pytest.raises(InvalidArgument, match=f"at most {MAX_TURNS}"):
        parse_client_message(json.dumps({"clientContent": {"turns": turns}}))
    parts = [{"text": "x"}] * (MAX_PARTS + 1)
    with pytest.raises(InvalidArgument, match=f"at most {MAX_PARTS}"):
        parse_client_message(json.dumps({"clientContent": {"turns": [{"parts": parts}]}}))


def test_a_long_but_ordinary_conversation_fits() -> None:
    turns = [{"role": "user" if i % 2 else "model", "parts": [{"text": "a sentence of the conversation"}]}
             for i in range(1000)]
    message = parse_client_message(json.dumps({"clientContent": {"turns": turns, "turnComplete": True}}))
    assert isinstance(message, wire.ClientContent) and message.turns is not None and len(message.turns) == 1000


def test_the_sdks_interim_transcript_timestamp_flag_is_accepted() -> None:
    """SDK 3.3.0 and 3.6.1 forward realtime_input_config.interim_transcript_timestamp_enabled verbatim; it closed
    the session with 1007 (issue 15). Built here by the SDK's own converter."""
    from google.genai import _common, _live_converters, types
    from google.genai._api_client import BaseApiClient

    client = BaseApiClient(api_key="k")
    config = types.LiveConnectConfig(response_modalities=["AUDIO"], realtime_input_config=types.RealtimeInputConfig(
        interim_transcript_timestamp_enabled=True))
    request = _common.convert_to_dict(_live_converters._LiveConnectParameters_to_mldev(  # as AsyncLive.connect does
        api_client=client, from_object=types.LiveConnectParameters(
            model="models/gemini-2.0-flash-live-001", config=config).model_dump(exclude_none=True)))
    del request["config"]
    request["setup"]["model"] = "models/gemini-2.0-flash-live-001"
    message = parse_client_message(json.dumps(request))
    assert isinstance(message, wire.Setup)
    assert message.realtime_input_config is not None
    assert message.realtime_input_config.interim_transcript_timestamp_enabled is True
