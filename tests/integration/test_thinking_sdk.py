"""Thinking through the Python SDK: thought parts arrive marked `thought` only with includeThoughts, are never
spoken (AUDIO), and are counted in thoughtsTokenCount."""

from __future__ import annotations

import asyncio

import pytest
from google import genai
from google.genai import types

from localive.testing.server import LocaliveServer
from tests.support.server import sdk_client

THINKING_MODEL = "gemini-2.5-flash-exp-native-audio-thinking-dialog"


@pytest.fixture
def emulator(emulator_server: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> genai.Client:
    return sdk_client(emulator_server, monkeypatch)


async def one_turn(client: genai.Client, include_thoughts: bool) -> list[types.LiveServerMessage]:
    config = types.LiveConnectConfig(response_modalities=[types.Modality.AUDIO],
                                     output_audio_transcription=types.AudioTranscriptionConfig(),
                                     thinking_config=types.ThinkingConfig(include_thoughts=include_thoughts))
    async with client.aio.live.connect(model=THINKING_MODEL, config=config) as session:
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="Think it over")]))
        async with asyncio.timeout(30):
            return [m async for m in session.receive()]


async def test_thoughts_only_when_requested_and_never_spoken(emulator: genai.Client) -> None:
    plain = await one_turn(emulator, include_thoughts=False)
    shown = await one_turn(emulator, include_thoughts=True)
    thought_parts = [p for m in shown if m.server_content and m.server_content.model_turn
                     for p in m.server_content.model_turn.parts or [] if p.thought]
    assert thought_parts and all(p.text and not p.inline_data for p in thought_parts)
    assert not [p for m in plain if m.server_content and m.server_content.model_turn
                for p in m.server_content.model_turn.parts or [] if p.thought]
    for messages in (plain, shown):
        spoken = "".join(m.server_content.output_transcription.text or "" for m in messages
                         if m.server_content and m.server_content.output_transcription)
        assert spoken.strip() == "You said: Think it over"  # the answer only, said once
        usage = messages[-1].usage_metadata
        assert usage is not None and (usage.thoughts_token_count or 0) > 0
