"""Bad audio input closes only its own session, with 1007 and a clear reason."""

from __future__ import annotations

import base64
import json

import pytest

from localive.testing.server import LocaliveServer
from tests.integration.test_bad_input import (
    assert_short_safe_reason,
    healthy_session,
    live_url,
    open_session,
    send_quietly,
    until_closed,
)

GOOD_AUDIO = base64.b64encode(bytes(3200)).decode()


def audio_message(data: str, mime_type: str) -> str:
    return json.dumps({"realtimeInput": {"audio": {"data": data, "mimeType": mime_type}}})


@pytest.mark.parametrize("frame, fragment", [
    (audio_message(base64.b64encode(bytes(3201)).decode(), "audio/pcm;rate=16000"), "even number of bytes"),
    (audio_message(GOOD_AUDIO, "audio/pcm;rate=fast"), "sample rate"),
    (audio_message(GOOD_AUDIO, "audio/pcm;rate=16"), "sample rate"),
    (audio_message(GOOD_AUDIO, "audio/pcm;rate="), "sample rate"),
    (audio_message(GOOD_AUDIO, "audio/mp3;rate=16000"), "mime type"),
    (audio_message("this is not base64!", "audio/pcm;rate=16000"), "base64"),
    (json.dumps({"realtimeInput": {"mediaChunks": [{"data": GOOD_AUDIO, "mimeType": "audio/pcm;rate=1"}]}}),
     "sample rate"),
])
async def test_bad_audio_is_refused_and_others_carry_on(emulator_server: LocaliveServer, frame: str,
                                                        fragment: str) -> None:
    async with healthy_session(emulator_server) as healthy:
        ws, first = await open_session(live_url(emulator_server))
        assert "setupComplete" in first
        await send_quietly(ws, audio_message(GOOD_AUDIO, "audio/pcm;rate=16000"))  # good audio first
        await send_quietly(ws, frame)
        closed = await until_closed(ws)
        assert closed.code == 1007, closed
        assert fragment in closed.reason
        assert_short_safe_reason(closed.reason)
        await healthy.assert_turn_works()
