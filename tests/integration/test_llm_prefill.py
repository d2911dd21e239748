"""Reading ahead with the real embedded LLM (session/foresight.py): the prompt's start is read into the KV cache
while the user still speaks, and the answer is the same as without it — only less is left to read."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localive.engines.llm.base import ChatMessage, Prefills, SamplingParams
from localive.engines.llm.llama import LlamaLLM
from localive.models.registry import QWEN_05B
from localive.models.weights import WEIGHTS, ensure_weights

pytestmark = pytest.mark.llm
SYSTEM = ChatMessage("system", "You are a helpful voice assistant. Answer in one short sentence.")
GREEDY = SamplingParams(temperature=0.0, max_output_tokens=16)


@pytest.fixture(scope="module")
def llm() -> Iterator[LlamaLLM]:
    engine = LlamaLLM(ensure_weights(WEIGHTS[QWEN_05B], progress=False), name=QWEN_05B, n_ctx=4096)
    engine.load()
    yield engine
    engine.close()


async def answer(llm: LlamaLLM, user: str) -> str:
    return "".join([str(piece) async for piece in llm.stream([SYSTEM, ChatMessage("user", user)], GREEDY)])


async def test_reading_ahead_leaves_the_answer_unchanged_and_only_the_rest_to_read(llm: LlamaLLM) -> None:
    assert isinstance(llm, Prefills) and llm.idle
    question = "What is the capital of France?"
    plain = await answer(llm, question)
    await answer(llm, "How many legs does a spider have?")  # another prompt in the cache meanwhile
    read = await llm.prefill([SYSTEM, ChatMessage("user", "What is the capital")])  # the words so far
    assert read > 0 and llm.idle
    assert await llm.prefill([SYSTEM, ChatMessage("user", "What is the capital")]) == 0  # already read
    assert 0 < await llm.prefill([SYSTEM, ChatMessage("user", question)]) < read  # only the new words
    assert await answer(llm, question) == plain


async def test_a_prompt_that_differs_from_what_was_read_ahead_is_answered_as_if_nothing_had_been(
        llm: LlamaLLM) -> None:
    question = "Who wrote Romeo and Juliet?"
    plain = await answer(llm, question)
    await llm.prefill([SYSTEM, ChatMessage("user", "Where is the nearest train station")])
    assert await answer(llm, question) == plain
