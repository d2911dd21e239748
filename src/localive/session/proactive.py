"""Proactive audio in a session: whether a spoken turn is meant for the model, and the judge's prompts prepared
ahead (the method and its measurements: engines/llm/addressed.py, docs/proactive-audio.md)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from localive.engines.llm.addressed import ANSWERS, SENTINEL, Verdict, decide, judge_prompt
from localive.engines.llm.base import ChatMessage
from localive.engines.llm.scoring import Scorer
from localive.session.history import Entry

log = logging.getLogger(__name__)


def conversation(turns: Sequence[Entry]) -> list[ChatMessage]:
    """The user and model texts of `turns`, as the judge sees the conversation (tool turns left out)."""
    return [ChatMessage("user" if t.role == "user" else "assistant", t.text) for t in turns
            if t.role in ("user", "model")]


async def judge(llm: Scorer, instruction: str | None, utterance: str, earlier: Sequence[ChatMessage], *,
                ask: bool = True) -> Verdict:
    """The verdict on `utterance` after the conversation `earlier`: the channel hypotheses and (`ask`) the yes/no
    question, scored on `llm` (benchmarks/proactive.py measures exactly this). An LLM that cannot score
    continuations (a remote one: chat completions give no prompt log-probabilities) is asked the question alone,
    whatever `ask` says."""
    prompt = judge_prompt(instruction, utterance, earlier)
    channel = None
    if llm.can_score_continuations:
        scores = await llm.continuation_logprobs([list(h.messages) for h in prompt.hypotheses], prompt.utterance)
        channel = {h.name: score for h, score in zip(prompt.hypotheses, scores, strict=True)}
    answers = await llm.reply_start_logprobs(list(prompt.question), ANSWERS) if ask or channel is None else None
    return decide(channel, answers)


class ProactiveJudge:
    """One session's judge, on `llm` (the larger embedded model where installed: the 0.5B lets through ordinary
    talk for broad roles; a remote LLM judges its own sessions). Owns at most one task, the preparation of the
    next judgement."""

    def __init__(self, llm: Scorer, instruction: str | None, session_id: str,
                 start: Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]] | None = None) -> None:
        self.llm = llm
        # how its task is started: in the session's task group (session/tasks.py), else as a plain task
        self._start = start or (lambda work, name: asyncio.create_task(work, name=f"{name}-{session_id}"))
        self.instruction = instruction
        self.session_id = session_id
        self._preparing: asyncio.Task[None] | None = None

    async def addressed(self, history: Sequence[Entry], turn_id: int) -> bool:
        """Is the last turn of `history` (what the user just said) meant for the model?"""
        verdict = await judge(self.llm, self.instruction, history[-1].text, conversation(history[:-1]))
        channel = "-" if verdict.channel is None else f"{verdict.channel:.2f}"  # "-": the yes/no question alone
        log.info("proactive session=%s turn=%d judge=%s respond=%s margin=%.2f channel=%s yes_no=%.2f",
                 self.session_id, turn_id, self.llm.name, verdict.respond, verdict.margin, channel, verdict.yes_no)
        return verdict.respond

    def prepare(self, history: Sequence[Entry]) -> None:
        """Have the prompts of the next judgement (which hold the last exchange of `history`) evaluated now, while
        the user listens, instead of once they have spoken (~0.15 s with the 1.5B). Replaces an earlier one."""
        self.cancel()
        prompt = judge_prompt(self.instruction, SENTINEL, conversation(history))

        async def prepare() -> None:
            try:
                await self.llm.prepare_scoring([list(h.messages) for h in prompt.hypotheses], list(prompt.question))
            except Exception:  # only a speed-up: the judgement itself will report a failing engine
                log.warning("session %s: preparing the proactive judge failed", self.session_id, exc_info=True)

        self._preparing = self._start(prepare(), "judge-prepare")

    def cancel(self) -> asyncio.Task[None] | None:
        """Cancel the preparation in progress; returns its task (to await), or None."""
        task, self._preparing = self._preparing, None
        if task is None or task.done():
            return None
        task.cancel()
        return task
