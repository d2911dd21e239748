"""Scoring with the real embedded LLM (proactive audio's judge): each hypothesis and the yes/no question in its
own KV sequence (engines/llm/llama_scoring.py). The numbers must not depend on what is cached, and scoring must
leave the conversation's cache alone."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from localive.engines.llm.addressed import ANSWERS, SENTINEL, decide, judge_prompt, prompt_prefix
from localive.engines.llm.base import ChatMessage, SamplingParams
from localive.engines.llm.llama import LlamaLLM
from localive.engines.llm.llama_scoring import SEQUENCES
from localive.models.registry import QWEN_05B
from localive.models.weights import WEIGHTS, ensure_weights
from tests.support.off_loop import runs_off_the_loop

pytestmark = pytest.mark.llm
COOK = "You are a cooking assistant. You help the user with recipes, ingredients and kitchen techniques."
QUESTION = "How long should I boil an egg for a soft yolk?"
SIDE_TALK = "Honey, can you pick up the kids at five today?"
# Sums of ~15 log-probabilities (about -50 nats): evaluating the prefix in other batches, beside another cached
# conversation, changes float rounding by a few tenths at most; a cache read wrongly is off by several nats.
TOLERANCE = 0.6


@pytest.fixture(scope="module")
def llm() -> Iterator[LlamaLLM]:
    engine = LlamaLLM(ensure_weights(WEIGHTS[QWEN_05B], progress=False), name=QWEN_05B, n_ctx=4096)
    engine.load()
    yield engine
    engine.close()


def chats(utterance: str) -> list[list[ChatMessage]]:
    return [list(h.messages) for h in judge_prompt(COOK, utterance).hypotheses]


def sequence_end(llm: LlamaLLM, seq: int) -> int:
    import llama_cpp

    return int(llama_cpp.llama_memory_seq_pos_max(llama_cpp.llama_get_memory(llm._llama._ctx.ctx), seq))


def trim(llm: LlamaLLM, seq: int, keep: int) -> None:
    import llama_cpp

    llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(llm._llama._ctx.ctx), seq, keep, -1)
    assert sequence_end(llm, seq) == keep - 1


async def generate(llm: LlamaLLM, system: str, question: str) -> str:
    messages = [ChatMessage("system", system), ChatMessage("user", question)]
    pieces = [p async for p in llm.stream(messages, SamplingParams(temperature=0.0, max_output_tokens=12))]
    return "".join(p for p in pieces if isinstance(p, str))


async def test_the_judge_tells_a_question_from_side_talk(llm: LlamaLLM) -> None:
    question = await llm.continuation_logprobs(chats(QUESTION), QUESTION)
    side = await llm.continuation_logprobs(chats(SIDE_TALK), SIDE_TALK)
    assert all(score < 0 for score in question + side)  # log-probabilities of whole utterances
    assert decide(dict(zip(("assistant", "background"), question, strict=True))).respond
    assert not decide(dict(zip(("assistant", "background"), side, strict=True))).respond


async def test_scores_do_not_depend_on_the_cache(llm: LlamaLLM) -> None:
    cold = await llm.continuation_logprobs(chats(QUESTION), QUESTION)
    warm = await llm.continuation_logprobs(chats(QUESTION), QUESTION)  # the prefixes are cached now
    assert warm == pytest.approx(cold, abs=TOLERANCE)
    await generate(llm, "You are a pirate.", "Say hello.")  # the conversation's sequence changes
    assert await llm.continuation_logprobs(chats(QUESTION), QUESTION) == pytest.approx(cold, abs=TOLERANCE)
    # If something else trims the scoring sequences (some llama-cpp-python versions rewind every sequence with
    # the conversation's), the scorer must notice and evaluate its prefixes again, not read a cache that is gone.
    trim(llm, 1, 5)
    trim(llm, 2, 0)
    assert await llm.continuation_logprobs(chats(QUESTION), QUESTION) == pytest.approx(cold, abs=TOLERANCE)
    # One hypothesis alone, and the utterance in another order of calls, give the same numbers too.
    alone = await llm.continuation_logprobs(chats(QUESTION)[1:], QUESTION)
    assert alone == pytest.approx(cold[1:], abs=TOLERANCE)


async def test_scoring_leaves_the_conversation_cached(llm: LlamaLLM) -> None:
    first = await generate(llm, COOK, "What goes into a classic vinaigrette?")
    cached = sequence_end(llm, 0)
    assert cached > 20
    await llm.continuation_logprobs(chats(SIDE_TALK), SIDE_TALK)
    assert sequence_end(llm, 0) == cached  # the conversation's KV cache is untouched
    assert await generate(llm, COOK, "What goes into a classic vinaigrette?") == first


def quiz(question: str) -> list[ChatMessage]:
    return [ChatMessage("system", "Answer with yes or no."), ChatMessage("user", question)]


async def test_how_a_reply_starts(llm: LlamaLLM) -> None:
    yes, no = await llm.reply_start_logprobs(quiz("Is Paris the capital of France?"), ANSWERS)
    assert math.exp(yes) + math.exp(no) > 0.9  # the reply's first token, right after the assistant's header
    assert yes > no
    yes, no = await llm.reply_start_logprobs(quiz("Is the sun colder than ice?"), ANSWERS)
    assert no > yes


async def test_reply_start_does_not_depend_on_the_cache(llm: LlamaLLM) -> None:
    chat = quiz("Is Paris the capital of France?")
    cold = await llm.reply_start_logprobs(chat, ANSWERS)
    await llm.reply_start_logprobs(quiz("Is water wet?"), ANSWERS)  # shares the prompt's start: cached now
    assert await llm.reply_start_logprobs(chat, ANSWERS) == pytest.approx(cold, abs=0.1)
    cached = await generate(llm, COOK, "Name a spice.")
    conversation = sequence_end(llm, 0)
    await llm.continuation_logprobs(chats(QUESTION), QUESTION)
    trim(llm, SEQUENCES, 3)
    assert await llm.reply_start_logprobs(chat, ANSWERS) == pytest.approx(cold, abs=0.1)
    assert sequence_end(llm, 0) == conversation  # neither kind of scoring touched the conversation
    assert await generate(llm, COOK, "Name a spice.") == cached


async def test_prepared_prompts_give_the_same_judgement(llm: LlamaLLM) -> None:
    history = [ChatMessage("user", "What goes into a vinaigrette?"), ChatMessage("assistant", "Oil and vinegar.")]
    ahead = judge_prompt(COOK, SENTINEL, history)
    now = judge_prompt(COOK, QUESTION, history)
    chats_now = [list(h.messages) for h in now.hypotheses]
    cold = await llm.continuation_logprobs(chats_now, QUESTION)
    cold_answer = await llm.reply_start_logprobs(list(now.question), ANSWERS)
    await llm.continuation_logprobs(chats(SIDE_TALK), SIDE_TALK)  # other prompts in the sequences
    await llm.reply_start_logprobs(quiz("Is water wet?"), ANSWERS)
    await llm.prepare_scoring([list(h.messages) for h in ahead.hypotheses], list(ahead.question))
    for sequence, chat in ((1, list(ahead.hypotheses[0].messages)), (SEQUENCES, None)):
        rendered = (llm._render([*chat, ChatMessage("user", SENTINEL)], cache=False) if chat is not None
                    else llm._render(list(ahead.question), cache=False))
        prefix = llm._tokens(prompt_prefix(rendered), special=True)
        assert sequence_end(llm, sequence) == len(prefix) - 2  # all but its last token, up to the utterance
    assert await llm.continuation_logprobs(chats_now, QUESTION) == pytest.approx(cold, abs=TOLERANCE)
    assert await llm.reply_start_logprobs(list(now.question), ANSWERS) == pytest.approx(cold_answer, abs=0.1)


async def test_empty_text_scores_nothing(llm: LlamaLLM) -> None:
    assert await llm.continuation_logprobs(chats("x"), "") == [0.0, 0.0]


async def test_scoring_runs_off_the_event_loop(llm: LlamaLLM) -> None:
    # shown without timing: tests/support/off_loop.py
    off_loop, scores = await runs_off_the_loop(llm, "_score", llm.continuation_logprobs(chats(QUESTION), QUESTION * 3))
    assert off_loop and len(scores) == 2
