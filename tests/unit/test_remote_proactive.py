"""Proactive audio's judge on a remote LLM (the yes/no question alone): reading the first token's top logprobs out
of a chat completion (recorded bytes), the constrained answer's schema and its mapping, and the judge asking the
question alone when the LLM cannot score continuations. Against a real server:
tests/integration/test_remote_proactive.py."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import jsonschema_rs
import pytest

from localive.engines.llm.addressed import ANSWERS, ASSISTANT, BACKGROUND, YES_NO_WEIGHT, decide
from localive.engines.llm.base import BackendError, ChatMessage
from localive.engines.llm.emulator import EmulatorLLM
from localive.engines.llm.openai_chat import (
    choice_messages,
    choice_schema,
    chosen_group,
    first_token_top_logprobs,
    refuses_logprobs,
    reply_start_scores,
)
from localive.session.proactive import judge

# Recorded from llama-cpp-python 0.3.36's server (Qwen2.5-Coder-1.5B, the yes/no question for "How long should I
# boil an egg?" to a cooking assistant, max_tokens 1, logprobs true, top_logprobs 20; the list cut to 10).
RECORDED_LOGPROBS = json.loads(
    '{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"content":"Yes","role":'
    '"assistant"},"logprobs":{"content":[{"token":"Yes","logprob":-0.37295886874198914,"bytes":null,'
    '"top_logprobs":[{"token":"Yes","logprob":-0.37295886874198914,"bytes":null},{"token":"No","logprob":'
    '-1.5964295864105225,"bytes":null},{"token":"yes","logprob":-2.514535665512085,"bytes":null},{"token":"no",'
    '"logprob":-3.8250691890716553,"bytes":null},{"token":"YES","logprob":-6.666794300079346,"bytes":null},'
    '{"token":"Answer","logprob":-7.1173176765441895,"bytes":null},{"token":" yes","logprob":-7.2792067527771,'
    '"bytes":null},{"token":"NO","logprob":-7.863139629364014,"bytes":null},{"token":" Yes","logprob":'
    '-8.255448341369629,"bytes":null},{"token":"The","logprob":-9.025199890136719,"bytes":null}]}],'
    '"refusal":null},"finish_reason":"length"}]}')
# The same server without logprobs asked for (or ignoring them), and started with --logits_all false.
RECORDED_NONE = json.loads('{"choices":[{"index":0,"message":{"content":"Yes","role":"assistant"},"logprobs":null,'
                           '"finish_reason":"length"}]}')
RECORDED_REFUSAL = ('{"error":{"message":"logprobs is not supported for models created with logits_all=False",'
                    '"type":"internal_server_error","param":null,"code":null}}')


def test_the_first_tokens_top_logprobs_are_read() -> None:
    top = first_token_top_logprobs(RECORDED_LOGPROBS)
    assert top is not None and len(top) == 10 and top[0] == ("Yes", pytest.approx(-0.37295886874198914))


def test_yes_and_no_sum_every_spelling_among_the_top_tokens() -> None:
    top = first_token_top_logprobs(RECORDED_LOGPROBS)
    assert top is not None
    yes, no = reply_start_scores(top, ANSWERS)
    # "Yes", "yes", " yes", " Yes" (not "YES", which is no word of the group); a token with a leading space
    # adds to the one without instead of replacing it
    assert math.exp(yes) == pytest.approx(sum(math.exp(lp) for t, lp in top if t in ("Yes", "yes", " yes", " Yes")))
    assert math.exp(no) == pytest.approx(math.exp(-1.5964295864105225) + math.exp(-3.8250691890716553))
    assert decide(None, [yes, no]).respond


def test_an_answer_missing_from_the_top_tokens_is_impossible() -> None:
    assert reply_start_scores([("Sure", -0.1), ("No", -2.5)], ANSWERS) == [-math.inf, pytest.approx(-2.5)]


def test_a_completion_without_logprobs_is_told_apart_from_a_malformed_one() -> None:
    assert first_token_top_logprobs(RECORDED_NONE) is None
    assert first_token_top_logprobs({"choices": [{"logprobs": {"content": []}}]}) is None
    with pytest.raises(BackendError, match="malformed chat completion"):
        first_token_top_logprobs({"error": "x"})
    with pytest.raises(BackendError, match="malformed logprobs"):
        first_token_top_logprobs({"choices": [{"logprobs": {"content": [{"top_logprobs": [{"token": "Yes"}]}]}}]})


def test_a_server_that_refuses_logprobs_is_recognised() -> None:
    assert refuses_logprobs(500, RECORDED_REFUSAL)
    assert refuses_logprobs(400, '{"error": "top_logprobs must be at most 5"}')
    assert not refuses_logprobs(500, '{"error": "out of memory"}')  # a failure like any other: BackendError
    assert not refuses_logprobs(401, '{"error": "logprobs need a key"}')


def test_the_constrained_answer_may_only_be_yes_or_no() -> None:
    validator = jsonschema_rs.validator_for(choice_schema(ANSWERS))
    assert validator.is_valid({"answer": "yes"}) and validator.is_valid({"answer": "no"})
    for wrong in ({"answer": "Yes"}, {"answer": "maybe"}, {}, {"answer": "yes", "why": "asked"}, "yes"):
        assert not validator.is_valid(wrong)


@pytest.mark.parametrize(("text", "chosen"), [
    ('{ "answer": "yes"}', 0), ('{"answer": "no"}', 1), ('{"answer": "No"}', 1),
    ("Yes, it is meant for the assistant.", 0), ("no", 1),  # a server that ignored the schema
    ('{"answer": "maybe"}', None), ("I cannot tell.", None), ("", None)])
def test_the_constrained_answer_maps_to_its_group(text: str, chosen: int | None) -> None:
    assert chosen_group(text, ANSWERS) == chosen


def test_the_constrained_question_asks_for_the_json_form() -> None:
    chat = [ChatMessage("system", "judge"), ChatMessage("user", "Should the assistant answer? Answer yes or no.")]
    asked = choice_messages(chat, ANSWERS)
    assert asked[0] == chat[0] and asked[-1].role == "user"
    assert asked[-1].text.startswith(chat[-1].text) and '{"answer": "yes"} or {"answer": "no"}' in asked[-1].text


def test_a_bare_answer_decides_alone_and_no_answer_says_nothing() -> None:
    said_yes, said_no = decide(None, [0.0, -math.inf]), decide(None, [-math.inf, 0.0])
    assert said_yes.respond and not said_no.respond and said_yes.channel is None
    assert decide({ASSISTANT: -30.0, BACKGROUND: -20.0}, [0.0, -math.inf]).respond  # the answer outweighs all
    neither = decide(None, [-math.inf, -math.inf])
    assert neither.yes_no == 0.0 and not neither.respond
    assert decide(None, [math.log(0.8), math.log(0.2)]).margin == pytest.approx(YES_NO_WEIGHT * math.log(4))


class ChatOnlyLLM(EmulatorLLM):
    """An LLM like a remote one: it answers the question but cannot score continuations."""

    def __init__(self, answers: list[float]) -> None:
        super().__init__()
        self.can_score_continuations = False
        self.answers = answers
        self.asked: list[list[ChatMessage]] = []

    async def continuation_logprobs(self, chats: Sequence[list[ChatMessage]], text: str) -> list[float]:
        raise AssertionError("a chat-only LLM is never asked to score continuations")

    async def reply_start_logprobs(self, chat: list[ChatMessage], starts: Sequence[Sequence[str]]) -> list[float]:
        self.asked.append(chat)
        return self.answers


@pytest.mark.parametrize("ask", [True, False])
async def test_a_chat_only_llm_is_asked_the_question_alone(ask: bool) -> None:
    llm = ChatOnlyLLM([math.log(0.1), math.log(0.9)])
    verdict = await judge(llm, "You are a cooking assistant.", "Honey, pick up the kids.", [], ask=ask)
    assert not verdict.respond and verdict.channel is None and verdict.yes_no == pytest.approx(-math.log(9))
    assert len(llm.asked) == 1 and "Honey, pick up the kids." in llm.asked[0][-1].text
