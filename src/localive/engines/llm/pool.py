"""Load each LLM backend once and share it between sessions."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

from localive.clock import SYSTEM_CLOCK, Clock
from localive.engines.llm.base import BackendError
from localive.engines.llm.emulator import EmulatorLLM, EmulatorScript
from localive.engines.llm.openai_chat import RemoteSettings
from localive.engines.llm.scoring import ScoringLLM
from localive.models.errors import ModelNotInstalled
from localive.models.registry import EMULATOR, QWEN_05B, ModelEntry, is_remote, split_remote_key
from localive.models.weights import WEIGHTS, ensure_weights

log = logging.getLogger("localive.engines")


class LLMPool:
    def __init__(self, *, emulator_script: EmulatorScript | None = None, model_dir: Path | None = None,
                 remote: RemoteSettings | None = None, clock: Clock = SYSTEM_CLOCK,
                 llm_threads: int | None = None) -> None:
        self._emulator_script = emulator_script
        self._clock = clock  # the emulator's pacing (the server's clock)
        self._model_dir = model_dir
        self._remote = remote or RemoteSettings("")  # timeouts and limits of remote backends (their URL: the key)
        self._llms: dict[str, ScoringLLM] = {}
        self._llm_threads = llm_threads  # embedded llama.cpp's threads (None: LlamaLLM's default)

    def load(self, backends: set[str], *, progress: bool = True) -> None:
        """Load (and warm) the named backends now, at start-up, so that no session pays for it."""
        for key in sorted(backends):
            if key not in self._llms:
                self._llms[key] = self._create(key, progress)

    def _create(self, key: str, progress: bool) -> ScoringLLM:
        if key == EMULATOR:
            return EmulatorLLM(self._emulator_script, clock=self._clock)
        if is_remote(key):
            from localive.engines.llm.openai_chat import OpenAIChatLLM, check_backend, redact_url

            url, model, tools = split_remote_key(key)
            settings = replace(self._remote, base_url=url, model=model, tools=tools)
            try:
                settings = replace(settings, model=check_backend(settings))  # BackendError: down, wrong model
            except BackendError as exc:
                if not (settings.may_start_down and settings.model and _unreachable(exc)):
                    raise
                log.warning("%s; starting anyway: its sessions are refused (1013) until it answers", exc)
                remote = OpenAIChatLLM(settings)
                remote.health.down = True
                return remote
            log.info("LLM backend %s serves %s", redact_url(url), settings.model)
            return OpenAIChatLLM(settings)
        if key in WEIGHTS:
            from localive.engines.llm.llama import LlamaLLM

            path = ensure_weights(WEIGHTS[key], directory=self._model_dir, progress=progress)
            started = time.monotonic()
            llm = LlamaLLM(path, name=key, n_threads=self._llm_threads)
            llm.load()
            log.info("loaded %s in %.1f s on %d thread(s)", key, time.monotonic() - started, llm.n_threads)
            return llm
        raise ModelNotInstalled(f"unknown LLM backend '{key}' (known: {EMULATOR}, {', '.join(WEIGHTS)})")

    def load_optional(self, backends: set[str], *, progress: bool = True) -> list[str]:
        """Load the backends whose weights are installed; returns a line for each one that is not."""
        missing = []
        for key in sorted(backends):
            try:
                if key not in self._llms:
                    self._llms[key] = self._create(key, progress)
            except ModelNotInstalled as exc:
                missing.append(f"{key} not loaded: {exc}")
        return missing

    def backend(self, key: str) -> ScoringLLM:
        """A loaded backend by name (benchmarks)."""
        llm = self._llms.get(key)
        if llm is None:
            raise ModelNotInstalled(f"LLM backend '{key}' is not loaded")
        return llm

    def for_code(self, entry: ModelEntry) -> ScoringLLM:
        """The LLM for a session with codeExecution or thinking, and proactive audio's judge: the entry's code LLM
        when it is loaded."""
        if entry.code_llm and entry.code_llm in self._llms:
            return self._llms[entry.code_llm]
        return self.for_model(entry)

    def for_model(self, entry: ModelEntry) -> ScoringLLM:
        llm = self._llms.get(entry.llm)
        if llm is None:  # registry entries are all loaded at start; this is a configuration bug
            raise ModelNotInstalled(f"LLM backend '{entry.llm}' is not loaded")
        return llm

    def close(self) -> None:
        for llm in self._llms.values():
            close = getattr(llm, "close", None)
            if close is not None:
                close()
        self._llms.clear()


def _unreachable(exc: BackendError) -> bool:
    """A backend that does not answer (not one that answers wrongly: a refused key or a missing model stay fatal)."""
    return "cannot reach" in str(exc)


__all__ = ["QWEN_05B", "LLMPool"]
