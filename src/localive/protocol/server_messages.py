"""Server → client messages (docs/protocol-notes.md#server-messages): camelCase, standard base64, well under 1 MiB."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from localive.protocol.b64 import encode_standard

MAX_SERVER_MESSAGE_BYTES = 512 * 1024  # the Python SDK drops the connection above 1 MiB

ServerMessage = dict[str, Any]


@dataclass(frozen=True)
class ModalityCount:
    modality: str  # TEXT | AUDIO | VIDEO | IMAGE
    token_count: int


@dataclass(frozen=True)
class Usage:
    prompt: list[ModalityCount] = field(default_factory=list)
    response: list[ModalityCount] = field(default_factory=list)
    cached_tokens: int = 0
    tool_use_prompt_tokens: int = 0
    thoughts_tokens: int = 0

    @property
    def prompt_tokens(self) -> int:
        return sum(c.token_count for c in self.prompt)

    @property
    def response_tokens(self) -> int:
        return sum(c.token_count for c in self.response)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.response_tokens + self.tool_use_prompt_tokens + self.thoughts_tokens

    def to_wire(self) -> dict[str, Any]:
        def details(counts: list[ModalityCount]) -> list[dict[str, Any]]:
            return [{"modality": c.modality, "tokenCount": c.token_count} for c in counts if c.token_count]

        wire: dict[str, Any] = {
            "promptTokenCount": self.prompt_tokens,
            "responseTokenCount": self.response_tokens,
            "totalTokenCount": self.total_tokens,
        }
        if self.cached_tokens:
            wire["cachedContentTokenCount"] = self.cached_tokens
        if self.tool_use_prompt_tokens:
            wire["toolUsePromptTokenCount"] = self.tool_use_prompt_tokens
        if self.thoughts_tokens:
            wire["thoughtsTokenCount"] = self.thoughts_tokens
        if prompt := details(self.prompt):
            wire["promptTokensDetails"] = prompt
        if response := details(self.response):
            wire["responseTokensDetails"] = response
        return wire


def setup_complete(session_id: str) -> ServerMessage:
    return {"setupComplete": {"sessionId": session_id}}


def model_text(text: str) -> ServerMessage:
    return {"serverContent": {"modelTurn": {"role": "model", "parts": [{"text": text}]}}}


def model_thought(text: str) -> ServerMessage:
    """A piece of the model's reasoning (includeThoughts): a text part marked `thought`, never spoken."""
    return {"serverContent": {"modelTurn": {"role": "model", "parts": [{"text": text, "thought": True}]}}}


def model_audio(pcm: bytes, sample_rate_hz: int) -> ServerMessage:
    mime = f"audio/pcm;rate={sample_rate_hz}"
    return {"serverContent": {"modelTurn": {"role": "model", "parts": [
        {"inlineData": {"mimeType": mime, "data": encode_standard(pcm)}}]}}}


def input_transcription(text: str, finished: bool = True, language_code: str | None = None) -> ServerMessage:
    transcription: dict[str, Any] = {"text": text, "finished": finished}
    if language_code:
        transcription["languageCode"] = language_code
    return {"serverContent": {"inputTranscription": transcription}}


def output_transcription(text: str) -> ServerMessage:
    return {"serverContent": {"outputTranscription": {"text": text}}}


def output_transcription_finished() -> ServerMessage:
    """The end of a turn's output transcription: `finished` with no text, as Gemini sends it."""
    return {"serverContent": {"outputTranscription": {"finished": True}}}


def waiting_for_input() -> ServerMessage:
    """The model is not answering because it expects the user to go on (a pause judged mid-sentence)."""
    return {"serverContent": {"waitingForInput": True}}


def voice_activity(kind: str, audio_offset_s: float) -> ServerMessage:
    """`voiceActivity`: the VAD heard the user's speech start or stop (`ACTIVITY_START` / `ACTIVITY_END`) at this
    offset in the input audio stream. The wire key is `type` (the Python SDK calls it `voice_activity_type`)."""
    return {"voiceActivity": {"type": kind, "audioOffset": duration(audio_offset_s)}}


def duration(seconds: float) -> str:
    """A protobuf Duration in JSON: seconds with 3 fractional digits and an "s" ("1.250s")."""
    return f"{max(0.0, seconds):.3f}s"


def generation_complete() -> ServerMessage:
    return {"serverContent": {"generationComplete": True}}


def interrupted() -> ServerMessage:
    return {"serverContent": {"interrupted": True}}


def turn_complete(usage: Usage | None = None, reason: str | None = None) -> ServerMessage:
    message: ServerMessage = {"serverContent": {"turnComplete": True}}
    if reason is not None:
        message["serverContent"]["turnCompleteReason"] = reason
    if usage is not None:
        message["usageMetadata"] = usage.to_wire()
    return message


def dumps(message: ServerMessage) -> str:
    """Serialise compactly; refuse (a bug of ours) anything that would break the SDKs' 1 MiB limit."""
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode("utf-8")) > MAX_SERVER_MESSAGE_BYTES:
        raise ValueError("server message over the size limit; split it before sending")
    return text


def tool_call(calls: list[tuple[str, str, dict[str, Any]]]) -> ServerMessage:
    """`toolCall` with (id, name, args) for each function the model calls."""
    return {"toolCall": {"functionCalls": [{"id": i, "name": n, "args": a} for i, n, a in calls]}}


def tool_call_cancellation(ids: list[str]) -> ServerMessage:
    return {"toolCallCancellation": {"ids": ids}}


def executable_code(code: str) -> ServerMessage:
    return {"serverContent": {"modelTurn": {"role": "model", "parts": [
        {"executableCode": {"language": "PYTHON", "code": code}}]}}}


def code_execution_result(outcome: str, output: str) -> ServerMessage:
    return {"serverContent": {"modelTurn": {"role": "model", "parts": [
        {"codeExecutionResult": {"outcome": outcome, "output": output}}]}}}


def grounding(metadata: dict[str, Any]) -> ServerMessage:
    return {"serverContent": {"groundingMetadata": metadata}}


def url_context(metadata: dict[str, Any]) -> ServerMessage:
    return {"serverContent": {"urlContextMetadata": metadata}}


def resumption_update(handle: str, resumable: bool, last_consumed: int | None = None) -> ServerMessage:
    update: dict[str, Any] = {"newHandle": handle, "resumable": resumable}
    if last_consumed is not None:
        update["lastConsumedClientMessageIndex"] = str(last_consumed)  # int64: a JSON string
    return {"sessionResumptionUpdate": update}


def go_away(time_left_s: float) -> ServerMessage:
    return {"goAway": {"timeLeft": f"{time_left_s:g}s"}}
