"""`localive serve`'s settings from flags, LOCALIVE_* variables and a TOML file (localive/cli_config.py): the
precedence, the conversions argparse would make, errors that name their source, secrets kept out of the file and
out of --print-config. No server starts: --print-config exits before anything is loaded."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from localive.cli import build_parser, main
from localive.cli_config import (
    ENV_SECRETS,
    OTHER_VARIABLES,
    SettingsError,
    describe,
    options,
    resolve,
    subcommand,
)
from localive.engines.llm.openai_chat import API_KEY_ENV
from localive.engines.speech_remote import ASR_KEY_ENV, TTS_KEY_ENV, VISION_KEY_ENV

REPO = Path(__file__).resolve().parents[2]


def settle(argv: list[str], env: dict[str, str] | None = None, toml: str | None = None,
           tmp_path: Path | None = None) -> argparse.Namespace:
    """Parse `serve argv` and apply `env` and a config file holding `toml`, as `main` does."""
    argv = ["serve", *argv]
    if toml is not None:
        assert tmp_path is not None
        (tmp_path / "localive.toml").write_text(toml)
        argv += ["--config", str(tmp_path / "localive.toml")]
    args = build_parser().parse_args(argv)
    resolve(build_parser, "serve", argv, env or {}, args)
    return args


def test_a_flag_wins_over_the_environment_which_wins_over_the_file_which_wins_over_the_default(tmp_path: Path) -> None:
    toml = "max-sessions = 5\nport = 9100\nhost = \"0.0.0.0\"\n"
    env = {"LOCALIVE_MAX_SESSIONS": "7", "LOCALIVE_PORT": "9200"}
    args = settle(["--max-sessions", "9"], env, toml, tmp_path)
    assert (args.max_sessions, args.port, args.host, args.log_level) == (9, 9200, "0.0.0.0", "info")
    args = settle([], {}, toml, tmp_path)
    assert (args.max_sessions, args.port, args.host) == (5, 9100, "0.0.0.0")
    # a flag however argparse takes it: abbreviated, with =, negated
    args = settle(["--max-message", "2048", "--port=9300", "--no-work-ahead"],
                  {**env, "LOCALIVE_WORK_AHEAD": "1", "LOCALIVE_MAX_MESSAGE_BYTES": "4096"})
    assert (args.max_message_bytes, args.port, args.work_ahead) == (2048, 9300, False)


def test_the_start_names_where_settings_came_from_without_values(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text("max-sessions = 4\n")
    argv = ["serve", "--config", str(tmp_path / "c.toml"), "--port", "9000"]
    args = build_parser().parse_args(argv)
    settings = resolve(build_parser, "serve", argv, {"LOCALIVE_API_KEY": "k1", "LOCALIVE_HOST": "0.0.0.0"}, args)
    assert describe(settings) == (f"settings from LOCALIVE_HOST, LOCALIVE_API_KEY, {tmp_path / 'c.toml'} "
                                  "(--print-config shows them)")
    argv = ["serve", "--port", "9000"]
    assert describe(resolve(build_parser, "serve", argv, {}, build_parser().parse_args(argv))) is None


def test_every_option_has_a_variable_and_a_key_and_none_takes_an_existing_variable() -> None:
    serve = subcommand(build_parser(), "serve")
    opts = options(serve)
    assert len(opts) > 60 and {"max_sessions", "api_keys_file", "work_ahead", "data_dir"} <= {o.dest for o in opts}
    names = {o.env for o in opts}
    assert {"LOCALIVE_MAX_SESSIONS", "LOCALIVE_API_KEYS_FILE", "LOCALIVE_SESSIONS_REDIS"} <= names
    assert not names & OTHER_VARIABLES  # LOCALIVE_HOME, LOCALIVE_API_KEYS, the engines' keys keep their meaning
    assert {"config", "print_config"}.isdisjoint(o.dest for o in opts)
    # the engines' keys are the ones listed as environment-only secrets
    assert {API_KEY_ENV, ASR_KEY_ENV, TTS_KEY_ENV, VISION_KEY_ENV} <= set(ENV_SECRETS)


def test_lists_booleans_and_choices_convert_as_their_flags_would(tmp_path: Path) -> None:
    env = {"LOCALIVE_ALLOW_HOST": "a.example, b.example,", "LOCALIVE_WORK_AHEAD": "off",
           "LOCALIVE_URL_ALLOW_PRIVATE": "1", "LOCALIVE_CODE_EXECUTION": "false", "LOCALIVE_PLAIN_PORT": "off",
           "LOCALIVE_API_KEYS_FILE": "/run/keys"}
    args = settle([], env)
    assert args.allow_host == ["a.example", "b.example"] and args.work_ahead is False
    assert args.url_allow_private is True and args.code_execution == "off" and args.plain_port == 0
    assert args.api_keys_file == [Path("/run/keys")]
    toml = ('allow_origin = ["https://app.example"]\nurl-deny = "evil.example"\nwork-ahead = false\n'
            'llm-no-logprobs = true\nws-compression = true\nclient-work-share = 50\nsearch-dir = "docs"\n'
            'limits = "gemini"\n')
    args = settle([], {}, toml, tmp_path)
    assert args.allow_origin == ["https://app.example"] and args.url_deny == ["evil.example"]
    assert args.work_ahead is False and args.llm_no_logprobs is True and args.ws_compression == "on"
    assert args.client_work_share == 50.0 and args.limits == "gemini"
    assert args.search_dir == tmp_path / "docs"  # a file's relative paths are relative to it
    # a flag's list replaces the file's and the environment's
    args = settle(["--allow-host", "c.example"], {"LOCALIVE_ALLOW_HOST": "a.example"}, 'allow-host = ["b"]',
                  tmp_path)
    assert args.allow_host == ["c.example"]
    # false from the environment leaves a store_true option at its default, even over the file
    assert settle([], {"LOCALIVE_URL_ALLOW_PRIVATE": "no"}, "url-allow-private = true", tmp_path) \
        .url_allow_private is False


@pytest.mark.parametrize(("env", "toml", "named"), [
    ({"LOCALIVE_PORT": "eighty"}, None, "LOCALIVE_PORT: invalid int value: 'eighty'"),
    ({"LOCALIVE_VOICE": "loud"}, None, "LOCALIVE_VOICE: 'loud' is not one of embedded, emulator, off"),
    ({"LOCALIVE_LLM_THREADS": "0"}, None, "LOCALIVE_LLM_THREADS: at least 1, not 0"),
    ({"LOCALIVE_WORK_AHEAD": "maybe"}, None, "LOCALIVE_WORK_AHEAD: expected a boolean"),
    ({}, "max-sessions = 1.5", "localive.toml: max-sessions: invalid int value: '1.5'"),
    ({}, "port = true", "localive.toml: port: expected a string or a number"),
    ({}, "turn-taking = \"fast\"", "localive.toml: turn-taking: 'fast' is not one of auto, semantic, silence"),
    ({}, "max-sesions = 3", "localive.toml: max-sesions: not a setting of this command (did you mean max-sessions?)"),
    ({}, "config = \"other.toml\"", "localive.toml: config: not a setting"),
    ({}, "port = 1\nport = 2", "not valid TOML"),
    ({}, "max-sessions = 1\nmax_sessions = 2", "max_sessions: max-sessions is set twice"),
])
def test_a_bad_value_names_its_source(tmp_path: Path, env: dict[str, str], toml: str | None, named: str) -> None:
    with pytest.raises(SettingsError) as refused:
        settle([], env, toml if toml is not None else "", tmp_path)
    assert named in str(refused.value)


def test_a_bad_setting_exits_2_like_argparse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LOCALIVE_MAX_SESSIONS", "many")
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--print-config"])
    assert exited.value.code == 2
    assert "localive serve: error: LOCALIVE_MAX_SESSIONS: invalid int value: 'many'" in capsys.readouterr().err


@pytest.mark.parametrize("toml", [
    'api-key = ["k1"]',
    'api_key = "k1"',
    'sessions-redis = "redis://:hunter2@redis:6379/0"',
    'sessions-redis = "redis://redis:6379/0?password=hunter2"',
    'llm-url = "http://user:hunter2@vllm:8000/v1"',
])
def test_a_secret_in_the_file_is_refused_without_echoing_it(tmp_path: Path, toml: str) -> None:
    with pytest.raises(SettingsError, match="environment") as refused:
        settle([], {}, toml, tmp_path)
    assert "hunter2" not in str(refused.value) and "k1" not in str(refused.value)


def test_the_file_may_name_key_files_and_a_redis_url_without_password(tmp_path: Path) -> None:
    args = settle([], {}, 'api-keys-file = ["keys.txt"]\nsessions-redis = "redis://redis:6379/0"\n', tmp_path)
    assert args.api_keys_file == [tmp_path / "keys.txt"] and args.sessions_redis == "redis://redis:6379/0"


def test_the_config_file_can_come_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text("max-sessions = 4\n")
    argv = ["serve"]
    args = build_parser().parse_args(argv)
    settings = resolve(build_parser, "serve", argv, {"LOCALIVE_CONFIG": str(tmp_path / "c.toml")}, args)
    assert args.max_sessions == 4 and settings.config_source == "env LOCALIVE_CONFIG"
    with pytest.raises(SettingsError, match="cannot read"):
        resolve(build_parser, "serve", argv, {"LOCALIVE_CONFIG": str(tmp_path / "missing.toml")},
                build_parser().parse_args(argv))


def test_unknown_variables_warn_but_others_of_localive_do_not(monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in {"LOCALIVE_MAX_SESION": "3", "LOCALIVE_HOME": "/tmp/x", "LOCALIVE_API_KEYS": "k",
                        "LOCALIVE_REQUIRE_NODE": "1"}.items():
        monkeypatch.setenv(name, value)
    assert main(["serve", "--print-config"]) == 0
    err = capsys.readouterr().err
    assert "LOCALIVE_MAX_SESION is not a setting of this command, ignored; did you mean LOCALIVE_MAX_SESSIONS?" in err
    assert err.count("warning") == 1


def test_print_config_redacts_secrets_and_reads_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LOCALIVE_SESSIONS_REDIS", "redis://:hunter2@redis:6379/0")
    monkeypatch.setenv("LOCALIVE_API_KEY", "key-one,key-two")
    monkeypatch.setenv("LOCALIVE_LLM_API_KEY", "sk-engine")
    monkeypatch.setenv("LOCALIVE_MAX_SESSIONS", "12")
    (tmp_path / "in.toml").write_text('allow-host = ["live.example"]\nwork-ahead = false\n')
    code = main(["serve", "--config", str(tmp_path / "in.toml"), "--api-key", "key-three", "--plain-port", "off",
                 "--print-config"])
    out = capsys.readouterr().out
    assert code == 0
    for secret in ("hunter2", "key-one", "key-two", "key-three", "sk-engine"):
        assert secret not in out
    lines = out.splitlines()
    assert "# sessions-redis = \"redis://:<redacted>@redis:6379/0\"  # env LOCALIVE_SESSIONS_REDIS; holds a " \
           "password: only by flag or LOCALIVE_SESSIONS_REDIS" in lines
    assert "# api-key = <redacted> (1 given)  # flag; a secret: only by flag or LOCALIVE_API_KEY" in lines
    assert "#   LOCALIVE_LLM_API_KEY: set" in lines and "#   LOCALIVE_API_KEYS: not set" in lines
    assert 'allow-host = ["live.example"]  # file' in lines and "max-sessions = 12  # env LOCALIVE_MAX_SESSIONS" \
        in lines and 'plain-port = "off"  # flag' in lines and "port = 8765  # default" in lines
    # the output is a config file: fed back (without the environment) it gives the same settings
    printed = tomllib.loads(out)
    assert printed["max-sessions"] == 12 and "api-key" not in printed and "sessions-redis" not in printed
    (tmp_path / "out.toml").write_text(out)
    for name in ("LOCALIVE_SESSIONS_REDIS", "LOCALIVE_API_KEY", "LOCALIVE_LLM_API_KEY", "LOCALIVE_MAX_SESSIONS"):
        monkeypatch.delenv(name)
    assert main(["serve", "--config", str(tmp_path / "out.toml"), "--print-config"]) == 0
    again = capsys.readouterr().out
    assert tomllib.loads(again) == printed


def test_help_names_the_sources_and_their_precedence(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--config FILE" in text and "LOCALIVE_MAX_SESSIONS" in text and "--print-config" in text
    assert "A flag wins over the environment, the environment over the file, the file over the default" in text


def test_print_config_in_a_real_process(tmp_path: Path) -> None:
    config = tmp_path / "localive.toml"
    config.write_text('host = "0.0.0.0"\nmax-sessions = 40\nsessions-redis = "redis://redis:6379/0"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCALIVE_")}
    env.update(PYTHONPATH=str(REPO / "src"), LOCALIVE_MAX_SESSIONS="50", LOCALIVE_API_KEYS="secret-key")
    done = subprocess.run([sys.executable, "-m", "localive", "serve", "--config", str(config), "--print-config"],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    settings = tomllib.loads(done.stdout)
    assert settings["host"] == "0.0.0.0" and settings["max-sessions"] == 50
    assert settings["sessions-redis"] == "redis://redis:6379/0"
    assert "secret-key" not in done.stdout + done.stderr and "#   LOCALIVE_API_KEYS: set" in done.stdout
    assert "loading models" not in done.stderr


def test_the_documented_example_file_is_valid(tmp_path: Path) -> None:
    text = (REPO / "docs" / "configuration.md").read_text()
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    args = settle([], {}, example, tmp_path)
    assert args.host == "0.0.0.0" and args.plain_port == 8766 and args.code_execution == "off"


def test_a_password_in_the_searxng_url_is_not_printed_at_start() -> None:
    from localive.tools.loader import ToolSettings, load_tool_engines

    _, lines = load_tool_engines(ToolSettings(code_execution=False, search="searxng",
                                              searxng_url="http://user:hunter2@searx:8080", url_context=False))
    assert "googleSearch: SearXNG at http://searx:8080" in lines and "hunter2" not in " ".join(lines)
