"""What a model turn reads besides the conversation: search results and fetched pages (googleSearch, urlContext),
and the session's language.

Search results and pages are given to the model for the turn that asked for them, in the system prompt, and not
kept in history.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from localive.engines.tts.base import is_english
from localive.session.languages import language_name
from localive.tools.search import SearchHit
from localive.tools.url_context import FetchedPage

SUCCESS = "URL_RETRIEVAL_STATUS_SUCCESS"


def language_instruction(language: str | None) -> str:
    """For the system prompt of a session in another language than English (speechConfig.languageCode): answer
    in it. "" for English or no language (the models' own default)."""
    if is_english(language):
        return ""
    assert language is not None
    name = language_name(language)
    return f"The conversation is in {name}. Always answer in {name}, even when the user writes in another language."


@dataclass
class TurnContext:
    query: str
    hits: list[SearchHit] = field(default_factory=list)
    pages: list[FetchedPage] = field(default_factory=list)
    visual: str = ""  # what the latest video frame shows

    def add_hits(self, hits: list[SearchHit]) -> None:
        self.hits.extend(hits)

    def add_pages(self, pages: list[FetchedPage]) -> None:
        self.pages.extend(pages)

    @property
    def prompt(self) -> str:
        sections = [self.visual] if self.visual else []
        read = [p for p in self.pages if p.status == SUCCESS and p.text]
        if read:
            sections.append("The user's links were fetched. Use their content to answer:\n\n" + "\n\n".join(
                f"<page url=\"{p.url}\" title=\"{p.title}\">\n{p.text}\n</page>" for p in read))
        failed = [p.url for p in self.pages if p.status != SUCCESS]
        if failed:
            sections.append("These links could not be read: " + ", ".join(failed))
        if self.hits:
            sections.append("Search results for the user's question. Answer from them:\n\n" + "\n\n".join(
                f"[{i + 1}] {h.title} ({h.uri})\n{h.text}" for i, h in enumerate(self.hits)))
        return "\n\n".join(sections)
