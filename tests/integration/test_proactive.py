"""Proactive audio through the Python SDK with the embedded models (the 1.5B judges, the 0.5B answers): side talk
heard by the microphone gets no answer, a question for the assistant does; without the flag both are answered.
(The precision/recall on the labelled sets is measured by benchmarks/proactive.py: docs/proactive-audio.md.)"""

from __future__ import annotations

import asyncio

import pytest
from google import genai

from localive.testing.server import LocaliveServer
from localive.testing.speech import speech_pcm
from tests.integration.test_voice import NATIVE, send_audio
from tests.support.server import sdk_client

pytestmark = pytest.mark.llm
COOK = "You are a cooking assistant. You help the user with recipes, ingredients and kitchen techniques."


@pytest.fixture
def client(llm_server: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> genai.Client:
    return sdk_client(llm_server, monkeypatch)


async def answered(client: genai.Client, proactive: bool, *questions: str) -> list[bool]:
    config: dict[str, object] = {"response_modalities": ["AUDIO"], "system_instruction": COOK,
                                 "input_audio_transcription": {}, "temperature": 0.0}
    if proactive:
        config["proactivity"] = {"proactive_audio": True}
    results = []
    async with client.aio.live.connect(model=NATIVE, config=config) as session:  # type: ignore[arg-type]
        for question in questions:  # an answered one must come last: we leave at its first audio
            await send_audio(session, speech_pcm(question))
            spoke = False
            async with asyncio.timeout(60):
                async for message in session.receive():
                    spoke = bool(message.data)
                    if spoke or (message.server_content and message.server_content.turn_complete):
                        break
            results.append(spoke)
    return results


async def test_side_talk_gets_no_answer_with_proactive_audio(client: genai.Client, llm_server: LocaliveServer) -> None:
    side, question = "Honey, can you pick up the kids from school at five today?", "How long should I boil an egg?"
    assert await answered(client, True, side, question) == [False, True]
    assert await answered(client, False, side) == [True]
    judged = [line for line in llm_server.log().splitlines() if "proactive session=" in line]
    assert judged and all("judge=qwen2.5-coder-1.5b-instruct" in line for line in judged)  # the larger model judges
