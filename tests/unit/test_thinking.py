"""Thinking in the session: reasoning first, thought parts only when asked for, never spoken, counted."""

from __future__ import annotations

import pytest

from localive.engines.llm.base import ChatMessage
from localive.engines.llm.emulator import EmulatorLLM, EmulatorScript
from localive.engines.tts.fake import ToneTTS
from localive.engines.vad.energy import EnergyVAD
from localive.models.registry import ModelRegistry
from localive.protocol import messages as wire
from localive.protocol.errors import InvalidArgument
from localive.session.engines import Engines
from localive.session.live import LiveSession
from localive.session.thinking import (
    DYNAMIC_BUDGET,
    MAX_BUDGET,
    THINK_PROMPT,
    Thinking,
    answer_messages,
    reasoning_messages,
    thinking_of,
)
from localive.testing.session import drain_turn, send
from tests.unit.test_session_voice import ListASR

THINKING_MODEL = "gemini-2.5-flash-exp-native-audio-thinking-dialog"
NATIVE = "gemini-2.5-flash-preview-native-audio-dialog"


class ThinkingLLM(EmulatorLLM):
    """Reasons "Step 1: 3 times 4 is 12." under the reasoning prompt; otherwise answers from what it was told."""

    def __init__(self) -> None:
        super().__init__(EmulatorScript.from_dict({}))
        self.prompts: list[list[ChatMessage]] = []

    def stream(self, messages, params, functions=()):  # type: ignore[no-untyped-def]
        self.prompts.append(list(messages))
        system = messages[0].text if messages and messages[0].role == "system" else ""
        if THINK_PROMPT in system:
            reply = "Step 1: 3 times 4 is 12.\nStep 2: 12 minus 5 is 7."
        elif "12 minus 5 is 7" in system:
            reply = "You have 7 apples left."
        else:
            reply = "You have 12 apples."
        return _words(reply, params)


async def _words(text: str, params: object):  # type: ignore[no-untyped-def]
    for word in text.split(" "):
        yield word + " "


async def turn(model: str, modality: str,
               thinking: dict[str, object] | None) -> tuple[list[dict], ThinkingLLM, ToneTTS]:
    llm, tts = ThinkingLLM(), ToneTTS(ms_per_char=1.0)
    engines = Engines(llm_for=lambda entry: llm, asr=ListASR(), tts=tts, vad_factory=EnergyVAD)
    session = LiveSession(registry=ModelRegistry(), engines=engines, session_id="think")
    config: dict[str, object] = {"responseModalities": [modality]}
    if thinking is not None:
        config["thinkingConfig"] = thinking
    await send(session, {"setup": {"model": model, "generationConfig": config, "outputAudioTranscription": {}}})
    await session.outbox.get()
    await send(session, {"clientContent": {"turns": [{"role": "user", "parts": [
        {"text": "I have 3 boxes of 4 apples and eat 5. How many are left?"}]}], "turnComplete": True}})
    messages = await drain_turn(session)
    await session.aclose()
    return messages, llm, tts


def parts(messages: list[dict]) -> list[dict]:
    return [p for m in messages for p in m.get("serverContent", {}).get("modelTurn", {}).get("parts", [])]


async def test_the_thinking_model_reasons_first_and_uses_it() -> None:
    messages, llm, tts = await turn(THINKING_MODEL, "AUDIO", None)
    assert len(llm.prompts) == 2 and THINK_PROMPT in llm.prompts[0][0].text
    assert "12 minus 5 is 7" in llm.prompts[1][0].text  # the answer is generated with the reasoning
    said = " ".join(r.text for r in tts.requests)
    assert "7 apples" in said and "Step" not in said  # thoughts are never spoken
    assert not [p for p in parts(messages) if p.get("thought")]  # and not sent unless asked for
    usage = messages[-1]["usageMetadata"]
    assert usage["thoughtsTokenCount"] > 0
    assert usage["totalTokenCount"] == (usage["promptTokenCount"] + usage["responseTokenCount"]
                                        + usage["thoughtsTokenCount"])


async def test_include_thoughts_sends_thought_parts_that_are_not_spoken() -> None:
    messages, _, tts = await turn(THINKING_MODEL, "AUDIO", {"includeThoughts": True})
    thoughts = "".join(p["text"] for p in parts(messages) if p.get("thought"))
    assert "3 times 4 is 12" in thoughts and "12 minus 5 is 7" in thoughts
    first_audio = next(i for i, p in enumerate(parts(messages)) if "inlineData" in p)
    assert all(p.get("thought") for p in parts(messages)[:first_audio])  # thoughts come before the answer
    assert "Step" not in " ".join(r.text for r in tts.requests)
    transcript = "".join(m["serverContent"].get("outputTranscription", {}).get("text", "") for m in messages
                         if "serverContent" in m)
    assert "7 apples" in transcript and "Step" not in transcript


async def test_a_budget_turns_thinking_on_and_zero_turns_it_off() -> None:
    messages, llm, _ = await turn("gemini-2.0-flash-live-001", "TEXT", {"thinkingBudget": 64, "includeThoughts": True})
    assert len(llm.prompts) == 2
    assert [p["text"].strip() for p in parts(messages) if not p.get("thought")][-1].endswith("left.")
    messages, llm, _ = await turn(THINKING_MODEL, "AUDIO", {"thinkingBudget": 0, "includeThoughts": True})
    assert len(llm.prompts) == 1 and not [p for p in parts(messages) if p.get("thought")]
    assert "thoughtsTokenCount" not in messages[-1]["usageMetadata"]


def entry(name: str):  # type: ignore[no-untyped-def]
    return ModelRegistry().resolve(name)


@pytest.mark.parametrize(("model", "config", "expected"), [
    (THINKING_MODEL, None, Thinking(DYNAMIC_BUDGET)),
    (NATIVE, None, None),
    (NATIVE, {"thinkingBudget": 200, "includeThoughts": True}, Thinking(200, True)),
    (NATIVE, {"thinkingBudget": -1}, Thinking(DYNAMIC_BUDGET)),
    (NATIVE, {"thinkingBudget": 50000}, Thinking(MAX_BUDGET)),
    (THINKING_MODEL, {"thinkingBudget": 0}, None),
    (NATIVE, {"thinkingLevel": "HIGH"}, Thinking(512)),
    (THINKING_MODEL, {"thinkingLevel": "MINIMAL"}, None),
])
def test_thinking_of(model: str, config: dict[str, object] | None, expected: Thinking | None) -> None:
    gen = wire.GenerationConfig.model_validate({"thinkingConfig": config} if config else {})
    assert thinking_of(entry(model), gen) == expected


def test_negative_budgets_other_than_dynamic_are_invalid() -> None:
    gen = wire.GenerationConfig.model_validate({"thinkingConfig": {"thinkingBudget": -5}})
    with pytest.raises(InvalidArgument):
        thinking_of(entry(NATIVE), gen)


def test_reasoning_goes_into_the_system_message() -> None:
    conversation = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")]
    assert reasoning_messages(conversation)[0].text == f"Be brief.\n\n{THINK_PROMPT}"
    assert answer_messages([ChatMessage("user", "Hi")], "1. think")[0].role == "system"
    assert answer_messages(conversation, "  ") == conversation
