"""Affective dialog through the Python SDK (v1alpha, as the seed shows): the same words said calm and excited
are estimated differently and answered with a different delivery; without the flag, handled identically."""

from __future__ import annotations

import re

import pytest
from google import genai
from google.genai import types

from localive.audio.pcm import Pcm16
from localive.audio.prosody import Prosody, semitones
from localive.audio.prosody_measure import measure
from localive.testing.server import LocaliveServer
from localive.testing.speech import expressive_pcm
from tests.integration.test_voice import NATIVE, audio_of, one_turn, send_audio, transcripts

WORDS = "I just got the results back and we actually won the whole competition today"
CALM = {"words_per_minute": 120, "pitch": 30, "amplitude": 60}
EXCITED = {"words_per_minute": 200, "pitch": 80, "amplitude": 180}


def client(server: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> genai.Client:
    for name, value in server.client_env().items():
        monkeypatch.setenv(name, value)
    return genai.Client(http_options={"api_version": "v1alpha"})


async def reply(client: genai.Client, how: dict[str, int], affective: bool) -> tuple[Prosody, str]:
    config: dict[str, object] = {"response_modalities": ["AUDIO"], "input_audio_transcription": {},
                                 "output_audio_transcription": {}}
    if affective:
        config["enable_affective_dialog"] = True
    speech = expressive_pcm(WORDS, **how) + Pcm16.silence(1.2, 16000).data  # the silence ends the turn
    async with client.aio.live.connect(model=NATIVE, config=config) as session:  # type: ignore[arg-type]
        await send_audio(session, speech)
        messages = await one_turn(session)
    said = transcripts(messages, "output_transcription")
    return measure(audio_of(messages), 24000, len(said.split())), said


def affects_logged(server: LocaliveServer) -> list[str]:
    return re.findall(r"affect session=\S+ turn=\d+ label=(\w+)", server.log())


async def test_calm_and_excited_speech_get_different_delivery(emulator_server: LocaliveServer,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    sdk = client(emulator_server, monkeypatch)
    before = len(affects_logged(emulator_server))
    calm, calm_said = await reply(sdk, CALM, affective=True)
    excited, excited_said = await reply(sdk, EXCITED, affective=True)
    assert affects_logged(emulator_server)[before:] == ["calm", "excited"]
    assert calm_said and excited_said  # the emulator answers "You said: …" in both
    assert calm.pitch_median_hz and excited.pitch_median_hz and calm.energy_dbfs and excited.energy_dbfs
    assert calm.words_per_s and excited.words_per_s
    # the excited reply is spoken higher, louder and faster than the calm one
    assert semitones(excited.pitch_median_hz, calm.pitch_median_hz) > 1.0
    assert excited.energy_dbfs - calm.energy_dbfs > 2.0
    assert excited.words_per_s / calm.words_per_s > 1.08


async def test_without_the_flag_delivery_does_not_follow_the_user(emulator_server: LocaliveServer,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    sdk = client(emulator_server, monkeypatch)
    before = len(affects_logged(emulator_server))
    calm, _ = await reply(sdk, CALM, affective=False)
    excited, excited_said = await reply(sdk, EXCITED, affective=False)
    assert affects_logged(emulator_server)[before:] == []  # nothing was estimated
    assert calm.pitch_median_hz and excited.pitch_median_hz and calm.energy_dbfs and excited.energy_dbfs
    # the voice's normal delivery for both (the replies' words differ a little: what Whisper heard)
    assert abs(semitones(excited.pitch_median_hz, calm.pitch_median_hz)) < 1.0
    assert abs(excited.energy_dbfs - calm.energy_dbfs) < 1.0
    # the same excited input with the flag on: the reply's delivery changes
    adapted, adapted_said = await reply(sdk, EXCITED, affective=True)
    assert adapted_said == excited_said
    assert adapted.pitch_median_hz and adapted.energy_dbfs
    assert semitones(adapted.pitch_median_hz, excited.pitch_median_hz) > 0.7
    assert adapted.energy_dbfs - excited.energy_dbfs > 1.5


async def test_half_cascade_models_refuse_affective_dialog(emulator_server: LocaliveServer,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    sdk = client(emulator_server, monkeypatch)
    config = types.LiveConnectConfig(response_modalities=[types.Modality.AUDIO], enable_affective_dialog=True)
    with pytest.raises(Exception, match=r"1008.*enableAffectiveDialog is not supported by gemini-2\.0-flash-live-001"):
        async with sdk.aio.live.connect(model="gemini-2.0-flash-live-001", config=config) as session:
            await session.send_realtime_input(text="hello")
            async for _ in session.receive():
                pass
