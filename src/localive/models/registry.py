"""The model registry: which Live model names exist here, what they can do, and which local LLM serves them.

Built-in entries serve the seed's Gemini names (and newer Live names) with the capabilities of the seed's
tool-support table; `localive-emulator` is the scripted model. A TOML file can add or override entries::

    [models."my-live-model"]
    llm = "emulator"                       # or "qwen2.5-coder-0.5b-instruct"
    family = "half-cascade"                # half-cascade | native-audio | emulator
    response_modalities = ["TEXT", "AUDIO"]
    tools = ["functionDeclarations", "googleSearch"]
    thinking = false                       # thinks before answering unless the session turns it off
    affective_dialog = false               # enableAffectiveDialog accepted (default: unless half-cascade)
    proactive_audio = false                # proactivity.proactiveAudio accepted (default: unless half-cascade)
    code_llm = "qwen2.5-coder-1.5b-instruct"  # serves sessions with codeExecution or thinking, when installed
    llm_url = "http://127.0.0.1:8000/v1"   # instead of `llm`: an OpenAI-compatible chat completions server
    llm_model = "Qwen/Qwen2.5-7B-Instruct"  # the model name to ask it for (default: the first it lists)
    llm_tools = "json-schema"              # function calls without the server's `tools` (default: "native")

The built-in names and their capabilities follow Google's model pages (ai.google.dev/gemini-api/docs/models/…,
the Vertex Live API model pages) and the names the SDKs, Google's cookbook and popular Live clients (pipecat,
LiveKit Agents) use by default.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from localive.protocol.errors import NotFound

EMULATOR = "emulator"
QWEN_05B = "qwen2.5-coder-0.5b-instruct"
QWEN_15B = "qwen2.5-coder-1.5b-instruct"
DEFAULT_MODEL = "gemini-2.5-flash-preview-native-audio-dialog"
ALL_TOOLS = frozenset({"functionDeclarations", "codeExecution", "googleSearch", "urlContext"})
FAMILIES = ("half-cascade", "native-audio", "emulator")
# LLM backend keys of OpenAI-compatible servers: remote:<model>@<base URL>[ tools=<mode>] (a URL has no spaces)
REMOTE_PREFIX = "remote:"
# How a remote LLM is asked for function calls (`--llm-tools`, `llm_tools`; engines/llm/openai_chat.py): the
# server's own `tools`, or the functions described in the prompt and calls constrained by a JSON Schema.
TOOL_MODES = ("native", "json-schema")
_TOOLS_SUFFIX = " tools="


def remote_key(url: str, model: str | None, tools: str = "native") -> str:
    """The LLM backend key of a remote server, model and way of calling functions (TOOL_MODES) — the same
    key for the same three."""
    suffix = "" if tools == "native" else f"{_TOOLS_SUFFIX}{tools}"
    return f"{REMOTE_PREFIX}{model or ''}@{url.rstrip('/')}{suffix}"


def split_remote_key(key: str) -> tuple[str, str | None, str]:
    """(base URL, model or None, tool mode) of a remote backend key."""
    model, _, rest = key.removeprefix(REMOTE_PREFIX).partition("@")
    url, _, tools = rest.partition(_TOOLS_SUFFIX)
    return url, model or None, tools or "native"


def is_remote(key: str) -> bool:
    return key.startswith(REMOTE_PREFIX)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    llm: str
    family: str
    response_modalities: frozenset[str]
    tools: frozenset[str]
    thinking: bool = False
    description: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)
    # The LLM for sessions that reason: codeExecution and thinking (used when its weights are installed; else
    # `llm`): the 0.5B model often writes wrong programs, the 1.5B one writes them well, and it answers reasoning
    # questions right with a reasoning pass far more often (docs/thinking.md: 11/12 vs 9/12).
    code_llm: str | None = None
    # Native-audio features, per model: Gemini 2.5 native audio has both; Gemini 3.1 Flash Live has neither yet;
    # Gemini 3.8 Live removed affective dialog and always listens proactively. Half-cascade models have neither.
    affective_dialog: bool = False
    proactive_audio: bool = False


def _half(name: str, desc: str = "") -> ModelEntry:
    return ModelEntry(name, QWEN_05B, "half-cascade", frozenset({"TEXT", "AUDIO"}), ALL_TOOLS, description=desc,
                      code_llm=QWEN_15B)


def _native(name: str, tools: frozenset[str], thinking: bool = False, desc: str = "", *, affective: bool = True,
            proactive: bool = True) -> ModelEntry:
    return ModelEntry(name, QWEN_05B, "native-audio", frozenset({"AUDIO"}), tools, thinking, desc, code_llm=QWEN_15B,
                      affective_dialog=affective, proactive_audio=proactive)


_NATIVE_TOOLS = frozenset({"googleSearch", "functionDeclarations"})

BUILTIN: tuple[ModelEntry, ...] = (
    _native(DEFAULT_MODEL, _NATIVE_TOOLS, desc="the default: native-audio dialog"),
    _native("gemini-2.5-flash-exp-native-audio-thinking-dialog", frozenset({"googleSearch"}), thinking=True,
            desc="native-audio dialog that thinks first"),
    _half("gemini-2.0-flash-live-001", "half-cascade, TEXT or AUDIO, all tools"),
    _half("gemini-2.0-flash-exp"),
    _half("gemini-live-2.5-flash-preview", "half-cascade; the SDKs' docstring example"),
    _half("gemini-live-2.5-flash"),
    _half("gemini-2.0-flash-live-preview-04-09", "half-cascade; the SDKs' Vertex docstring example"),
    _native("gemini-2.5-flash-native-audio-preview-09-2025", _NATIVE_TOOLS),
    _native("gemini-2.5-flash-native-audio-preview-12-2025", _NATIVE_TOOLS,
            desc="the default of pipecat, LiveKit Agents and Google's native-audio cookbook"),
    _native("gemini-2.5-flash-native-audio-latest", _NATIVE_TOOLS,
            desc="alias of the newest 2.5 native-audio preview; Google's WebSocket cookbook default"),
    _native("gemini-live-2.5-flash-preview-native-audio", _NATIVE_TOOLS),
    _native("gemini-live-2.5-flash-preview-native-audio-09-2025", _NATIVE_TOOLS),
    _native("gemini-live-2.5-flash-native-audio", _NATIVE_TOOLS, desc="Vertex; LiveKit's and pipecat's default there"),
    # Gemini 3.1 Flash Live: thinkingLevel (default minimal, so no reasoning pass unless asked); no proactive audio
    # and no affective dialog yet; the SDKs' integration-test model and Google's Get_started_LiveAPI default.
    _native("gemini-3.1-flash-live-preview", _NATIVE_TOOLS, affective=False, proactive=False,
            desc="Gemini 3.1 Flash Live (preview)"),
    # Gemini 3.8 Live: Google's default Live model; answers without a reasoning delay; affective dialog removed,
    # proactive audio always on.
    _native("gemini-3.8-live", _NATIVE_TOOLS, affective=False, desc="Gemini 3.8 Live, Google's default Live model"),
    # Gemini 3.8 Live Extended Thinking: reasons before it speaks (thinkingLevel low/medium/high).
    _native("gemini-3.8-live-extended-thinking", _NATIVE_TOOLS, thinking=True, affective=False,
            desc="Gemini 3.8 Live that thinks before it speaks"),
    ModelEntry("localive-emulator", EMULATOR, "emulator", frozenset({"TEXT", "AUDIO"}), ALL_TOOLS,
               description="scripted, deterministic replies for testing apps", affective_dialog=True,
               proactive_audio=True),
)


class RegistryError(ValueError):
    """The registry file is not valid."""


class ModelRegistry:
    def __init__(self, entries: tuple[ModelEntry, ...] | list[ModelEntry] = BUILTIN) -> None:
        self._entries = {e.name: e for e in entries}

    def __iter__(self):  # type: ignore[no-untyped-def]  # Iterator[ModelEntry]
        return iter(self._entries.values())

    def resolve(self, model: str, api_version: str = "v1beta") -> ModelEntry:
        """Find a model given as ``models/<name>`` or ``<name>``; refuse unknown names as Gemini does."""
        name = model.removeprefix("models/")
        entry = self._entries.get(name)
        if entry is None:
            raise NotFound(
                f"models/{name} is not found for API version {api_version}, or is not supported for "
                "bidiGenerateContent. Call ListModels to see the list of available models."
            )
        return entry

    def with_llm(self, llm: str) -> ModelRegistry:
        """The same names and capabilities, all served by one LLM backend (e.g. the emulator)."""
        return ModelRegistry([replace(e, llm=llm, code_llm=None) for e in self._entries.values()])

    def merged(self, path: Path) -> ModelRegistry:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise RegistryError(f"cannot read model registry {path}: {exc}") from exc
        entries = dict(self._entries)
        for name, spec in (data.get("models") or {}).items():
            entries[name] = _entry_from_toml(name, spec, entries.get(name), str(path))
        return ModelRegistry(list(entries.values()))

    def llm_backends(self) -> set[str]:
        return {e.llm for e in self._entries.values()}

    def code_llm_backends(self) -> set[str]:
        """The LLMs for code execution: loaded when installed, optional."""
        return {e.code_llm for e in self._entries.values() if e.code_llm} - self.llm_backends()


def _entry_from_toml(name: str, spec: object, base: ModelEntry | None, source: str) -> ModelEntry:
    if not isinstance(spec, dict):
        raise RegistryError(f"{source}: models.{name} must be a table")
    unknown = set(spec) - {"llm", "family", "response_modalities", "tools", "thinking", "description", "code_llm",
                           "affective_dialog", "proactive_audio", "llm_url", "llm_model", "llm_tools"}
    if unknown:
        raise RegistryError(f"{source}: models.{name}: unknown keys {sorted(unknown)}")
    family = spec.get("family", base.family if base else "half-cascade")
    if family not in FAMILIES:
        raise RegistryError(f"{source}: models.{name}: family must be one of {FAMILIES}")
    modalities = frozenset(spec.get("response_modalities", base.response_modalities if base else {"TEXT", "AUDIO"}))
    if not modalities or not modalities <= {"TEXT", "AUDIO"}:
        raise RegistryError(f"{source}: models.{name}: response_modalities must be TEXT and/or AUDIO")
    tools = frozenset(spec.get("tools", base.tools if base else ALL_TOOLS))
    if not tools <= ALL_TOOLS:
        raise RegistryError(f"{source}: models.{name}: tools must be among {sorted(ALL_TOOLS)}")
    llm = str(spec.get("llm", base.llm if base else QWEN_05B))
    code_llm = spec.get("code_llm", base.code_llm if base else None)
    for remote_only in ("llm_model", "llm_tools"):
        if remote_only in spec and "llm_url" not in spec:
            raise RegistryError(f"{source}: models.{name}: {remote_only} needs llm_url")
    if "llm_url" in spec:
        url = spec["llm_url"]
        if "llm" in spec or not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise RegistryError(f"{source}: models.{name}: llm_url must be an http(s) URL, instead of llm")
        model = spec.get("llm_model")
        tools_mode = spec.get("llm_tools", "native")
        if tools_mode not in TOOL_MODES:
            raise RegistryError(f"{source}: models.{name}: llm_tools must be one of {TOOL_MODES}")
        llm = remote_key(url, str(model) if model else None, tools_mode)
        code_llm = spec.get("code_llm")  # a remote model serves code and thinking too unless the file says
    # the native-audio features follow the family when the file sets a family, else the entry it overrides
    native = family != "half-cascade"
    inherit = base is not None and "family" not in spec
    return ModelEntry(
        name=name,
        llm=llm,
        family=family,
        response_modalities=modalities,
        tools=tools,
        thinking=bool(spec.get("thinking", base.thinking if base else False)),
        description=str(spec.get("description", base.description if base else "")),
        code_llm=code_llm,
        affective_dialog=bool(spec.get("affective_dialog", base.affective_dialog if base and inherit else native)),
        proactive_audio=bool(spec.get("proactive_audio", base.proactive_audio if base and inherit else native)),
    )
