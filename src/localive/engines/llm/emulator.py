"""The deterministic emulator model: scripted replies for testing Live API apps in CI.

A script is a TOML file::

    default = "You said: {input}"     # reply when no rule matches ({input} = the user's last message)
    delay_ms = 0                       # pause between streamed words, to exercise interruption
    [[reply]]
    match = "weather"                  # a regular expression, case-insensitive, searched in the last user message
    text = "It is always sunny in the emulator."
    delay_ms = 50                      # optional: this reply's own pace

Rules are tried in order; the first match wins. Replies stream word by word, exactly as written.
"""

from __future__ import annotations

import asyncio
import re
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from localive.engines.llm.base import ChatMessage, SamplingParams

ECHO = "You said: {input}"
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_WORD = re.compile(r"\S+\s*|\s+")


class ScriptError(ValueError):
    """The emulator script file is not valid."""


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern[str]
    text: str
    delay_ms: float | None = None  # overrides the script's delay_ms for this reply


@dataclass(frozen=True)
class EmulatorScript:
    default: str = ECHO
    delay_ms: float = 0.0
    rules: tuple[Rule, ...] = field(default_factory=tuple)

    @classmethod
    def load(cls, path: Path) -> EmulatorScript:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ScriptError(f"cannot read emulator script {path}: {exc}") from exc
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, object], source: str = "script") -> EmulatorScript:
        unknown = set(data) - {"default", "delay_ms", "reply"}
        if unknown:
            raise ScriptError(f"{source}: unknown keys {sorted(unknown)}; expected default, delay_ms, [[reply]]")
        rules = []
        replies = data.get("reply", [])
        if not isinstance(replies, list):
            raise ScriptError(f"{source}: 'reply' must be an array of tables ([[reply]])")
        for i, item in enumerate(replies):
            if not isinstance(item, dict) or not isinstance(item.get("match"), str) or not isinstance(
                item.get("text"), str
            ):
                raise ScriptError(f"{source}: reply #{i + 1} needs string 'match' and 'text'")
            try:
                rule_delay = item.get("delay_ms")
                if rule_delay is not None and (not isinstance(rule_delay, int | float) or rule_delay < 0):
                    raise ScriptError(f"{source}: reply #{i + 1}: 'delay_ms' must be a number >= 0")
                rules.append(Rule(re.compile(item["match"], re.IGNORECASE), item["text"],
                                  None if rule_delay is None else float(rule_delay)))
            except re.error as exc:
                raise ScriptError(f"{source}: reply #{i + 1}: bad regular expression: {exc}") from exc
        default = data.get("default", ECHO)
        delay = data.get("delay_ms", 0)
        if not isinstance(default, str) or not isinstance(delay, int | float) or delay < 0:
            raise ScriptError(f"{source}: 'default' must be a string and 'delay_ms' a number >= 0")
        return cls(default=default, delay_ms=float(delay), rules=tuple(rules))

    def reply_to(self, user_text: str) -> tuple[str, float]:
        """The reply text and the pause between its words, in milliseconds."""
        for rule in self.rules:
            if rule.pattern.search(user_text):
                delay = self.delay_ms if rule.delay_ms is None else rule.delay_ms
                return rule.text.replace("{input}", user_text), delay
        return self.default.replace("{input}", user_text), self.delay_ms


class EmulatorLLM:
    """Implements the LLM interface with scripted, deterministic replies."""

    def __init__(self, script: EmulatorScript | None = None, name: str = "emulator") -> None:
        self.script = script or EmulatorScript()
        self.name = name

    def count_tokens(self, text: str) -> int:
        return len(_TOKEN.findall(text))

    def count_prompt_tokens(self, messages: list[ChatMessage]) -> int:
        return sum(self.count_tokens(m.text) + 4 for m in messages)

    async def stream(self, messages: list[ChatMessage], params: SamplingParams) -> AsyncIterator[str]:
        last_user = next((m.text for m in reversed(messages) if m.role == "user"), "")
        reply, delay_ms = self.script.reply_to(last_user.strip())
        budget = params.max_output_tokens
        for piece in _WORD.findall(reply):
            if budget is not None:
                budget -= self.count_tokens(piece)
                if budget < 0:
                    return
            if delay_ms:
                await asyncio.sleep(delay_ms / 1000)
            else:
                await asyncio.sleep(0)  # yield to the loop between words, like a real stream
            yield piece
