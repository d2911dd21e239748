"""Engines that fail on purpose, for tests (the project's and users' own): wrappers that make a real or fake engine
raise, or hang, at a chosen point.

Each wrapper takes what it wraps and a `Fault`. The first `after` calls (pieces, for a language model's stream) pass
through; from then on each call raises (`InjectedFault`, a plain RuntimeError: an engine that crashed, as an
embedded one would; or the fault's own `error`, e.g. a remote backend's BackendFailed) or hangs until it is
cancelled. `struck` is set the first time the fault fires, so that a test can wait for it (and then move a virtual
clock). Everything else passes through to the wrapped object.

* `FaultyASR`: `transcribe` (speech recognition).
* `FaultyLLM`: each `stream`, before its first piece (`after=0`) or after `after` pieces.
* `FaultyTTS`: `synthesize`: the answer's first clause (`after=0`) or a later one, mid-answer.
* `FaultySandbox`: `run`, code execution's sandbox (tools/sandbox.py's CodeSandbox).
* `FaultyStore`: a session store's `save`, `load` and `session_ended`, each with its own fault or none
  (stores/base.py's SessionStore).

The sandbox and the store are matched by their shape, so this module imports neither the tools nor the session.
What a session does with each fault is in docs/architecture.md ("Faults and the watchdog").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from localive.audio.pcm import Pcm16
from localive.engines.asr.base import ASR, Transcript
from localive.engines.llm.base import LLM, ChatMessage, FunctionCalls, FunctionSpec, SamplingParams
from localive.engines.tts.base import NEUTRAL, TTS, Delivery

R = TypeVar("R", covariant=True)


class InjectedFault(RuntimeError):
    """The failure a `Fault` raises unless it names another."""


@dataclass(frozen=True)
class Fault:
    """How and when a wrapped engine fails: `mode` "raise" or "hang" (until cancelled), once `after` calls (or
    stream pieces) have passed; `error` makes the exception to raise (default: InjectedFault)."""

    mode: Literal["raise", "hang"] = "raise"
    after: int = 0
    error: Callable[[], Exception] | None = None


class _Trigger:
    """Counts calls and fires the fault once `after` of them have passed."""

    def __init__(self, fault: Fault, where: str) -> None:
        self.fault = fault
        self.where = where
        self.calls = 0
        self.struck = asyncio.Event()

    async def step(self) -> None:
        """One call: passes through the first `after`, fails from then on."""
        self.calls += 1
        if self.calls > self.fault.after:
            await self.strike()

    async def strike(self) -> None:
        self.struck.set()
        if self.fault.mode == "hang":
            await asyncio.get_running_loop().create_future()  # never set: waits until cancelled
        raise self.fault.error() if self.fault.error is not None else InjectedFault(f"injected fault: {self.where}")


class _Wrapper:
    """Passes every attribute it does not define on to the wrapped object."""

    def __init__(self, inner: object) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class FaultyASR(_Wrapper):
    def __init__(self, asr: ASR, fault: Fault) -> None:
        super().__init__(asr)
        self._asr = asr
        self._trigger = _Trigger(fault, "speech recognition")
        self.struck = self._trigger.struck

    async def transcribe(self, audio: Pcm16, language: str | None = None, expect: str | None = None, *,
                         detect_among: tuple[str, ...] | None = None) -> Transcript:
        await self._trigger.step()
        return await self._asr.transcribe(audio, language, expect, detect_among=detect_among)


class FaultyLLM(_Wrapper):
    def __init__(self, llm: LLM, fault: Fault) -> None:
        super().__init__(llm)
        self._llm = llm
        self._trigger = _Trigger(fault, "language model")
        self.struck = self._trigger.struck

    async def stream(self, messages: list[ChatMessage], params: SamplingParams,
                     functions: Sequence[FunctionSpec] = ()) -> AsyncIterator[str | FunctionCalls]:
        """The wrapped stream's pieces, `after` of them, then the fault (none if the stream ends first)."""
        inner = self._llm.stream(messages, params, functions)
        try:
            passed = 0
            while True:
                if passed >= self._trigger.fault.after:
                    await self._trigger.strike()
                try:
                    item = await inner.__anext__()
                except StopAsyncIteration:
                    return
                yield item
                passed += 1
        finally:
            if (close := getattr(inner, "aclose", None)) is not None:
                await close()


class FaultyTTS(_Wrapper):
    def __init__(self, tts: TTS, fault: Fault) -> None:
        super().__init__(tts)
        self._tts = tts
        self._trigger = _Trigger(fault, "speech synthesis")
        self.struck = self._trigger.struck

    async def synthesize(self, text: str, voice: str, language: str | None = None,
                         delivery: Delivery = NEUTRAL) -> Pcm16:
        await self._trigger.step()
        return await self._tts.synthesize(text, voice, language, delivery)


class _Runs(Protocol[R]):
    async def run(self, code: str, *, owner: str | None = None) -> R: ...


class FaultySandbox(_Wrapper, Generic[R]):
    def __init__(self, sandbox: _Runs[R], fault: Fault) -> None:
        super().__init__(sandbox)
        self._sandbox = sandbox
        self._trigger = _Trigger(fault, "code execution")
        self.struck = self._trigger.struck

    async def run(self, code: str, *, owner: str | None = None) -> R:
        await self._trigger.step()
        return await self._sandbox.run(code, owner=owner)


class _Stores(Protocol):
    async def save(self, handle: str, *, session_key: str, principal: str, state: str) -> None: ...

    async def load(self, handle: str, principal: str) -> str | None: ...

    async def session_ended(self, session_key: str) -> None: ...

    async def ping(self) -> None: ...


class FaultyStore(_Wrapper):
    """A session store whose operations fail as their faults say (None: that one never fails). `struck` is set when
    any fires."""

    def __init__(self, store: _Stores, *, save: Fault | None = None, load: Fault | None = None,
                 ended: Fault | None = None) -> None:
        super().__init__(store)
        self._store = store
        self.struck = asyncio.Event()
        self._save = _Trigger(save, "session store") if save else None
        self._load = _Trigger(load, "session store") if load else None
        self._ended = _Trigger(ended, "session store") if ended else None
        for trigger in (self._save, self._load, self._ended):
            if trigger is not None:
                trigger.struck = self.struck

    async def save(self, handle: str, *, session_key: str, principal: str, state: str) -> None:
        if self._save is not None:
            await self._save.step()
        await self._store.save(handle, session_key=session_key, principal=principal, state=state)

    async def load(self, handle: str, principal: str) -> str | None:
        if self._load is not None:
            await self._load.step()
        return await self._store.load(handle, principal)

    async def session_ended(self, session_key: str) -> None:
        if self._ended is not None:
            await self._ended.step()
        await self._store.session_ended(session_key)
