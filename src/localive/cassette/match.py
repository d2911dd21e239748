"""Whether a client's message is the one a cassette recorded, and if not, where they first differ.

The two are compared field by field. Text (a `text` field anywhere) is compared by the text rule:
``exact`` (default), ``casefold`` (case and runs of whitespace ignored), ``any`` (any text). Audio (an inline blob
whose mimeType is audio/…) by the audio rule: ``hash`` (default: the same bytes; a cassette recorded with
--no-audio holds their SHA-256), ``length`` (the same number of bytes), ``any``. Everything else must be equal.
A recorded event may carry its own rules, ``"match": {"text": "any"}`` or ``{"text": {"regex": "…"}}`` (the whole
text must match it) and ``{"audio": "length"}``, which win over the server's (`localive serve --replay-text
--replay-audio`).

`first_difference` returns None for a match, else one line naming the first field that differs and both values,
shortened: it is both the close reason's substance and the developer's report.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Literal

from localive.cassette.redact import decoded, is_audio_blob

TextRule = Literal["exact", "casefold", "any"]
AudioRule = Literal["hash", "length", "any"]
TEXT_RULES: tuple[TextRule, ...] = ("exact", "casefold", "any")
AUDIO_RULES: tuple[AudioRule, ...] = ("hash", "length", "any")
SHOWN_CHARS = 40  # of a value, in a report
MAX_REGEX_CHARS = 1000
MAX_DEPTH = 64


@dataclass(frozen=True)
class MatchRules:
    text: TextRule = "exact"
    audio: AudioRule = "hash"
    text_regex: re.Pattern[str] | None = None

    def overridden(self, match: dict[str, Any] | None) -> MatchRules:
        """These rules with a recorded event's own `match` applied (ValueError: a bad one)."""
        if not match:
            return self
        rules = self
        if unknown := set(match) - {"text", "audio"}:
            raise ValueError(f"unknown match keys {sorted(unknown)}; expected text, audio")
        text = match.get("text")
        if isinstance(text, dict) and isinstance(text.get("regex"), str) and len(text["regex"]) <= MAX_REGEX_CHARS:
            try:
                rules = MatchRules(rules.text, rules.audio, re.compile(text["regex"], re.DOTALL))
            except re.error as exc:
                raise ValueError(f"bad match regex: {exc}") from exc
        elif text is not None:
            if text not in TEXT_RULES:
                raise ValueError(f"match.text must be one of {', '.join(TEXT_RULES)} or {{\"regex\": …}}")
            rules = MatchRules(text, rules.audio)
        audio = match.get("audio")
        if audio is not None:
            if audio not in AUDIO_RULES:
                raise ValueError(f"match.audio must be one of {', '.join(AUDIO_RULES)}")
            rules = MatchRules(rules.text, audio, rules.text_regex)
        return rules


def first_difference(got: Any, recorded: Any, rules: MatchRules, path: str = "") -> str | None:
    """None if `got` matches `recorded` under `rules`, else where and how they first differ."""
    return _diff(got, recorded, rules, path, 0)


def _diff(got: Any, recorded: Any, rules: MatchRules, path: str, depth: int) -> str | None:
    if depth > MAX_DEPTH:
        return f"{path or 'the message'}: nested too deeply to compare"
    if is_audio_blob(recorded) and isinstance(got, dict):
        return _audio_diff(got, recorded, rules, path)
    if isinstance(recorded, dict) and isinstance(got, dict):
        for key in [*recorded, *(k for k in got if k not in recorded)]:
            where = f"{path}.{key}" if path else key
            if key not in got:
                return f"{where} is missing (recorded {shown(recorded[key])})"
            if key not in recorded:
                return f"{where} was not recorded (got {shown(got[key])})"
            if key == "text" and isinstance(got[key], str) and isinstance(recorded[key], str):
                if not _text_matches(got[key], recorded[key], rules):
                    return f"{where}: got {shown(got[key])}, recorded {shown(recorded[key])}"
                continue
            if (found := _diff(got[key], recorded[key], rules, where, depth + 1)) is not None:
                return found
        return None
    if isinstance(recorded, list) and isinstance(got, list):
        for i, (mine, theirs) in enumerate(zip(got, recorded, strict=False)):
            if (found := _diff(mine, theirs, rules, f"{path}[{i}]", depth + 1)) is not None:
                return found
        if len(got) != len(recorded):
            return f"{path or 'the message'}: {len(got)} items, recorded {len(recorded)}"
        return None
    if (type(got) is not type(recorded) and not (_number(got) and _number(recorded))) or got != recorded:
        return f"{path or 'the message'}: got {shown(got)}, recorded {shown(recorded)}"
    return None


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text_matches(got: str, recorded: str, rules: MatchRules) -> bool:
    if rules.text_regex is not None:
        return rules.text_regex.fullmatch(got) is not None
    if rules.text == "any":
        return True
    if rules.text == "casefold":
        return " ".join(got.split()).casefold() == " ".join(recorded.split()).casefold()
    return got == recorded


def _audio_diff(got: dict[str, Any], recorded: dict[str, Any], rules: MatchRules, path: str) -> str | None:
    where = path or "audio"
    if got.get("mimeType") != recorded.get("mimeType"):
        return f"{where}.mimeType: got {shown(got.get('mimeType'))}, recorded {shown(recorded.get('mimeType'))}"
    if rules.audio == "any":
        return None
    data = decoded(got)
    if data is None:
        return f"{where}.data: not base64 audio"
    theirs = decoded(recorded)
    size = len(theirs) if theirs is not None else recorded.get("bytes")
    if len(data) != size:
        return f"{where}: {len(data)} bytes of audio, recorded {size}"
    if rules.audio == "length":
        return None
    digest = hashlib.sha256(theirs).hexdigest() if theirs is not None else recorded.get("sha256")
    if hashlib.sha256(data).hexdigest() != digest:
        return f"{where}: {len(data)} bytes of other audio than recorded (their SHA-256 differs)"
    return None


def shown(value: Any) -> str:
    """A value as a report shows it: JSON-ish, cut to SHOWN_CHARS."""
    text = repr(value) if not isinstance(value, str) else '"' + value + '"'
    if isinstance(value, dict | list):
        text = {dict: "an object", list: "a list"}[type(value)] + f" of {len(value)}"
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 1] + "…"
