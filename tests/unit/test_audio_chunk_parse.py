"""The audio chunk's fast path (protocol/parse.py `audio_chunk`) gives what the generic path gives, and leaves every
other message, and every wrong one, to the generic path's checks and errors."""

from __future__ import annotations

import base64
import json

import pytest
from pydantic import ValidationError

from localive.protocol.b64 import decode_lenient
from localive.protocol.errors import InvalidArgument
from localive.protocol.keys import normalise_keys
from localive.protocol.messages import JOIN_BYTES, RealtimeInput, audio_only, join_audio, joinable
from localive.protocol.parse import audio_chunk, parse_client_message

PCM = bytes(range(256)) * 3


def _generic(raw: dict[str, object]) -> RealtimeInput:
    (body,) = normalise_keys(raw).values()
    return RealtimeInput.model_validate(body)


@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode,
                                    lambda b: base64.b64encode(b).rstrip(b"=")])
@pytest.mark.parametrize("keys", [("realtimeInput", "mimeType"), ("realtime_input", "mime_type"),
                                  ("realtimeInput", "mime_type")])
def test_an_audio_chunk_parses_as_the_generic_path_does(encode: object, keys: tuple[str, str]) -> None:
    top, mime = keys
    data = encode(PCM[:641]).decode()  # type: ignore[operator]
    raw = {top: {"audio": {"data": data, mime: "audio/pcm;rate=16000"}}}
    fast = audio_chunk(raw)
    assert fast is not None
    generic = _generic(raw)
    assert fast == generic
    assert fast.model_fields_set == generic.model_fields_set
    assert fast.audio is not None and generic.audio is not None
    assert fast.audio.model_fields_set == generic.audio.model_fields_set
    assert fast.model_dump(by_alias=True, exclude_none=True, mode="json") == generic.model_dump(
        by_alias=True, exclude_none=True, mode="json")
    assert parse_client_message(json.dumps(raw)) == generic
    with pytest.raises(ValidationError):  # frozen, as validated messages are
        fast.audio.data = b""  # type: ignore[misc]


@pytest.mark.parametrize("body", [
    {"audio": {"data": "AAAA", "mimeType": "audio/pcm", "displayName": "x"}},
    {"audio": {"data": "AAAA"}},
    {"audio": {"data": 5, "mimeType": "audio/pcm"}},
    {"audio": {"data": "AAAA", "mimeType": 16000}},
    {"audio": {"data": "AAAA", "mimeType": "audio/pcm"}, "text": "hi"},
    {"audio": {"data": "not base64!", "mimeType": "audio/pcm"}},
    {"audio": {"data": "AAAA", "mimeType": "audio/pcm", "mime_type": "audio/pcm"}},
    {"audio": {"data": "AAAA", "mimeType": ""}},
    {"audio": "AAAA"},
    {"video": {"data": "AAAA", "mimeType": "image/jpeg"}},
])
def test_other_shapes_take_the_generic_path(body: dict[str, object]) -> None:
    assert audio_chunk({"realtimeInput": body}) is None


def test_wrong_chunks_are_refused_as_before() -> None:
    with pytest.raises(InvalidArgument, match="not base64"):
        parse_client_message(json.dumps({"realtimeInput": {"audio": {"data": "@@@@", "mimeType": "audio/pcm"}}}))
    with pytest.raises(InvalidArgument, match="Unknown name"):
        parse_client_message(json.dumps({"realtimeInput": {"audio": {"data": "AAAA", "mimeTyp": "audio/pcm"}}}))
    with pytest.raises(InvalidArgument, match="exactly one"):
        parse_client_message(json.dumps({"realtimeInput": {"audio": {"data": "AAAA", "mimeType": "a"}},
                                         "setup": {}}))


@pytest.mark.parametrize("text", ["QQ==", "QQ", "QUI=", "QUI", "-_8=", "-_8", " QQ== ", "", "+/8="])
def test_lenient_base64_gives_what_it_gave_before(text: str) -> None:
    standard = text.strip().rstrip("=").replace("-", "+").replace("_", "/")
    assert decode_lenient(text) == base64.b64decode(standard + "=" * (-len(standard) % 4))


@pytest.mark.parametrize("text", ["Q", "QQ=A", "Q===", "QQ==QQ==", "QQ==QQ==x", "!!!!", "é"])
def test_lenient_base64_refuses_what_it_refused(text: str) -> None:
    with pytest.raises(InvalidArgument):
        decode_lenient(text)


def _chunk(data: bytes, mime: str = "audio/pcm;rate=16000") -> RealtimeInput:
    return RealtimeInput.model_validate({"audio": {"data": base64.b64encode(data).decode(), "mimeType": mime}})


def test_audio_chunks_behind_each_other_join_in_order() -> None:
    chunks = [_chunk(bytes([i]) * 640) for i in range(3)]
    joined = join_audio(chunks)
    assert joined == _chunk(b"".join(bytes([i]) * 640 for i in range(3)))
    assert join_audio(chunks[:1]) is chunks[0]
    assert joinable(chunks[0], chunks[1], 640)


@pytest.mark.parametrize("after", [
    _chunk(b"\0" * 640, "audio/pcm;rate=24000"),  # another rate
    _chunk(b"\0" * 641),  # not whole samples: applied alone, where it fails
    RealtimeInput.model_validate({"audio": {"data": "AAAA", "mimeType": "audio/pcm;rate=16000"}, "text": "hi"}),
    RealtimeInput.model_validate({"audioStreamEnd": True}),
    RealtimeInput.model_validate({"activityEnd": {}}),
    RealtimeInput.model_validate({"mediaChunks": [{"data": "AAAA", "mimeType": "audio/pcm;rate=16000"}]}),
])
def test_only_plain_audio_chunks_of_one_type_join(after: RealtimeInput) -> None:
    assert not joinable(_chunk(b"\0" * 640), after, 640)


def test_an_odd_chunk_joins_nothing_and_the_joined_audio_is_bounded() -> None:
    assert not joinable(_chunk(b"\0" * 641), _chunk(b"\0" * 640), 641)
    assert not joinable(_chunk(b"\0" * 640), _chunk(b"\0" * 640), JOIN_BYTES - 638)
    assert audio_only(RealtimeInput.model_validate({"activityStart": {}})) is None
