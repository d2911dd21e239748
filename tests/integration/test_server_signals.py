"""Signals beside the answer, through the official Python SDK against a real server: voiceActivity,
outputTranscription {finished}, waitingForInput, and a seeded history (historyConfig.initialHistoryInClientContent).
Each arrives as the SDK's own types."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest
from google import genai
from google.genai import types

from localive.testing.server import LocaliveServer, start_server
from localive.testing.speech import speech_bounds, speech_pcm
from tests.integration.test_voice import MODEL, NATIVE, TURN_TIMEOUT_S, one_turn, send_audio
from tests.support.neural_speech import CUT_MID_SENTENCE, RATE_HZ, erinome, silence
from tests.support.server import sdk_client

SPOKEN = {"response_modalities": ["AUDIO"], "input_audio_transcription": {}, "output_audio_transcription": {}}


@pytest.fixture
def emulator(emulator_server: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> genai.Client:
    return sdk_client(emulator_server, monkeypatch)


def offset_s(activity: types.VoiceActivity) -> float:
    assert activity.audio_offset is not None and activity.audio_offset.endswith("s"), activity.audio_offset
    return float(activity.audio_offset.removesuffix("s"))


def activity(messages: list[types.LiveServerMessage]) -> list[tuple[int, types.VoiceActivity]]:
    return [(i, m.voice_activity) for i, m in enumerate(messages) if m.voice_activity is not None]


async def test_voice_activity_tells_where_speech_starts_and_ends(emulator: genai.Client) -> None:
    first = speech_pcm("what is the capital of Germany", lead_s=1.0, trail_s=1.2)
    second = speech_pcm("what is the capital of France", lead_s=0.5, trail_s=1.2)
    async with emulator.aio.live.connect(model=MODEL, config=SPOKEN) as session:  # type: ignore[arg-type]
        await send_audio(session, first)
        answer = await one_turn(session)
        await send_audio(session, second)
        next_answer = await one_turn(session)
    events = activity(answer)
    assert [a.voice_activity_type for _, a in events] == [types.VoiceActivityType.ACTIVITY_START,
                                                          types.VoiceActivityType.ACTIVITY_END]
    (start_at, start), (end_at, end) = events
    words_s = speech_bounds(first, 16000)
    assert offset_s(start) == pytest.approx(words_s[0], abs=0.2)  # offsets in the input audio stream
    assert offset_s(end) == pytest.approx(words_s[1], abs=0.3)
    heard = next(i for i, m in enumerate(answer) if m.server_content and m.server_content.input_transcription)
    assert start_at < end_at < heard and answer[start_at].server_content is None
    # the next utterance's offsets go on counting from the start of the stream
    (_, start2), (_, end2) = activity(next_answer)
    first_s = len(first) / 2 / 16000
    assert offset_s(start2) == pytest.approx(first_s + speech_bounds(second, 16000)[0], abs=0.2)
    assert offset_s(end2) > offset_s(start2)


async def test_a_spoken_answer_ends_its_transcription_with_finished(emulator: genai.Client) -> None:
    async with emulator.aio.live.connect(model=MODEL, config=SPOKEN) as session:  # type: ignore[arg-type]
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "capital of France?"}]})
        messages = await one_turn(session)
    content = [m.server_content for m in messages if m.server_content]
    pieces = [(i, c.output_transcription) for i, c in enumerate(content) if c.output_transcription]
    finished = [i for i, t in pieces if t.finished]
    assert len(finished) == 1 and finished[0] == pieces[-1][0]  # once, as the last piece
    assert "".join(t.text or "" for _, t in pieces).strip() == "The capital of France is Paris."
    last_audio = max(i for i, c in enumerate(content) if c.model_turn)
    complete = [i for i, c in enumerate(content) if c.generation_complete]
    assert last_audio < finished[0] < complete[0] < len(content) - 1 and content[-1].turn_complete


async def test_an_interrupted_answer_ends_its_transcription_before_interrupted(emulator: genai.Client) -> None:
    async with emulator.aio.live.connect(model=MODEL, config=SPOKEN) as session:  # type: ignore[arg-type]
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "count slowly"}]})
        messages: list[types.LiveServerMessage] = []
        async with asyncio.timeout(TURN_TIMEOUT_S):
            async for message in session.receive():
                messages.append(message)
                if message.data and sum(1 for m in messages if m.data) == 1:  # it talks: the user interrupts
                    await session.send_client_content(turns={"role": "user", "parts": [{"text": "stop"}]},
                                                      turn_complete=False)
    content = [m.server_content for m in messages if m.server_content]
    finished = [i for i, c in enumerate(content) if c.output_transcription and c.output_transcription.finished]
    interrupted = [i for i, c in enumerate(content) if c.interrupted]
    assert len(interrupted) == 1 and len(finished) == 1 and finished[0] < interrupted[0]


async def test_a_seeded_history_is_not_answered_and_informs_the_next_turn(emulator: genai.Client) -> None:
    config = types.LiveConnectConfig(response_modalities=[types.Modality.TEXT],
                                     history_config=types.HistoryConfig(initial_history_in_client_content=True))
    history = [
        types.Content(role="user", parts=[types.Part(text="Hi, I am Ada.")]),
        types.Content(role="model", parts=[types.Part(text="Hello Ada, how can I help?")]),
        types.Content(role="user", parts=[types.Part(text="I would like to talk about maths.")]),
    ]
    async with emulator.aio.live.connect(model=MODEL, config=config) as session:
        receiving = asyncio.ensure_future(one_turn(session))
        await session.send_client_content(turns=history, turn_complete=True)  # ends with a user turn
        done, _ = await asyncio.wait({receiving}, timeout=3)
        assert not done, "the seeded history must not be answered"
        await session.send_realtime_input(text="which turn is this?")
        answer = await asyncio.wait_for(receiving, TURN_TIMEOUT_S)
        # after the history, clientContent is answered as usual
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "capital of France?"}]})
        then = await one_turn(session)
    assert "".join(m.text or "" for m in answer) == "This is turn 3."  # the two seeded user turns are context
    assert "".join(m.text or "" for m in then) == "The capital of France is Paris."


# --- waitingForInput: semantic turn-taking (the server's default), in the neural voice --------------------------

@pytest.fixture(scope="module")
def semantic_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    server = start_server(tmp_path_factory.mktemp("semantic"), "--llm", "emulator")
    yield server
    server.stop()


async def test_a_mid_sentence_pause_says_the_model_waits_for_more(semantic_server: LocaliveServer,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    text, _, cut_s = CUT_MID_SENTENCE[0]  # "Please turn off the lights in the | kitchen."
    words = erinome(text)
    cut = round(cut_s * RATE_HZ)
    paused = np.concatenate([silence(0.3), words[:cut], silence(1.0), words[cut:], silence(0.5)])
    client = sdk_client(semantic_server, monkeypatch)
    async with client.aio.live.connect(model=NATIVE, config=SPOKEN) as session:  # type: ignore[arg-type]
        await send_audio(session, paused.tobytes())
        messages = await one_turn(session)
    content = [m.server_content for m in messages if m.server_content]
    waiting = [i for i, c in enumerate(content) if c.waiting_for_input]
    heard = [i for i, c in enumerate(content) if c.input_transcription]
    assert waiting and heard and waiting[-1] < heard[0]  # held at the pause, then one turn for the whole sentence
    assert content[waiting[0]] == types.LiveServerContent(waiting_for_input=True)
    said = "".join(c.input_transcription.text or "" for c in content if c.input_transcription).lower()
    assert "lights" in said and "kitchen" in said
