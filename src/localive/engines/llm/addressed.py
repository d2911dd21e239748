"""Proactive audio: should the assistant answer what its microphone just heard?

With `proactivity: {proactiveAudio: true}` Gemini Live may stay silent when what it heard is not meant for it:
background talk, people speaking to each other, or a request outside its instructions. This module decides that
with the session's own small LLM, cheaply enough to run on every finished user turn before answering. It holds
the prompts, the pure builder and the decision rule; the engine supplies log-probabilities (see below).

Method: a noisy-channel comparison of two system prompts, not a yes/no question
-------------------------------------------------------------------------------
Asking Qwen2.5-Coder-0.5B "should the assistant answer? yes or no" does not work: zero- or few-shot (examples from
other roles), chat or code-shaped, two sub-questions or multiple choice, the first-token logit difference barely
separates the classes (ROC AUC at most 0.86 over the two tuning roles; a prompt reaching 0.96 on one role fell to
0.69 on the other), and a grammar-forced answer is "no" to everything. What a small language model does well is
*language modelling*, so the judge asks how likely the heard utterance is as the user's message in two chats that
differ only in their system prompt:

    assistant:  [system: the session's system instruction] + last exchange + [user: <utterance>]
    background: [system: "Transcribe what people say to each other at home."] + [user: <utterance>]

    margin = log P(utterance | assistant) - log P(utterance | background)    (nats, summed over its tokens)
    respond  <=>  margin > THRESHOLD (0: equal prior odds)

A cooking question is far more likely after a cooking assistant's system prompt than as household talk; "Honey,
can you pick up the kids?" is the other way round, and so is "Who won the world cup?" (people ask each other
that; a cooking assistant is rarely asked it). The background also absorbs general requests, so one comparison
handles side talk and off-role requests: adding "You are a helpful assistant.", "a general-purpose voice
assistant" or "people at work" as further background hypotheses changed at most one utterance in 204. Within
every role the margin ranks the utterances almost perfectly (per-role ROC AUC 1.00 with the 0.5B on all nine
roles without history); the errors come from the offset between roles: a broad role ("Spanish tutor ... and
conversation", a children's maths tutor, a bike-repair assistant in a garage, a clinic receptionist among staff)
makes ordinary talk likely too. Anchor-based per-role calibration was tried and did not transfer between roles.

Measured with benchmarks/proactive_judge.py (benchmarks/proactive_set.toml; 24 utterances per role, half to be
answered, "cooking-followups": 12 after one exchange). Cooking and travel chose the method and THRESHOLD; the
other roles were written before they were first run and never used to tune the 0.5B result below (the held-out
sets were added in rounds, 2 roles at a time, each written before the previous results were looked at).

    accuracy (precision / recall of "responds")     0.5B channel        1.5B channel        1.5B yes/no
    tune: cooking + travel (48)                     48/48 100%          47/48  97.9%        46/48  95.8%
    held-out: phone support                         23/24               24/24               24/24
              Spanish tutor                         17/24               22/24               21/24
              fitness coach                         24/24               24/24               22/24
              maths tutor (children)                20/24               24/24               22/24
              cooking follow-ups (history)          10/12               12/12                7/12
              pet care                              23/24               24/24               24/24
              IT helpdesk (office)                  22/24               19/24               20/24
              dental receptionist (office)          21/24               20/24               21/24
              bike repair                           18/24               23/24               24/24
    held-out total (204)                            178 87.3% (.81/.98) 192 94.1% (.90/.99) 185 90.7% (.92/.89)
    latency, prefix cached: median / p90            109 / 133 ms        193 / 200 ms        ~165 ms (~100 ms
                                                                                             with 0.5B, useless)
    (2-core shared CPU, n_threads=2, load 1-2; the 0.5B yes/no judge scores ~52%: "no" to nearly everything.)

So >= 90% on held-out roles needs the 1.5B; the 0.5B is right on every tuning utterance and on most roles, but
lets through ordinary talk for broad roles (its errors are false "respond": recall stays 0.98). The yes/no prompt
(`yes_no_messages`, 1.5B) alone: close on single utterances, poor on follow-ups (7/12); the server combines it
with the channel (below).

Cost: no text is generated. Both hypotheses are scored in one decode of 2 x (utterance tokens + 1) tokens, each
hypothesis' prefix cached in its own KV sequence. In one shared sequence the prefixes are evaluated again every
time (0.5B: ~290 ms, ~460 ms with history). The assistant prefix contains the last exchange, which changes every
turn: judged cold that costs ~210 ms (0.5B) / ~280 ms (1.5B); prefilled right after the answer (while the user
speaks) the judgment is back to ~100 ms / ~140 ms. The session does that (`Scorer.prepare_scoring` once the answer is
generated, for both hypotheses and the yes/no question): with the question, over a conversation that changes
every turn, the 1.5B judges in p50 ~300 ms prepared vs ~460 ms cold.

The server judges with the 1.5B when it is installed (session/proactive.py), and combines the channel
with the yes/no question: on the 1.5B the two make different mistakes (the channel answers side talk about the
role's own topic; the question reads who is addressed). `decide` adds them as

    margin = channel + YES_NO_WEIGHT * (log P(reply starts yes) - log P(reply starts no)),  respond <=> margin > 0

with YES_NO_WEIGHT the ratio of their standard deviations on the tuning sets. Through the server's code path
(benchmarks/proactive.py, one run each): held-out 197/204 (96.6 %) vs 192/204 for the channel alone; fresh, harder
roles written later by someone who saw neither this code nor its results (benchmarks/proactive_set_fresh.toml,
on-topic side talk) 109/120 (90.8 %) vs 100/120 — these were looked at when the combination was chosen; a second
fresh set written blind after the rule was fixed (proactive_set_fresh2.toml) 96/120 (80.0 %) vs 87/120. The
question costs ~180 ms more (p50 ~400 ms with the 1.5B). Numbers and discussion: docs/proactive-audio.md.

On a remote LLM (`serve --llm-url`) the channel cannot be computed: chat completions return no log-probabilities
of the prompt (`Scorer.can_score_continuations` is False), so the backend itself judges with the yes/no question
alone — its first reply token's top logprobs where it returns them, else a constrained answer (yes or no, no
probabilities: `decide` then gets 0 and -inf, and the answer decides). Measured: docs/proactive-audio.md.

How an engine computes the channel: for each hypothesis, render `messages + [ChatMessage("user", SENTINEL)]` with
the model's chat template and cut at SENTINEL (`prompt_prefix`): that is the prefix; the continuation is the
utterance, tokenized without special tokens (the concatenation tokenizes exactly as the full rendering does for
Qwen's template). Decode prefix + utterance with logits for the last prefix token and every utterance token but
the last, and sum log_softmax(logits[i])[token[i + 1]] over the utterance tokens.
"""

from __future__ import annotations

import math
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

# Respond when the margin (see `decide`) exceeds this (nats).
THRESHOLD = 0.0

# How much the yes/no answer (log P(yes) - log P(no), see YES_NO_SYSTEM) counts against the channel margin: the
# ratio of the two margins' standard deviations on the tuning sets (cooking, travel), so each counts about as much.
# Chosen before the second fresh set was first judged; not tuned on any result.
YES_NO_WEIGHT = 5.6

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
    question: tuple[ChatMessage, ...]  # the yes/no question: its answer starts with one of ANSWERS


@dataclass(frozen=True)
class Verdict:
    respond: bool
    margin: float  # channel + YES_NO_WEIGHT * yes_no - THRESHOLD; > 0 means respond
    channel: float | None = 0.0  # log P(u | assistant) - log P(u | background); None: not scored (remote LLM)
    yes_no: float = 0.0  # log P(answer starts "yes") - log P(answer starts "no"); ±inf: a bare answer


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
        question=tuple(yes_no_messages(system_instruction, utterance, history)),
    )


def prompt_prefix(rendered_with_sentinel: str) -> str:
    """The prompt text before the utterance, from a rendering of `hypothesis.messages + [user: SENTINEL]`."""
    prefix, found, _ = rendered_with_sentinel.partition(SENTINEL)
    if not found:
        raise ValueError("the rendered prompt does not contain the sentinel user message")
    return prefix


def decide(logprobs: Mapping[str, float] | None, answers: Sequence[float] | None = None,
           threshold: float = THRESHOLD) -> Verdict:
    """The verdict from each hypothesis' log P(utterance | hypothesis) (summed over the utterance's tokens; None
    where the LLM cannot score continuations: a remote one) and, when given, the log-probabilities of the
    question's answers in ANSWERS order (yes, no). A backend that gives no probabilities answers 0 (certain) for
    its choice and -inf for the other: the answer then decides alone. Answers that are both impossible say
    nothing (0)."""
    channel = logprobs[ASSISTANT] - logprobs[BACKGROUND] if logprobs is not None else None
    yes_no = answers[0] - answers[1] if answers else 0.0
    if math.isnan(yes_no):  # -inf - -inf: neither answer was likely at all
        yes_no = 0.0
    margin = (channel or 0.0) + YES_NO_WEIGHT * yes_no - threshold
    return Verdict(respond=margin > 0, margin=margin, channel=channel, yes_no=yes_no)


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= HISTORY_CHARS else text[: HISTORY_CHARS - 1] + "…"


# --- the yes/no question (combined with the channel judge; alone, for comparison) --------------------------

YES_NO_SYSTEM = (
    "You decide whether a voice assistant should answer what its microphone just heard. "
    "Answer yes only if the speaker is talking to the assistant and asks for something within the assistant's "
    "instructions. Answer no if it is background talk, people talking to each other, or a request outside the "
    "assistant's instructions."
)
# First tokens compared: logsumexp(logits of YES) - logsumexp(logits of NO) > YES_NO_THRESHOLD means respond.
YES = ("yes", "Yes")
NO = ("no", "No")
ANSWERS = (YES, NO)
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
