"""Thinking: the model reasons before it answers (thinkingConfig, and the `…thinking-dialog` model).

The LLM first writes its reasoning under a reasoning prompt, within the budget; the answer is then generated
with that reasoning in its instructions. Thoughts count in `thoughtsTokenCount`; with `includeThoughts` they are
sent as text parts marked `thought: true` (in AUDIO sessions too) and are never spoken. docs/thinking.md has the
measurements behind the prompt and the budget.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from localive.engines.llm.base import ChatMessage
from localive.models.registry import ModelEntry
from localive.protocol import messages as wire
from localive.protocol.errors import InvalidArgument

DYNAMIC = -1  # thinkingBudget -1: the model decides; here a fixed default
DYNAMIC_BUDGET = 256
MAX_BUDGET = 1024  # tokens of reasoning at most, whatever is asked (a 2-core CPU writes ~30 tokens/s)
LEVEL_BUDGETS = {"MINIMAL": 0, "LOW": 128, "MEDIUM": 256, "HIGH": 512, "XHIGH": 1024}

THINK_PROMPT = ("Think step by step about the user's last message before answering. Write your reasoning as "
                "short numbered steps, with every calculation written out. Do not write the final answer yet.")
ANSWER_PROMPT = ("Your reasoning so far (the user does not see it):\n{thoughts}\n\n"
                 "Now answer the user's last message, using that reasoning. Do not mention the reasoning.")


@dataclass(frozen=True)
class Thinking:
    budget: int  # tokens of reasoning, > 0
    include_thoughts: bool = False


def thinking_of(model: ModelEntry, gen: wire.GenerationConfig) -> Thinking | None:
    """The session's thinking from its setup: off (None) unless the model thinks by default or a budget or level
    above zero is asked for. Budget 0 turns it off, -1 is dynamic; other negative budgets are invalid."""
    config = gen.thinking_config or wire.ThinkingConfig()
    if config.thinking_budget is not None:
        budget = config.thinking_budget
    elif config.thinking_level not in (None, "THINKING_LEVEL_UNSPECIFIED"):
        budget = LEVEL_BUDGETS[str(config.thinking_level)]
    else:
        budget = DYNAMIC if model.thinking else 0
    if budget < DYNAMIC:
        raise InvalidArgument("thinkingBudget must be -1 (dynamic), 0 (off) or a positive number of tokens.")
    if budget == 0:
        return None
    budget = DYNAMIC_BUDGET if budget == DYNAMIC else min(budget, MAX_BUDGET)
    return Thinking(budget, bool(config.include_thoughts))


def reasoning_messages(messages: list[ChatMessage]) -> list[ChatMessage]:
    """The conversation, with the instruction to reason first added to its system message."""
    return _with_system(messages, THINK_PROMPT)


def answer_messages(messages: list[ChatMessage], thoughts: str) -> list[ChatMessage]:
    """The conversation, with the reasoning handed to the model in its system message."""
    if not thoughts.strip():
        return messages
    return _with_system(messages, ANSWER_PROMPT.format(thoughts=thoughts.strip()))


def _with_system(messages: list[ChatMessage], text: str) -> list[ChatMessage]:
    if messages and messages[0].role == "system":
        return [replace(messages[0], text=f"{messages[0].text}\n\n{text}"), *messages[1:]]
    return [ChatMessage("system", text), *messages]
