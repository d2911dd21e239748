"""The spoken answer's pipeline (session/speech_out.py): the first phrase is synthesised while the LLM writes on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from localive.clock import SYSTEM_CLOCK
from localive.engines.tts.fake import ToneTTS
from localive.session.outbox import Outbox
from localive.session.speech_out import Playback, speak
from localive.session.watchdog import Watchdog


async def test_the_first_phrase_is_spoken_while_the_llm_is_still_writing() -> None:
    tts, outbox = ToneTTS(), Outbox(maxsize=256)
    go_on = asyncio.Event()

    async def llm() -> AsyncIterator[str]:
        for token in ["The", " capital", " of", " France", " is", " Paris"]:
            yield token
        await go_on.wait()  # the LLM is slow to write the rest
        for token in [".", " It", " is", " lovely", "."]:
            yield token

    playback = Playback()
    speaking = asyncio.create_task(speak(
        llm(), tts=tts, voice="Puck", language=None, outbox=outbox, turn=1, playback=playback, transcribe=True,
        watchdog=Watchdog("test", outbox, SYSTEM_CLOCK, bound_s=None)))
    # the first phrase's transcription and audio reach the client while the LLM is still held
    transcription, audio = [(await asyncio.wait_for(outbox.get(), 5))["serverContent"] for _ in range(2)]
    assert transcription["outputTranscription"]["text"].strip() == "The capital of France"
    assert "inlineData" in audio["modelTurn"]["parts"][0]
    assert [r.text for r in tts.requests] == ["The capital of France"]
    go_on.set()
    await asyncio.wait_for(speaking, 5)
    assert [r.text for r in tts.requests] == ["The capital of France", "is Paris.", "It is lovely."]
    assert playback.text == "The capital of France is Paris. It is lovely."
