"""Build the engines behind the built-in tools from the server's settings, and say what is available."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from localive.tools.sandbox import CodeSandbox, PythonSandbox, SandboxLimits, SandboxUnavailable
from localive.tools.search import LocalSearch, SearchProvider, SearxngSearch
from localive.tools.url_context import UrlFetcher, UrlPolicy

log = logging.getLogger("localive.tools")


@dataclass(frozen=True)
class ToolEngines:
    """What the built-in tools run on; a tool whose engine is missing is refused at setup, with the reason."""

    sandbox: CodeSandbox | None = None
    sandbox_problem: str = "code execution is off"
    search: SearchProvider | None = None
    urls: UrlFetcher | None = None


@dataclass(frozen=True)
class ToolSettings:
    code_execution: bool = True
    code_timeout_s: float = 30.0
    search: str = "local"  # local | searxng | off
    search_dir: Path | None = None  # None: the demo corpus
    searxng_url: str | None = None
    url_context: bool = True
    url_allow_private: bool = False
    url_allow: tuple[str, ...] = ()
    url_deny: tuple[str, ...] = ()


def load_tool_engines(settings: ToolSettings) -> tuple[ToolEngines, list[str]]:
    """The tool engines, and one line per tool describing its state (printed at start-up)."""
    lines = []
    sandbox: PythonSandbox | None = None
    problem = "code execution is off (--code-execution off)"
    if settings.code_execution:
        candidate = PythonSandbox(SandboxLimits(wall_s=settings.code_timeout_s))
        try:
            candidate.check()
            sandbox = candidate
        except SandboxUnavailable as exc:
            problem = str(exc)
    lines.append(f"codeExecution: {'bubblewrap sandbox' if sandbox else 'unavailable: ' + problem}")

    search: SearchProvider | None = None
    if settings.search == "searxng":
        if not settings.searxng_url:
            raise ValueError("--search searxng needs --searxng-url")
        search = SearxngSearch(settings.searxng_url)
        lines.append(f"googleSearch: SearXNG at {re.sub(r'//[^/@]*@', '//', settings.searxng_url)}")  # no password
    elif settings.search == "local":
        if settings.search_dir is not None:
            if not settings.search_dir.is_dir():
                raise ValueError(f"--search-dir {settings.search_dir} is not a folder")
            search = LocalSearch(settings.search_dir)
            lines.append(f"googleSearch: local index of {settings.search_dir}")
        else:
            search = LocalSearch.demo()
            lines.append("googleSearch: local index of the demo corpus (--search-dir to use your documents)")
    else:
        lines.append("googleSearch: off")

    urls = None
    if settings.url_context:
        urls = UrlFetcher(UrlPolicy(allow_private=settings.url_allow_private, allow_hosts=settings.url_allow,
                                    deny_hosts=settings.url_deny))
        private = "allowed" if settings.url_allow_private else "refused"
        lines.append(f"urlContext: on (private addresses {private}"
                     + (f", also allowed: {', '.join(settings.url_allow)}" if settings.url_allow else "") + ")")
    else:
        lines.append("urlContext: off")
    return ToolEngines(sandbox=sandbox, sandbox_problem=problem, search=search, urls=urls), lines
