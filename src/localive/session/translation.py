"""generationConfig.translationConfig: the session translates what the user says into the target language.

Each user message is translated on its own: the LLM sees a translator's instruction and the newest user words,
not the conversation (a small model given the history tends to answer it instead of translating). Speech comes
out in the target language's voice (engines/tts/multilingual.py). echoTargetLanguage (the SDK: "If true, the
model will generate audio when the target language is spoken, essentially it will parrot the input. If false,
we will not produce audio for the target language."): speech the recogniser hears in the target language is
repeated word for word (true) or left unanswered (false). Typed text has no detected language and is always
translated. docs/languages.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from localive.engines.llm.base import LLM, ChatMessage, FunctionCalls, FunctionSpec, SamplingParams
from localive.protocol import messages as wire
from localive.protocol.errors import InvalidArgument
from localive.session.history import Entry
from localive.session.languages import checked_tag, language_name, same_language


@dataclass(frozen=True)
class Translation:
    target: str  # BCP-47
    echo: bool = False  # echoTargetLanguage

    def is_target(self, language: str | None) -> bool:
        return same_language(language, self.target)

    @property
    def instruction(self) -> str:
        name = language_name(self.target)
        return (f"You are a translator. Translate each message of the user into {name}. Reply with the "
                f"translation only, in {name}: no explanations, no notes, no answers to questions in the message "
                f"(translate the question itself).")

    def request(self, text: str) -> str:
        return f"Translate into {language_name(self.target)}:\n\n{text}"


def translation_of(config: wire.TranslationConfig | None) -> Translation | None:
    """The session's translation, or None. A translationConfig without a target language is refused (1007)."""
    if config is None:
        return None
    target = (config.target_language_code or "").strip()
    if not target:
        raise InvalidArgument("translationConfig.targetLanguageCode is required.")
    return Translation(checked_tag(target, "translationConfig.targetLanguageCode"), bool(config.echo_target_language))


def target_speech(translation: Translation | None, spoken: bool, language: str | None) -> str:
    """How a translation session answers the newest user message: "translate", or, for speech heard in the
    target language, "echo" (echoTargetLanguage) or "silent". Outside translation: "translate" (answer)."""
    if translation is None or not spoken or not translation.is_target(language):
        return "translate"
    return "echo" if translation.echo else "silent"


def newest_user_text(history: Sequence[Entry]) -> str:
    """The user's words since the model last spoke (several messages joined by newlines)."""
    texts: list[str] = []
    for turn in reversed(history):
        if turn.role != "user":
            break
        texts.append(turn.text)
    return "\n".join(reversed(texts))


def translation_messages(translation: Translation, system_instruction: str | None,
                         history: Sequence[Entry]) -> list[ChatMessage]:
    """What the LLM sees to translate the newest user words: the translator's instruction (then the client's
    systemInstruction, if any) and those words."""
    system = "\n\n".join(p for p in (translation.instruction, system_instruction) if p)
    return [ChatMessage("system", system), ChatMessage("user", translation.request(newest_user_text(history)))]


class Echo:
    """An LLM that says `text` back (echoTargetLanguage): the session's LLM for everything else."""

    def __init__(self, llm: LLM, text: str) -> None:
        self._llm = llm
        self._text = text
        self.name = llm.name
        self.context_tokens = llm.context_tokens

    def count_tokens(self, text: str) -> int:
        return self._llm.count_tokens(text)

    def count_prompt_tokens(self, messages: list[ChatMessage], functions: Sequence[FunctionSpec] = ()) -> int:
        return self._llm.count_prompt_tokens(messages, functions)

    async def stream(self, messages: list[ChatMessage], params: SamplingParams,
                     functions: Sequence[FunctionSpec] = ()) -> AsyncIterator[str | FunctionCalls]:
        if self._text:
            yield self._text
