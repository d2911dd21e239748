"""The deterministic emulator model: scripted replies for testing Live API apps in CI.

A script is a TOML file::

    default = "You said: {input}"     # reply when no rule matches ({input} = the user's last message)
    delay_ms = 0                       # pause between streamed words, to exercise interruption
    context_tokens = 32768             # the emulated context window (words and punctuation count as tokens)
    [[reply]]
    match = "weather"                  # a regular expression, case-insensitive, searched in the last user message
    # in texts: {input} = the user's last message, {turn} = how many user messages the conversation holds
    text = "It is always sunny in the emulator."
    delay_ms = 50                      # optional: this reply's own pace

Rules are tried in order; the first match wins. Replies stream word by word, exactly as written. The pauses
(``delay_ms``) are sleeps on the emulator's `Clock` (localive/clock.py): give it a `VirtualClock` in tests.
With `--voice emulator`, [[hear]] rules in the same file say what the emulator hears (engines/asr/emulator.py).

A `[faults]` table in the same file makes the server misbehave on demand, as the real service does (read by
protocol/faults.py, applied by the server; docs/testing.md, "Faults on demand")::

    [faults]
    goaway_after_s = 2                 # goAway 2 s into each connection, then 1011 "Deadline expired…" 1 s later
    silent_after_turns = 3             # after 3 turnCompletes the server sends nothing (the socket stays open)
    transcript_delay_ms = 800          # transcriptions arrive late, after the audio they belong to
    audio_pace = 0.5                   # output audio at half real-time speed (or audio_burst_ms = 1000)
    close_after_tool_call_ms = 0       # 1011 "Internal error encountered." right after a toolCall
    setup_error = { code = 1011, reason = "The service is currently unavailable.", count = 1 }

Tools: a rule may call a function (when the session declares it) or run code (when code execution is on)::

    [[reply]]
    match = "lights"
    call = "turn_on_the_lights"            # the model calls this function…
    args = { room = "kitchen" }            # …with these arguments
    text = "Done: {result}"                # said once the function's response is in ({result} = its JSON)
    pending = "I have started that."       # said right after a NON_BLOCKING call, while it runs

    [[reply]]
    match = "primes"
    code = "print(sum([2, 3, 5]))"         # written as a ```python block; the session runs it
    text = "The sum is {result}."          # {result} = the code's output
"""

from __future__ import annotations

import asyncio
import math
import re
import tomllib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localive.clock import SYSTEM_CLOCK, Clock
from localive.engines.llm.base import (
    PENDING_RESULT,
    RESULT_NUDGE,
    CalledFunction,
    ChatMessage,
    FunctionCalls,
    FunctionSpec,
    SamplingParams,
)

ECHO = "You said: {input}"
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_WORD = re.compile(r"\S+\s*|\s+")
_LONG_WORD = re.compile(r"[^\W\d_]{4,}")


class ScriptError(ValueError):
    """The emulator script file is not valid."""


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern[str]
    text: str
    delay_ms: float | None = None  # overrides the script's delay_ms for this reply
    call: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    code: str | None = None
    pending: str = ""

    def answer(self, user_text: str, result: str | None) -> str:
        text = self.text.replace("{input}", user_text)
        return text if result is None else text.replace("{result}", result)


@dataclass(frozen=True)
class EmulatorScript:
    default: str = ECHO
    delay_ms: float = 0.0
    rules: tuple[Rule, ...] = field(default_factory=tuple)
    context_tokens: int = 32768  # the emulated context window (its tokens: words and punctuation)

    @classmethod
    def load(cls, path: Path) -> EmulatorScript:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ScriptError(f"cannot read emulator script {path}: {exc}") from exc
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, object], source: str = "script") -> EmulatorScript:
        # [[hear]]: what --voice emulator hears (engines/asr/emulator.py reads it); [faults]: the server's
        # misbehaviour on demand (protocol/faults.py reads it)
        unknown = set(data) - {"default", "delay_ms", "reply", "context_tokens", "hear", "faults"}
        if unknown:
            raise ScriptError(f"{source}: unknown keys {sorted(unknown)}; expected default, delay_ms, "
                              "context_tokens, [[reply]], [[hear]], [faults]")
        rules = []
        replies = data.get("reply", [])
        if not isinstance(replies, list):
            raise ScriptError(f"{source}: 'reply' must be an array of tables ([[reply]])")
        for i, item in enumerate(replies):
            rules.append(_rule(item, f"{source}: reply #{i + 1}"))
        default = data.get("default", ECHO)
        delay = data.get("delay_ms", 0)
        if not isinstance(default, str) or not isinstance(delay, int | float) or delay < 0:
            raise ScriptError(f"{source}: 'default' must be a string and 'delay_ms' a number >= 0")
        context = data.get("context_tokens", 32768)
        if not isinstance(context, int) or context < 64:
            raise ScriptError(f"{source}: 'context_tokens' must be an integer >= 64")
        return cls(default=default, delay_ms=float(delay), rules=tuple(rules), context_tokens=context)

    def rule_for(self, user_text: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.pattern.search(user_text)), None)

    def reply_to(self, user_text: str) -> tuple[str, float]:
        """The reply text and the pause between its words, in milliseconds."""
        rule = self.rule_for(user_text)
        if rule is None:
            return self.default.replace("{input}", user_text), self.delay_ms
        return rule.answer(user_text, None), self.delay_ms if rule.delay_ms is None else rule.delay_ms


_RULE_KEYS = {"match", "text", "delay_ms", "call", "args", "code", "pending"}


def _rule(item: object, where: str) -> Rule:
    if not isinstance(item, dict) or not isinstance(item.get("match"), str) or not isinstance(item.get("text"), str):
        raise ScriptError(f"{where} needs string 'match' and 'text'")
    if unknown := set(item) - _RULE_KEYS:
        raise ScriptError(f"{where}: unknown keys {sorted(unknown)}")
    delay = item.get("delay_ms")
    if delay is not None and (not isinstance(delay, int | float) or delay < 0):
        raise ScriptError(f"{where}: 'delay_ms' must be a number >= 0")
    for key in ("call", "code", "pending"):
        if key in item and not isinstance(item[key], str):
            raise ScriptError(f"{where}: '{key}' must be a string")
    if not isinstance(item.get("args", {}), dict):
        raise ScriptError(f"{where}: 'args' must be a table")
    try:
        pattern = re.compile(item["match"], re.IGNORECASE)
    except re.error as exc:
        raise ScriptError(f"{where}: bad regular expression: {exc}") from exc
    return Rule(pattern, item["text"], None if delay is None else float(delay), item.get("call"),
                dict(item.get("args", {})), item.get("code"), item.get("pending", ""))


class EmulatorLLM:
    """Implements the LLM interface with scripted, deterministic replies."""

    def __init__(self, script: EmulatorScript | None = None, name: str = "emulator", *,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.script = script or EmulatorScript()
        self.clock = clock
        self.name = name
        self.context_tokens = self.script.context_tokens
        self.can_score_continuations = True

    def count_tokens(self, text: str) -> int:
        return len(_TOKEN.findall(text))

    def count_prompt_tokens(self, messages: list[ChatMessage], functions: Sequence[FunctionSpec] = ()) -> int:
        calls = sum(self.count_tokens(c.name) + self.count_tokens(c.args_json()) for m in messages for c in m.calls)
        declared = sum(self.count_tokens(f.name + " " + f.description) for f in functions)
        return sum(self.count_tokens(m.text) + 4 for m in messages) + calls + declared

    async def continuation_logprobs(self, chats: Sequence[list[ChatMessage]], text: str) -> list[float]:
        """A deterministic stand-in for a language model's likelihood: minus the number of the text's words (of
        four letters or more) that the chat never uses. So with proactive audio the emulator answers what
        shares words with its instructions or the conversation, and stays silent for what shares more with
        household talk."""
        scores = []
        for chat in chats:
            known = {w.lower() for m in chat for w in _LONG_WORD.findall(m.text)}
            scores.append(-float(sum(1 for w in _LONG_WORD.findall(text) if w.lower() not in known)))
        return scores

    async def reply_start_logprobs(self, chat: list[ChatMessage], starts: Sequence[Sequence[str]]) -> list[float]:
        """The emulator has no opinion on how a reply starts: every group is equally likely, so a judgement
        that combines this with `continuation_logprobs` rests on the latter alone."""
        return [-math.log(len(starts))] * len(starts) if starts else []

    async def prepare_scoring(self, chats: Sequence[list[ChatMessage]],
                              question: list[ChatMessage] | None = None) -> None:
        """Nothing to evaluate ahead: the stand-in scores cost nothing."""

    async def stream(self, messages: list[ChatMessage], params: SamplingParams,
                     functions: Sequence[FunctionSpec] = ()) -> AsyncIterator[str | FunctionCalls]:
        messages = [m for m in messages if not (m.role == "user" and m.text == RESULT_NUDGE)]
        last_user = next((m.text for m in reversed(messages) if m.role == "user"), "").strip()
        reply, delay_ms = self.script.reply_to(last_user)
        rule = self.script.rule_for(last_user)
        last = messages[-1] if messages else None
        if last is not None and last.role == "tool":  # a function's (or the code's) result came back
            by_name = next((r for r in self.script.rules if r.call and r.call == last.name), None)
            rule = by_name or rule
            if last.text == PENDING_RESULT:
                reply = rule.pending if rule else ""
            elif rule is not None:
                reply = rule.answer(last_user, last.text.strip())
        elif rule is not None and rule.call:  # a rule for a function call: without the function, the default
            if rule.call not in {f.name for f in functions}:
                reply = self.script.default.replace("{input}", last_user)
            else:
                await self.clock.sleep(delay_ms / 1000)
                yield FunctionCalls((CalledFunction(rule.call, dict(rule.args)),))
                return
        elif rule is not None and rule.code and "```python" in (messages[0].text if messages else ""):
            reply = f"```python\n{rule.code}\n```\n"
        reply = reply.replace("{turn}", str(sum(1 for m in messages if m.role == "user")))
        async for piece in self._words(reply, delay_ms, params):
            yield piece

    async def _words(self, reply: str, delay_ms: float, params: SamplingParams) -> AsyncIterator[str]:
        budget = params.max_output_tokens
        for piece in _WORD.findall(reply):
            if budget is not None:
                budget -= self.count_tokens(piece)
                if budget < 0:
                    return
            if delay_ms:
                await self.clock.sleep(delay_ms / 1000)
            else:
                await asyncio.sleep(0)  # yield to the loop between words, like a real stream
            yield piece
