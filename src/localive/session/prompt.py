"""What the language model is shown: the system prompt (the instruction, tool guidance, the reply language and this
turn's retrieved context), then the history (`chat_messages`); and keeping that within the model's context
(`fit_context`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from localive.engines.llm.base import LLM, RESULT_NUDGE, ChatMessage, FunctionSpec, Role
from localive.protocol.errors import ContextFull
from localive.session.config import SessionConfig
from localive.session.context import language_instruction
from localive.session.history import History
from localive.session.translation import translation_messages

log = logging.getLogger("localive.session")

DEFAULT_ANSWER_TOKENS = 1024  # kept free for the answer when maxOutputTokens is not set
TURN_OVERHEAD_TOKENS = 6  # the chat template's markers around each history entry (estimate for compression)
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
FUNCTIONS_PROMPT = ("Call a function whenever one of the functions can help answer the user; do not guess what a "
                    "function would return.")
CODE_PROMPT = """You can run Python code: when a question needs a calculation, write one complete Python program \
in a ```python code block; it must print() its result. The program is run and you are shown what it printed; \
then answer using that output.

For example, to "add up the first 4 multiples of 7":
```python
found = []
n = 1
while len(found) < 4:
    if n % 7 == 0:
        found.append(n)
    n += 1
print(sum(found))
```"""
ROLES: dict[str, Role] = {"user": "user", "model": "assistant", "tool": "tool"}


def function_specs(config: SessionConfig) -> list[FunctionSpec]:
    """The functions the session declared, as the LLM is offered them."""
    return [FunctionSpec(f.name, f.description, f.parameters) for f in config.tools.functions]


def chat_messages(config: SessionConfig, history: History, context: str = "") -> list[ChatMessage]:
    """The LLM's view of the conversation: system instruction (with tool guidance and retrieved context for
    this turn), then the history."""
    if config.translation is not None:
        return translation_messages(config.translation, config.system_instruction, history)
    tools = config.tools
    system = [config.system_instruction or (DEFAULT_SYSTEM_PROMPT if tools.enabled else "")]
    if tools.functions:
        system.append(FUNCTIONS_PROMPT)
    if tools.code_execution:
        system.append(CODE_PROMPT)
    system.append(language_instruction(config.language))
    system.append(context)
    messages = []
    if text := "\n\n".join(p for p in system if p):
        messages.append(ChatMessage("system", text))
    messages.extend(ChatMessage(ROLES[t.role], t.text, t.calls, t.name) for t in history)
    if history and history[-1].role == "tool":
        messages.append(ChatMessage("user", RESULT_NUDGE))
    return messages


async def count_prompt_tokens(llm: LLM, messages: list[ChatMessage], functions: Sequence[FunctionSpec]) -> int:
    """The prompt's tokens, counted on a thread when the LLM says that counting takes time (`counts_on_a_thread`:
    llama.cpp's tokenizer, ~2 µs a token on 2 cores, ~1.6 ms for a 10-turn conversation); the others' counts
    (estimates, the emulator's) stay on the event loop, and in its virtual time in tests."""
    if getattr(llm, "counts_on_a_thread", False):
        return await asyncio.to_thread(llm.count_prompt_tokens, messages, functions)
    return llm.count_prompt_tokens(messages, functions)


async def fit_context(llm: LLM, config: SessionConfig, history: History, session_id: str) -> None:
    """Keep the prompt within the LLM's context: with contextWindowCompression drop the oldest whole turns
    (a user turn and what answered it) down to the target; without it, a full context ends the session. The
    prompt may be counted off the event loop (`count_prompt_tokens`); the history is only changed on it."""
    room = llm.context_tokens - (config.sampling.max_output_tokens or DEFAULT_ANSWER_TOKENS)
    tokens = await count_prompt_tokens(llm, chat_messages(config, history), function_specs(config))
    if config.compression is None:
        if tokens > room:
            raise ContextFull()
        return
    trigger, target = config.compression.bounds(room)
    if tokens <= trigger:
        return
    sizes = [llm.count_tokens(t.text) + TURN_OVERHEAD_TOKENS for t in history]
    cut = history.drop_oldest(sizes, tokens, target)
    log.info("session %s: context %d tokens > %d: dropped the oldest %d history entries", session_id, tokens,
             trigger, cut)
