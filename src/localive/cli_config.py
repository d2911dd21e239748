"""A command's settings from the sources containers use besides flags: `LOCALIVE_*` environment variables and a
TOML file (`--config`). Precedence: command-line flag > environment variable > file > the option's default.

Everything comes from the argparse parser itself (its actions: names, `type`, `choices`, append, booleans), so a
new option is covered without a line here. Secrets — API keys and passwords inside URLs — never come from the file
(it may name key files; the values stay in the environment) and are printed only as `<redacted>`.
docs/configuration.md is the user's side of this module."""

from __future__ import annotations

import argparse
import difflib
import math
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

ENV_PREFIX = "LOCALIVE_"
CONFIG_ENV = "LOCALIVE_CONFIG"
REDACTED = "<redacted>"
# a command's own options that are not settings: the file names no other file; printing is asked by flag only
META_OPTIONS = frozenset({"config", "print_config"})
# options whose values are secrets: from flags and the environment only, never printed
SECRET_OPTIONS = frozenset({"api_key"})
# secrets that only the environment holds (read by server/auth.py, engines/llm/openai_chat.py, speech_remote.py)
ENV_SECRETS = ("LOCALIVE_API_KEYS", "LOCALIVE_LLM_API_KEY", "LOCALIVE_ASR_API_KEY", "LOCALIVE_TTS_API_KEY",
               "LOCALIVE_VISION_API_KEY")
# the other LOCALIVE_* variables, which are not options: no warning for them (config.py, the tests, scripts/test.sh)
OTHER_VARIABLES = frozenset({CONFIG_ENV, *ENV_SECRETS, "LOCALIVE_HOME", "LOCALIVE_CACHE", "LOCALIVE_REQUIRE_NODE",
                             "LOCALIVE_REQUIRE_ENGINES", "LOCALIVE_REQUIRE_BROWSER", "LOCALIVE_FUZZ",
                             "LOCALIVE_FUZZ_EXAMPLES", "LOCALIVE_CHROMIUM", "LOCALIVE_SCREENSHOT_DIR",
                             "LOCALIVE_TEST_SECRET"})
# words in the names of a URL's query parameters that carry credentials (redis-py reads ?password=, some ?api_key=)
_SECRET_QUERY = ("pass", "token", "key", "secret", "auth")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class SettingsError(Exception):
    """A setting that cannot be used; the message names its source (the variable, or the file and its key)."""


@dataclass(frozen=True)
class Option:
    """One option of the command, as the environment and the file name it."""

    action: argparse.Action
    name: str  # the long option without its dashes: "max-sessions"

    @property
    def dest(self) -> str:
        return self.action.dest

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper().replace("-", "_")

    @property
    def secret(self) -> bool:
        return self.dest in SECRET_OPTIONS

    @property
    def url(self) -> bool:
        """A URL that may carry a password (a backend's base URL, a Redis URL)."""
        return self.dest.endswith(("_url", "_redis"))

    @property
    def boolean(self) -> bool:
        action = self.action
        return isinstance(action, argparse.BooleanOptionalAction) or (action.nargs == 0 and
                                                                      isinstance(action.const, bool))

    @property
    def append(self) -> bool:
        return isinstance(self.action, argparse._AppendAction)  # argparse has no public name for it


@dataclass(frozen=True)
class Setting:
    option: Option
    value: object  # as argparse stores it
    source: str  # "flag", "env LOCALIVE_…", "file" or "default"
    given: object  # as the source gave it (shown when the value does not read back as itself)


@dataclass(frozen=True)
class Settings:
    config_file: Path | None
    config_source: str  # "flag", "env LOCALIVE_CONFIG" or "" (none)
    settings: tuple[Setting, ...]
    warnings: tuple[str, ...]


def subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:  # argparse's only way to walk a parser's options
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser = action.choices[name]
            return found
    raise KeyError(name)


def options(parser: argparse.ArgumentParser) -> list[Option]:
    """The parser's settings: every option but help, version and META_OPTIONS."""
    found = []
    for action in parser._actions:
        long = [s for s in action.option_strings if s.startswith("--")]
        if long and action.default is not argparse.SUPPRESS and action.dest not in META_OPTIONS:
            found.append(Option(action, long[0][2:]))
    return found


def resolve(make_parser: Callable[[], argparse.ArgumentParser], command: str, argv: Sequence[str],
            environ: Mapping[str, str], args: argparse.Namespace) -> Settings:
    """Fill `args` (parsed from `argv` by a parser from `make_parser`) from the environment and the config file
    where `argv` did not give an option. Raises SettingsError."""
    opts = options(subcommand(make_parser(), command))
    given = _given(make_parser, command, argv)
    config_source = "flag" if args.config is not None else f"env {CONFIG_ENV}" if environ.get(CONFIG_ENV) else ""
    config = args.config if args.config is not None else Path(environ[CONFIG_ENV]) if config_source else None
    from_file = _read_file(config, opts) if config is not None else {}
    from_env = {o.dest: (_value(o, _env_items(o, environ[o.env]), o.env), environ[o.env])
                for o in opts if environ.get(o.env)}
    settings = []
    for option in opts:
        if option.dest in given:
            setting = Setting(option, getattr(args, option.dest), "flag", given[option.dest])
        elif option.dest in from_env:
            value, text = from_env[option.dest]
            setting = Setting(option, value, f"env {option.env}", text)
        elif option.dest in from_file:
            value, raw = from_file[option.dest]
            setting = Setting(option, value, "file", raw)
        else:
            setting = Setting(option, getattr(args, option.dest), "default", option.action.default)
        setattr(args, option.dest, setting.value)
        settings.append(setting)
    return Settings(config, config_source, tuple(settings), tuple(_unknown_variables(opts, environ)))


def redact_url(url: str) -> str:
    """The URL with its password and credential query values replaced by <redacted> (for printing)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:{REDACTED}@{host}"
    query = "&".join(f"{piece.partition('=')[0]}={REDACTED}" if _secret_parameter(piece) else piece
                     for piece in parts.query.split("&")) if parts.query else ""
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def has_password(url: str) -> bool:
    parts = urlsplit(url)
    return parts.password is not None or any(_secret_parameter(piece) for piece in parts.query.split("&"))


def _secret_parameter(piece: str) -> bool:
    name, _, value = piece.partition("=")
    return bool(value) and any(word in unquote(name).lower() for word in _SECRET_QUERY)


def render(settings: Settings, environ: Mapping[str, str], command: str = "serve") -> str:
    """The effective settings as TOML that --config reads back; secrets commented out and redacted."""
    config = f"{settings.config_file} ({settings.config_source})" if settings.config_file else "none"
    lines = [f"# localive {command}: the effective settings",
             "# precedence: command-line flag > LOCALIVE_* environment variable > --config file > default",
             f"# config file: {config}",
             "# secrets are commented out: give them by flag or environment variable, or name files of keys", ""]
    lines += [_line(setting) for setting in settings.settings]
    lines += ["", "# secrets read from the environment only (never shown):"]
    lines += [f"#   {name}: {'set' if environ.get(name) else 'not set'}" for name in ENV_SECRETS]
    return "\n".join(lines)


def describe(settings: Settings) -> str | None:
    """One line naming the variables and the file that set something (no values), or None."""
    names = [s.source.removeprefix("env ") for s in settings.settings if s.source.startswith("env ")]
    if any(s.source == "file" for s in settings.settings):
        names.append(str(settings.config_file))
    return f"settings from {', '.join(names)} (--print-config shows them)" if names else None


def _given(make_parser: Callable[[], argparse.ArgumentParser], command: str,
           argv: Sequence[str]) -> dict[str, object]:
    """The options that `argv` gives (dest → the strings typed, or the boolean): parsed again with no defaults,
    each option's type wrapped to record what it was handed."""
    parser = make_parser()
    typed: dict[str, list[str]] = {}
    for option in options(subcommand(parser, command)):
        option.action.default = argparse.SUPPRESS
        option.action.type = _Recorder(option.action.type, typed.setdefault(option.dest, []))
    namespace = parser.parse_args(argv)
    given: dict[str, object] = {}
    for dest, value in vars(namespace).items():
        if dest in typed:
            given[dest] = value if not typed[dest] else typed[dest] if isinstance(value, list) else typed[dest][-1]
    return given


class _Recorder:
    def __init__(self, type_: object, sink: list[str]) -> None:
        self.type, self.sink = type_, sink
        self.__name__ = getattr(type_, "__name__", "str")  # argparse names the type in its errors

    def __call__(self, text: str) -> object:
        self.sink.append(text)
        return self.type(text) if callable(self.type) else text


def _env_items(option: Option, text: str) -> object:
    """An environment variable's text as the file would give it: append options take commas."""
    if option.append:
        return [item.strip() for item in text.split(",") if item.strip()]
    return text


def _read_file(path: Path, opts: list[Option]) -> dict[str, tuple[object, object]]:
    """The file's settings: dest → (value, as written). Unknown keys and secrets are errors."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"--config {path}: cannot read it ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"--config {path}: not valid TOML ({exc})") from None
    by_name = {o.name: o for o in opts}
    found: dict[str, tuple[object, object]] = {}
    for key, raw in data.items():
        where = f"{path}: {key}"
        option = by_name.get(key.replace("_", "-"))
        if option is None:
            close = difflib.get_close_matches(key.replace("_", "-"), by_name, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise SettingsError(f"{where}: not a setting of this command{hint}")
        if option.dest in found:
            raise SettingsError(f"{where}: {option.name} is set twice")
        if option.secret:
            raise SettingsError(f"{where}: a secret, never read from the config file: give it in the environment "
                                f"({option.env}, LOCALIVE_API_KEYS) or name files of keys with api-keys-file")
        items = raw if isinstance(raw, list) else [raw]
        if option.url and any(isinstance(item, str) and has_password(item) for item in items):
            raise SettingsError(f"{where}: the URL holds a password, never read from the config file: give the URL "
                                f"in the environment ({option.env}) or by flag")
        found[option.dest] = (_value(option, raw, where, base=path.parent), raw)
    return found


def _value(option: Option, raw: object, where: str, base: Path | None = None) -> object:
    """A value from the environment or the file as argparse would store it; paths in the file are relative to it."""
    action = option.action
    if option.boolean:
        flag = _boolean(raw, where)
        if isinstance(action, argparse.BooleanOptionalAction):
            return flag
        return action.const if flag else action.default
    if option.append:
        items = raw if isinstance(raw, list) else [raw]
        return [_scalar(option, item, where, base) for item in items]
    return _scalar(option, raw, where, base)


def _boolean(raw: object, where: str) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
        return raw.strip().lower() in _TRUE
    raise SettingsError(f"{where}: expected a boolean (true/false, 1/0, on/off), not {raw!r}")


def _scalar(option: Option, raw: object, where: str, base: Path | None) -> object:
    action = option.action
    on_off = action.choices is not None and set(action.choices) == {"on", "off"}
    if on_off and (isinstance(raw, bool) or (isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE)):
        raw = "on" if _boolean(raw, where) else "off"
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise SettingsError(f"{where}: expected a string or a number, not {type(raw).__name__} {raw!r}")
    text = str(raw)
    shown = REDACTED if option.secret or option.url else repr(text)
    try:
        value = action.type(text) if callable(action.type) else text
    except argparse.ArgumentTypeError as exc:
        raise SettingsError(f"{where}: {exc}") from None
    except (TypeError, ValueError):
        name = getattr(action.type, "__name__", "value")
        raise SettingsError(f"{where}: invalid {name} value: {shown}") from None
    if action.choices is not None and value not in action.choices:
        raise SettingsError(f"{where}: {shown} is not one of {', '.join(map(str, action.choices))}")
    if base is not None and isinstance(value, Path) and not value.is_absolute():
        value = base / value
    return value


def _unknown_variables(opts: list[Option], environ: Mapping[str, str]) -> list[str]:
    known = {o.env for o in opts}
    warnings = []
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in known and name not in OTHER_VARIABLES:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            warnings.append(f"{name} is not a setting of this command, ignored{hint}")
    return warnings


def _line(setting: Setting) -> str:
    option, value, source = setting.option, setting.value, setting.source
    if option.secret:
        count = len(value) if isinstance(value, list) else int(value is not None)
        shown = f"{REDACTED} ({count} given)" if count else "(none)"
        return f"# {option.name} = {shown}  # {source}; a secret: only by flag or {option.env}"
    if value is None:
        return f"# {option.name} = (not set)  # {source}"
    if option.url and isinstance(value, str) and has_password(value):
        return (f"# {option.name} = {_toml(redact_url(value))}  # {source}; holds a password: only by flag or "
                f"{option.env}")
    return f"{option.name} = {_readable(setting)}  # {source}"


def _readable(setting: Setting) -> str:
    """The value as TOML that reads back as the same value; else what the source gave."""
    expected = _absolute(setting.value)
    candidate = _plain(expected)
    try:
        if _value(setting.option, candidate, "") == expected:
            return _toml(candidate)
    except SettingsError:
        pass
    return _toml(_plain(setting.given))


def _absolute(value: object) -> object:
    if isinstance(value, list):
        return [_absolute(item) for item in value]
    return Path.cwd() / value if isinstance(value, Path) and not value.is_absolute() else value


def _plain(value: object) -> object:
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return str(value) if isinstance(value, Path) else value


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return ("nan" if math.isnan(value) else "inf" if value > 0 else "-inf") if not math.isfinite(value) \
            else repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    text = str(value)
    escaped = "".join("\\" + c if c in '"\\' else f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c
                      for c in text)
    return f'"{escaped}"'
