"""Semantic turn-taking through the Python SDK (server default `--turn-taking auto`: native-audio names judge
pauses with Smart Turn v3.2). Speech in the neural voice Erinome, streamed like a microphone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest
from google import genai

from localive.testing.server import LocaliveServer, start_server
from localive.testing.text import CLOSE_WER, word_error_rate
from tests.integration.test_voice import NATIVE, send_audio
from tests.support.neural_speech import CUT_MID_SENTENCE, RATE_HZ, erinome, silence, spoken
from tests.support.server import sdk_client

CONFIG = {"response_modalities": ["AUDIO"], "input_audio_transcription": {}, "output_audio_transcription": {}}
SILENCE_ONLY = {**CONFIG, "realtime_input_config": {"automatic_activity_detection": {"silence_duration_ms": 500}}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    server = start_server(tmp_path_factory.mktemp("turns"), "--llm", "emulator")
    yield server
    server.stop()


@pytest.fixture
def client(server: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> genai.Client:
    return sdk_client(server, monkeypatch)


async def heard(client: genai.Client, config: dict[str, object], audio: np.ndarray,
                wait_s: float = 4.0) -> list[str]:
    """Stream `audio`, then listen for `wait_s`: the user turns the server heard (one per inputTranscription run)."""
    turns: list[str] = []
    async with client.aio.live.connect(model=NATIVE, config=config) as session:  # type: ignore[arg-type]
        await send_audio(session, audio.tobytes())

        async def listen() -> None:
            current = ""
            while True:
                async for message in session.receive():
                    content = message.server_content
                    if content and content.input_transcription and content.input_transcription.text:
                        current += content.input_transcription.text
                    if content and content.turn_complete:
                        turns.append(current.strip())
                        current = ""

        try:
            await asyncio.wait_for(listen(), wait_s)
        except TimeoutError:
            pass
    return turns


async def test_a_finished_question_is_answered_without_waiting_out_the_silence(client: genai.Client) -> None:
    question = np.concatenate([silence(0.3), spoken(erinome("What is the capital of France?")), silence(0.35)])
    turns = await heard(client, CONFIG, question)  # one turn, ended by the model's judgement
    assert len(turns) == 1 and word_error_rate("What is the capital of France?", turns[0]) <= CLOSE_WER, turns
    # silence alone needs 500 ms of it: 350 ms after the last word ends nothing
    assert await heard(client, SILENCE_ONLY, question, wait_s=3.0) == []


async def test_a_mid_sentence_pause_does_not_end_the_turn(client: genai.Client) -> None:
    text, _, cut_s = CUT_MID_SENTENCE[0]  # "Please turn off the lights in the | kitchen."
    words = erinome(text)
    cut = round(cut_s * RATE_HZ)
    paused = np.concatenate([silence(0.3), words[:cut], silence(1.0), words[cut:], silence(0.35)])
    (turn,) = await heard(client, CONFIG, paused, wait_s=6.0)
    assert "lights" in turn.lower() and "kitchen" in turn.lower()
    # with silence alone, the pause ends the turn mid-sentence
    turns = await heard(client, SILENCE_ONLY, np.concatenate([paused, silence(0.6)]), wait_s=6.0)
    assert len(turns) == 2 and "kitchen" not in turns[0].lower(), turns


async def test_a_clients_own_silence_window_is_honoured(client: genai.Client) -> None:
    config = {**CONFIG, "realtime_input_config": {"automatic_activity_detection": {"silence_duration_ms": 1500}}}
    question = np.concatenate([silence(0.3), spoken(erinome("What is the capital of France?")), silence(1.0)])
    assert await heard(client, config, question, wait_s=3.0) == []  # semantic would have ended it at 200 ms


async def talk_over_the_model(client: genai.Client, words: str | np.ndarray) -> list[str]:
    """The model reads back a long message; while it talks, the user says `words` (text in Erinome's voice, or
    16 kHz samples). Returns the event kinds."""
    said = erinome(words) if isinstance(words, str) else words
    kinds: list[str] = []
    long_message = "I would like you to repeat this long sentence about the seven rivers of the northern valley."
    async with client.aio.live.connect(model=NATIVE, config=CONFIG) as session:  # type: ignore[arg-type]
        await session.send_realtime_input(text=long_message)

        async def listen() -> None:
            while True:
                async for message in session.receive():
                    content = message.server_content
                    if message.data and "audio" not in kinds:
                        kinds.append("audio")
                        await send_audio(session, np.concatenate([said, silence(0.5)]).tobytes())
                    if content and content.interrupted:
                        kinds.append("interrupted")
                    if content and content.turn_complete:
                        kinds.append("turnComplete")
                        return

        async with asyncio.timeout(30):
            await listen()
    return kinds


async def test_a_backchannel_while_the_model_talks_does_not_cut_it_off(client: genai.Client) -> None:
    assert await talk_over_the_model(client, "Yeah.") == ["audio", "turnComplete"]
    assert await talk_over_the_model(client, "Wait, stop.") == ["audio", "interrupted", "turnComplete"]


async def test_a_hum_while_the_model_talks_does_not_cut_it_off(client: genai.Client) -> None:
    # A closed-mouth "mm-hm" (formant synthesis: the neural voice puts a vowel in it and is heard as "Mama").
    from localive.testing.hum import closed_mouth_hum

    assert await talk_over_the_model(client, closed_mouth_hum(180.0)) == ["audio", "turnComplete"]
