"""Proactive audio's decision rule (engines/llm/addressed.py): the channel margin and the yes/no answer, combined."""

from __future__ import annotations

import math

import pytest

from localive.engines.llm.addressed import (
    ANSWERS,
    ASSISTANT,
    BACKGROUND,
    YES_NO_WEIGHT,
    decide,
    judge_prompt,
)
from localive.engines.llm.base import ChatMessage

COOK = "You are a cooking assistant."


def test_the_channel_alone_decides_without_an_answer() -> None:
    assert decide({ASSISTANT: -20.0, BACKGROUND: -25.0}).respond
    assert not decide({ASSISTANT: -25.0, BACKGROUND: -20.0}).respond


def test_a_clear_answer_outweighs_a_small_channel_margin() -> None:
    likely_yes = [math.log(0.9), math.log(0.1)]
    verdict = decide({ASSISTANT: -22.0, BACKGROUND: -20.0}, likely_yes)
    assert verdict.respond
    assert verdict.channel == pytest.approx(-2.0)
    assert verdict.yes_no == pytest.approx(math.log(9))
    assert verdict.margin == pytest.approx(-2.0 + YES_NO_WEIGHT * math.log(9))
    assert not decide({ASSISTANT: -20.0, BACKGROUND: -22.0}, likely_yes[::-1]).respond


def test_an_undecided_answer_leaves_the_channel_to_decide() -> None:
    even = [math.log(0.5), math.log(0.5)]
    assert decide({ASSISTANT: -20.0, BACKGROUND: -21.0}, even).respond
    assert not decide({ASSISTANT: -21.0, BACKGROUND: -20.0}, even).respond


def test_the_question_names_the_instructions_the_conversation_and_the_utterance() -> None:
    history = [ChatMessage("user", "How do I poach an egg?"), ChatMessage("assistant", "Simmer the water first.")]
    prompt = judge_prompt(COOK, "And for how long?", history)
    asked = prompt.question[-1].text
    assert prompt.question[-1].role == "user"
    assert COOK in asked and "Simmer the water first." in asked and "And for how long?" in asked
    assert asked.rstrip().endswith("Answer yes or no.")
    assert ANSWERS[0][0] == "yes" and ANSWERS[1][0] == "no"


def test_the_judge_sees_the_user_and_model_texts_only() -> None:
    from localive.session.history import Entry
    from localive.session.proactive import conversation

    turns = [Entry("user", "Weather in Paris?"), Entry("model", "", call_ids=("c1",)),
             Entry("tool", '{"sky": "clear"}', name="weather"), Entry("model", "Clear skies.")]
    assert [(m.role, m.text) for m in conversation(turns)] == [
        ("user", "Weather in Paris?"), ("assistant", ""), ("assistant", "Clear skies.")]
    # judge_prompt drops the empty text and keeps the last exchange
    prompt = judge_prompt(COOK, "And tomorrow?", conversation(turns))
    assert [(m.role, m.text) for m in prompt.hypotheses[0].messages][1:] == [
        ("user", "Weather in Paris?"), ("assistant", "Clear skies.")]
