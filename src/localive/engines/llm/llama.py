"""The embedded LLM: a GGUF model on llama.cpp (llama-cpp-python), streaming tokens off the event loop.

All inference runs on one dedicated worker thread that also loaded and warmed the model: llama.cpp's OpenMP
threads slow down by about a third when called from a different thread than the one that warmed them
(MODELS.md). Requests from different sessions queue on that thread, one generation at a time. A stream that is
abandoned (cancelled task, closed iterator) sets a flag the worker checks after every token, so a dead turn
stops within one token.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from localive.engines.llm.base import ChatMessage, ModelNotInstalled, SamplingParams

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
_DONE = object()


def _import_llama() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise ModelNotInstalled(
            "the embedded LLM runtime is not installed: pip install 'localive[llm]' (llama-cpp-python)"
        ) from exc
    return llama_cpp


class LlamaLLM:
    """Implements the LLM interface on a llama.cpp model."""

    def __init__(self, model_path: Path, *, name: str, n_ctx: int = 32768, n_threads: int | None = None) -> None:
        self.name = name
        self.model_path = model_path
        self.n_ctx = n_ctx
        self._n_threads = n_threads or max(1, min(4, os.cpu_count() or 1))
        self._worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llm-{name}")
        self._llama: Any = None
        self._formatter: Any = None
        self._last_render: tuple[tuple[ChatMessage, ...], str] | None = None  # token count, then generation

    # --- loading (on the worker thread) -----------------------------------------------------------------

    def load(self) -> None:
        """Load and warm the model on the worker thread; blocks the caller until done."""
        self._worker.submit(self._load_on_worker).result()

    def _load_on_worker(self) -> None:
        llama_cpp = _import_llama()
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        # use_extra_bufts=False: with extra buffer types (AMX repacking) a -march=native build segfaults at the
        # first decode on CPUs with AMX (MODELS.md). `Llama()` has no argument for it, so the default model
        # params it starts from are adjusted for the duration of the constructor (we are the only caller).
        low_level = llama_cpp.llama_cpp  # the module `Llama()` looks the function up in
        default_params = low_level.llama_model_default_params

        def params_without_extra_bufts() -> Any:
            params = default_params()
            params.use_extra_bufts = False
            return params

        low_level.llama_model_default_params = params_without_extra_bufts
        try:
            self._llama = llama_cpp.Llama(
                model_path=str(self.model_path),
                n_ctx=self.n_ctx,
                n_threads=self._n_threads,
                n_threads_batch=self._n_threads,
                verbose=False,
            )
        finally:
            low_level.llama_model_default_params = default_params
        template = self._llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelNotInstalled(f"{self.model_path.name} has no chat template; it cannot serve as an assistant")
        eos = self._llama.detokenize([self._llama.token_eos()], special=True).decode("utf-8", "replace")
        bos = self._llama.detokenize([self._llama.token_bos()], special=True).decode("utf-8", "replace")
        self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        # Warm: evaluate the default system prompt so its KV prefix is cached for the first real request.
        warm = self._render([ChatMessage("user", "Hi")])
        for _ in self._llama.create_completion(warm, max_tokens=1, stream=True, temperature=0.0):
            pass

    # --- prompt ----------------------------------------------------------------------------------------

    def _render(self, messages: list[ChatMessage]) -> str:
        """The chat template applied to `messages`; a turn renders the same messages twice (token count, then
        generation), so the last result is kept."""
        key = tuple(messages)
        if self._last_render is not None and self._last_render[0] == key:
            return self._last_render[1]
        chat = [{"role": m.role, "content": m.text} for m in messages]
        if not chat or chat[0]["role"] != "system":
            chat.insert(0, {"role": "system", "content": DEFAULT_SYSTEM_PROMPT})
        prompt = str(self._formatter(messages=chat).prompt)
        self._last_render = (key, prompt)
        return prompt

    def count_tokens(self, text: str) -> int:
        if not text:
            return 0
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def count_prompt_tokens(self, messages: list[ChatMessage]) -> int:
        prompt = self._render(messages)
        return len(self._llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))

    # --- generation ------------------------------------------------------------------------------------

    async def stream(self, messages: list[ChatMessage], params: SamplingParams) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        max_tokens = params.max_output_tokens or 1024
        # Bounded by construction: at most one item per generated token, plus the end marker.
        queue: asyncio.Queue[object] = asyncio.Queue(maxsize=max_tokens + 2)
        cancelled = threading.Event()
        prompt = self._render(messages)

        def emit(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed (server shutting down): nobody is listening
                pass

        def run() -> None:
            try:
                if cancelled.is_set():
                    return
                kwargs: dict[str, Any] = {
                    "max_tokens": max_tokens,
                    "stream": True,
                    "temperature": 0.7 if params.temperature is None else params.temperature,
                    "top_p": 0.95 if params.top_p is None else params.top_p,
                    "top_k": 40 if params.top_k is None else params.top_k,
                    "stop": list(params.stop) or None,
                }
                if params.seed is not None:
                    kwargs["seed"] = params.seed
                for chunk in self._llama.create_completion(prompt, **kwargs):
                    if cancelled.is_set():
                        break
                    text = chunk["choices"][0]["text"]
                    if text:
                        emit(text)
            except BaseException as exc:  # noqa: BLE001  # handed to the awaiting coroutine, re-raised there
                emit(exc)
            finally:
                emit(_DONE)

        future = self._worker.submit(run)
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise RuntimeError("LLM generation failed") from item
                yield str(item)
        finally:
            cancelled.set()
            future.cancel()  # if still queued behind another session's generation, it never starts

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)
