"""The embedded LLM: a GGUF model on llama.cpp (llama-cpp-python), streaming tokens off the event loop.

All inference runs on one dedicated worker thread that also loaded and warmed the model: llama.cpp's OpenMP
threads slow down by about a third when called from a different thread than the one that warmed them
(docs/models.md). Requests from different sessions queue on that thread, one generation at a time. A stream that is
abandoned (cancelled task, closed iterator) sets a flag the worker checks after every token, so a dead turn
stops within one token.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from localive.engines.llm.addressed import SENTINEL, prompt_prefix
from localive.engines.llm.base import (
    CalledFunction,
    ChatMessage,
    FunctionCalls,
    FunctionSpec,
    SamplingParams,
)
from localive.engines.llm.calls import CALL_MAX_TOKENS, call_intent, calls_grammar
from localive.engines.llm.llama_scoring import N_SEQ_MAX, SEQUENCES, Choice, SequenceScorer
from localive.engines.worker import CountedWorker
from localive.models.errors import ModelNotInstalled

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
MAX_SCORED_TOKENS = 128  # continuation_logprobs scores at most this many tokens of the text
_DONE = object()


def _import_llama() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise ModelNotInstalled(
            "the embedded LLM runtime is not installed: pip install 'localive[llm]' (llama-cpp-python)"
        ) from exc
    return llama_cpp


def load_llama(model_path: Path, *, n_ctx: int, n_threads: int) -> Any:
    """A `llama_cpp.Llama` on `model_path` as the engine needs it.

    use_extra_bufts=False: with extra buffer types (AMX repacking) a -march=native build segfaults at the first
    decode on CPUs with AMX (docs/models.md). n_seq_max + kv_unified: scoring keeps its prompts in KV sequences of their
    own (llama_scoring.py). `Llama()` has no arguments for these, so the default params it starts from are
    adjusted for the duration of the constructor (call it from one thread at a time).
    """
    llama_cpp = _import_llama()
    low_level = llama_cpp.llama_cpp  # the module `Llama()` looks the functions up in
    default_params = low_level.llama_model_default_params
    default_context = low_level.llama_context_default_params

    def params_without_extra_bufts() -> Any:
        params = default_params()
        params.use_extra_bufts = False
        return params

    def context_with_scoring_sequences() -> Any:
        params = default_context()
        params.n_seq_max = N_SEQ_MAX
        params.kv_unified = True  # one pool of n_ctx cells: the conversation may still use all of it
        return params

    low_level.llama_model_default_params = params_without_extra_bufts
    low_level.llama_context_default_params = context_with_scoring_sequences
    try:
        return llama_cpp.Llama(model_path=str(model_path), n_ctx=n_ctx, n_threads=n_threads,
                               n_threads_batch=n_threads, verbose=False)
    finally:
        low_level.llama_model_default_params = default_params
        low_level.llama_context_default_params = default_context


class LlamaLLM:
    """Implements the LLM interface on a llama.cpp model."""

    def __init__(self, model_path: Path, *, name: str, n_ctx: int = 32768, n_threads: int | None = None) -> None:
        self.name = name
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.context_tokens = n_ctx
        self.can_score_continuations = True  # any text, in a KV sequence of its own (llama_scoring.py)
        self.counts_on_a_thread = True  # tokenizing a prompt takes ms: sessions count off the event loop
        self._n_threads = n_threads or max(1, min(4, os.cpu_count() or 1))
        self._worker = CountedWorker(thread_name_prefix=f"llm-{name}")
        self._llama: Any = None
        self._formatter: Any = None
        self._last_render: tuple[object, str] | None = None  # token count, then generation
        self._last_count: tuple[object, int] | None = None  # the last prompt counted, and its tokens
        self._grammar: tuple[str, str] | None = None  # the last function set's call grammar (GBNF)
        self._scorer: SequenceScorer | None = None  # worker-thread state, like _llama

    @property
    def n_threads(self) -> int:
        """llama.cpp's threads for one generation (and its prompt's evaluation)."""
        return self._n_threads

    # --- loading (on the worker thread) -----------------------------------------------------------------

    def load(self) -> None:
        """Load and warm the model on the worker thread; blocks the caller until done."""
        self._worker.submit(self._load_on_worker).result()

    def _load_on_worker(self) -> None:
        _import_llama()
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._llama = load_llama(self.model_path, n_ctx=self.n_ctx, n_threads=self._n_threads)
        self._scorer = SequenceScorer(self._llama)
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

    def _render(self, messages: list[ChatMessage], functions: Sequence[FunctionSpec] = (), *,
                cache: bool = True) -> str:
        """The chat template applied to `messages` (and the declared functions); a turn renders the same prompt
        twice (token count, then generation), so the last result is kept (`cache=False`: neither used nor kept,
        for renderings on the worker thread)."""
        key = (tuple(messages), tuple(f.name for f in functions))
        if cache and self._last_render is not None and self._last_render[0] == key:
            return self._last_render[1]
        chat = [_template_message(m) for m in messages]
        if not chat or chat[0]["role"] != "system":
            chat.insert(0, {"role": "system", "content": DEFAULT_SYSTEM_PROMPT})
        tools = [{"type": "function", "function": {"name": f.name, "description": f.description,
                                                   "parameters": f.parameters}} for f in functions]
        prompt = str(self._formatter(messages=chat, tools=tools or None).prompt)
        if cache:
            self._last_render = (key, prompt)
        return prompt

    def count_tokens(self, text: str) -> int:
        if not text:
            return 0
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def count_prompt_tokens(self, messages: list[ChatMessage], functions: Sequence[FunctionSpec] = ()) -> int:
        """Thread-safe (sessions call it off the event loop: ~2 µs a token). A turn counts the same prompt twice
        (fitting the context, then its usage), so the last count is kept."""
        key = (tuple(messages), tuple(f.name for f in functions))
        last = self._last_count
        if last is not None and last[0] == key:
            return last[1]
        prompt = self._render(messages, functions)
        count = len(self._llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))
        self._last_count = (key, count)
        return count

    # --- generation ------------------------------------------------------------------------------------

    async def stream(self, messages: list[ChatMessage], params: SamplingParams,
                     functions: Sequence[FunctionSpec] = ()) -> AsyncIterator[str | FunctionCalls]:
        prompt = self._render(messages, functions)
        if not functions:
            async for piece in self._generate(prompt, params):
                yield piece
            return
        # The model shows whether it wants to call a function in its first characters (a JSON object, possibly
        # in a ```json fence or <tool_call> tags); until that is clear nothing is passed on. A call is then
        # generated again under a grammar built from the declared schemas, so it is always well-formed.
        held, decided, calling = "", False, False
        async for piece in self._generate(prompt, params):
            if decided:
                yield piece
                continue
            held += piece
            intent = call_intent(held)
            if intent is None:
                continue
            decided, calling = True, intent
            if calling:
                break
            yield held
        if calling:
            yield FunctionCalls(await self._constrained_calls(prompt, params, functions))
        elif not decided and held:
            yield held

    async def _constrained_calls(self, prompt: str, params: SamplingParams,
                                 functions: Sequence[FunctionSpec]) -> tuple[CalledFunction, ...]:
        grammar = self._grammar_for(functions)
        call_params = replace(params, max_output_tokens=CALL_MAX_TOKENS, stop=())
        text = "".join([piece async for piece in self._generate(prompt, call_params, grammar)])
        calls: list[CalledFunction] = []
        for line in text.splitlines():
            if line.strip():
                data = json.loads(line)
                call = CalledFunction(str(data["name"]), dict(data.get("arguments") or {}))
                if call not in calls:
                    calls.append(call)
        return tuple(calls)

    def _grammar_for(self, functions: Sequence[FunctionSpec]) -> Any:
        key = json.dumps([[f.name, f.parameters] for f in functions], sort_keys=True)
        if self._grammar is None or self._grammar[0] != key:
            self._grammar = (key, calls_grammar(functions))
        return self._grammar[1]

    async def _generate(self, prompt: str, params: SamplingParams, grammar: Any = None) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        max_tokens = params.max_output_tokens or 1024
        # Bounded by construction: at most one item per generated token, plus the end marker.
        queue: asyncio.Queue[object] = asyncio.Queue(maxsize=max_tokens + 2)
        cancelled = threading.Event()

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
                if params.presence_penalty is not None:
                    kwargs["presence_penalty"] = params.presence_penalty
                if params.frequency_penalty is not None:
                    kwargs["frequency_penalty"] = params.frequency_penalty
                if grammar is not None:
                    kwargs["grammar"] = self._llama_grammar(grammar)
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

    # --- reading ahead ---------------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        return self._worker.idle

    async def prefill(self, messages: list[ChatMessage], functions: Sequence[FunctionSpec] = ()) -> int:
        """Bring the KV cache to the prompt of `messages` up to the end of the last message's text, reusing the
        cached prefix it shares (as `create_completion` does); a later generation on a prompt that begins the same
        way evaluates only the rest."""
        prompt = self._render(messages, functions, cache=False)
        last = messages[-1].text if messages else ""
        end = prompt.rfind(last) + len(last) if last and last in prompt else 0
        if not end:
            return 0
        return await asyncio.wrap_future(self._worker.submit(self._prefill, prompt[:end]))

    def _prefill(self, prefix: str) -> int:
        """On the worker: evaluate the tokens of `prefix` that the KV cache does not hold yet."""
        llama = self._llama
        tokens = self._tokens(prefix, special=True)
        cached = llama.input_ids[: llama.n_tokens]
        common = 0
        for held, wanted in zip(cached, tokens, strict=False):
            if held != wanted:
                break
            common += 1
        if common == len(tokens):
            return 0
        llama.n_tokens = common  # what the cache holds beyond the common prefix is replaced by this eval
        llama.eval(tokens[common:])
        return len(tokens) - common

    # --- scoring ---------------------------------------------------------------------------------------

    async def continuation_logprobs(self, chats: Sequence[list[ChatMessage]], text: str) -> list[float]:
        return await asyncio.wrap_future(self._worker.submit(self._score, list(chats), text))

    def _score(self, chats: list[list[ChatMessage]], text: str) -> list[float]:
        """On the worker: each chat's prompt up to the next user message, then `text` as that message, scored in
        the chat's own KV sequence (llama_scoring.py) so that the conversation's cache in sequence 0 stays."""
        assert self._scorer is not None
        continuation = self._tokens(text, special=False)[:MAX_SCORED_TOKENS]
        if not continuation:
            return [0.0] * len(chats)
        prefixes = [self._tokens(prompt_prefix(self._render([*chat, ChatMessage("user", SENTINEL)], cache=False)),
                                 special=True) for chat in chats]
        return self._scorer.logprobs([(prefix, continuation) for prefix in prefixes])

    async def reply_start_logprobs(self, chat: list[ChatMessage], starts: Sequence[Sequence[str]]) -> list[float]:
        return await asyncio.wrap_future(self._worker.submit(self._reply_start, list(chat), [list(g) for g in starts]))

    async def prepare_scoring(self, chats: Sequence[list[ChatMessage]],
                              question: list[ChatMessage] | None = None) -> None:
        await asyncio.wrap_future(self._worker.submit(self._prepare, list(chats), question))

    def _prepare(self, chats: list[list[ChatMessage]], question: list[ChatMessage] | None) -> None:
        """On the worker: the prompts `_score` and `_reply_start` will decode, up to the utterance, into the same
        sequences they use."""
        assert self._scorer is not None
        for sequence, chat in enumerate(chats[:SEQUENCES - 1], start=1):
            rendered = self._render([*chat, ChatMessage("user", SENTINEL)], cache=False)
            self._scorer.prefill(self._tokens(prompt_prefix(rendered), special=True), sequence)
        if question is not None:
            rendered = self._render(question, cache=False)
            self._scorer.prefill(self._tokens(prompt_prefix(rendered), special=True), SEQUENCES)

    def _reply_start(self, chat: list[ChatMessage], starts: list[list[str]]) -> list[float]:
        """On the worker: the prompt for the assistant's reply, scored in the last scoring sequence (the
        continuations above use the first ones), so consecutive questions reuse its cached part."""
        assert self._scorer is not None
        prompt = self._tokens(self._render(chat, cache=False), special=True)
        groups = tuple(tuple(dict.fromkeys(self._tokens(word, special=False)[0] for word in group if word))
                       for group in starts)
        return self._scorer.choice(Choice(prompt, groups), sequence=SEQUENCES)

    def _tokens(self, text: str, *, special: bool) -> list[int]:
        return list(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=special))

    @staticmethod
    def _llama_grammar(gbnf: str) -> Any:
        from llama_cpp.llama_grammar import LlamaGrammar

        return LlamaGrammar.from_string(gbnf, verbose=False)

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)
        if self._scorer is not None:  # the worker has ended: nothing else touches it now
            self._scorer.close()
            self._scorer = None


def _template_message(message: ChatMessage) -> dict[str, Any]:
    entry: dict[str, Any] = {"role": message.role, "content": message.text}
    if message.calls:
        entry["tool_calls"] = [{"type": "function", "function": {"name": c.name, "arguments": c.args}}
                               for c in message.calls]
    if message.name:
        entry["name"] = message.name
    return entry
