"""Proactive audio: should the assistant answer what its microphone just heard?

With `proactivity: {proactiveAudio: true}` Gemini Live may stay silent when what it heard is not meant for it:
background talk, people speaking to each other, or a request outside its instructions. This module decides that
with the session's own small LLM, cheaply enough to run on every finished user turn before answering.

Method: a noisy-channel comparison of two system prompts (not a yes/no question)
---------------------------------------------------------------------------------
Asking Qwen2.5-Coder-0.5B "should the assistant answer? yes or no" does not work: whatever the wording, zero- or
few-shot, chat or code-shaped, the first-token logit difference yes/no separates the classes barely better than
chance (ROC AUC 0.5-0.85 on the tuning sets; a grammar-forced answer is "no" to everything). What a small
language model does well is *language modelling*, so the judge asks it how likely the heard utterance is as the
user's message in two chats that differ only in their system prompt:

    assistant:  [system: the session's system instruction] + recent conversation + [user: <utterance>]
    background: [system: "Transcribe what people say to each other at home."]    + [user: <utterance>]

    margin = log P(utterance | assistant) - log P(utterance | background)      (nats, summed over its tokens)
    respond  <=>  margin > THRESHOLD

A cooking question is far more likely after a cooking assistant's system prompt than as household talk; "Honey,
can you pick up the kids?" is the other way round, and so is "Who won the world cup?" (people ask each other
that, and it is unlikely for a cooking assistant). The background prompt also covers general requests, so one
comparison handles both side talk and off-role requests (a third "You are a helpful assistant." hypothesis was
measured and added nothing). Both log-probabilities are computed in one forward pass of about 2 x (utterance
tokens + 1) tokens plus each prefix (cached by llama.cpp when it repeats); no text is generated.

THRESHOLD = 0 (equal prior odds) was chosen on the tuning sets; it was not fitted to the held-out sets.

Measured with the server's own code path (`benchmarks/proactive.py` on `benchmarks/proactive_set.toml`, the
embedded Qwen2.5-Coder-0.5B): 48/48 on the two tuning sets, 140/156 (89.7 %) on seven held-out sets; the table
is in docs/proactive-audio.md. `LLM.continuation_logprob` computes each hypothesis' log-probability (llama.cpp:
the prompt prefix, cached, then the utterance in one batch with logits for every position).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from localive.engines.llm.base import ChatMessage

# --- the channel judge (the chosen method) -------------------------------------------------------------

ASSISTANT = "assistant"
BACKGROUND = "background"

# The system prompt of the "background" hypothesis: household talk, which the model also finds a likely home for
# general questions, requests to other people and chit-chat.
BACKGROUND_INSTRUCTION = "Transcribe what people say to each other at home."

# A session without a system instruction is a general assistant: only side talk is then filtered out.
DEFAULT_INSTRUCTION = "You are a helpful assistant."

# Respond when log P(utterance | assistant) - log P(utterance | background) exceeds this (nats).
THRESHOLD = 0.0

# How much of the recent conversation the assistant hypothesis sees (the last exchange), and how long each message
# may be: enough for a follow-up ("and what kind of stock?") to read as one, short enough to stay cheap (this part
# of the prefix changes every turn, so it is evaluated again each turn unless prefilled after the answer).
HISTORY_MESSAGES = 2
HISTORY_CHARS = 300

# Rendered in place of the utterance, to cut a chat-template rendering into the prefix before it.
SENTINEL = "\u0000UTTERANCE\u0000"


@dataclass(frozen=True)
class Hypothesis:
    """One explanation of where the utterance comes from: a chat whose next user message would be the utterance."""

    name: str
    messages: tuple[ChatMessage, ...]  # starts with the system message; the utterance follows as a user message


@dataclass(frozen=True)
class JudgePrompt:
    utterance: str
    hypotheses: tuple[Hypothesis, ...]  # ASSISTANT first, then BACKGROUND


@dataclass(frozen=True)
class Verdict:
    respond: bool
    margin: float  # log P(u | assistant) - log P(u | background) - THRESHOLD; > 0 means respond


def judge_prompt(system_instruction: str | None, utterance: str,
                 history: Sequence[ChatMessage] = ()) -> JudgePrompt:
    """The two hypotheses whose likelihood of `utterance` the judge compares.

    `system_instruction` is the session's (None or blank: a general assistant). `history` is the conversation so
    far, oldest first; only its last user and assistant texts are kept (function calls and results are dropped).
    """
    instruction = (system_instruction or "").strip() or DEFAULT_INSTRUCTION
    recent = [ChatMessage(m.role, _clip(m.text)) for m in history
              if m.role in ("user", "assistant") and m.text.strip()][-HISTORY_MESSAGES:]
    while recent and recent[0].role != "user":  # a chat template may require user first after the system
        recent.pop(0)
    return JudgePrompt(
        utterance=utterance.strip(),
        hypotheses=(
            Hypothesis(ASSISTANT, (ChatMessage("system", instruction), *recent)),
            Hypothesis(BACKGROUND, (ChatMessage("system", BACKGROUND_INSTRUCTION),)),
        ),
    )


def prompt_prefix(rendered_with_sentinel: str) -> str:
    """The prompt text before the utterance, from a rendering of `hypothesis.messages + [user: SENTINEL]`."""
    prefix, found, _ = rendered_with_sentinel.partition(SENTINEL)
    if not found:
        raise ValueError("the rendered prompt does not contain the sentinel user message")
    return prefix


def decide(logprobs: Mapping[str, float], threshold: float = THRESHOLD) -> Verdict:
    """The verdict from each hypothesis' log P(utterance | hypothesis) (summed over the utterance's tokens)."""
    margin = logprobs[ASSISTANT] - logprobs[BACKGROUND] - threshold
    return Verdict(respond=margin > 0, margin=margin)


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= HISTORY_CHARS else text[: HISTORY_CHARS - 1] + "…"


# --- the yes/no judge (for comparison; usable with the 1.5B model) ---------------------------------------

YES_NO_SYSTEM = (
    "You decide whether a voice assistant should answer what its microphone just heard. "
    "Answer yes only if the speaker is talking to the assistant and asks for something within the assistant's "
    "instructions. Answer no if it is background talk, people talking to each other, or a request outside the "
    "assistant's instructions."
)
# First tokens compared: logsumexp(logits of YES) - logsumexp(logits of NO) > YES_NO_THRESHOLD means respond.
YES = ("yes", "Yes")
NO = ("no", "No")
YES_NO_THRESHOLD = 0.0


def yes_no_messages(system_instruction: str | None, utterance: str,
                    history: Sequence[ChatMessage] = ()) -> list[ChatMessage]:
    """A chat whose assistant answer starts with yes or no; read the first token's logits, generate nothing."""
    instruction = (system_instruction or "").strip() or DEFAULT_INSTRUCTION
    recent = [m for m in history if m.role in ("user", "assistant") and m.text.strip()][-HISTORY_MESSAGES:]
    lines = [f"Assistant's instructions: {instruction}"]
    if recent:
        lines.append("Recent conversation:")
        lines += [f"{'User' if m.role == 'user' else 'Assistant'}: {_clip(m.text)}" for m in recent]
    lines += [f'Heard: "{utterance.strip()}"', "Should the assistant answer? Answer yes or no."]
    return [ChatMessage("system", YES_NO_SYSTEM), ChatMessage("user", "\n".join(lines))]
