"""localive.testing.fixtures without a server: the entry point that loads it in users' suites, and the `localive
serve` command line its markers and ini options make (the fixture itself runs in
tests/integration/test_pytest_fixture.py)."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path
from typing import Any

import pytest

from localive.testing import fixtures
from localive.testing.fixtures import ConfigError, serve_args

ROOT = Path(__file__).resolve().parents[2]


def test_the_plugin_is_a_pytest11_entry_point_of_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    target = project["project"]["entry-points"]["pytest11"]["localive"]
    module = importlib.import_module(target)
    assert module is fixtures
    assert callable(module.pytest_configure) and callable(module.pytest_addoption)
    # the leak watcher stays opt-in: it is not an entry point, and this plugin does not load it
    assert "localive.testing.pytest_plugin" not in project["project"]["entry-points"]["pytest11"].values()
    assert "pytest_plugins" not in vars(module) and not hasattr(module, "pytest_runtest_call")


def test_the_node_helper_is_package_data() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "testing/node/*.mjs" in project["tool"]["setuptools"]["package-data"]["localive"]
    assert (ROOT / "src/localive/testing/node/localive.mjs").is_file()


class FakeConfig:
    """What serve_args reads of a pytest.Config: the ini options and where the ini file is."""

    def __init__(self, **ini: Any) -> None:
        self.ini = {"localive_script": "", "localive_voice": "off", "localive_args": [], **ini}
        self.inipath = Path("/app/pytest.ini")
        self.rootpath = Path("/elsewhere")

    def getini(self, name: str) -> Any:
        return self.ini[name]


def args(marked: dict[str, Any], **ini: Any) -> tuple[str, ...]:
    return serve_args(FakeConfig(**ini), marked)  # type: ignore[arg-type]  # a stand-in for pytest.Config


def test_nothing_configured_is_the_emulator_without_voice() -> None:
    assert args({}) == ("--llm", "emulator", "--voice", "off")


def test_the_ini_options_and_the_markers_keywords() -> None:
    assert args({}, localive_script="tests/replies.toml", localive_voice="emulator",
                localive_args=["--max-sessions", "4"]) == (
        "--llm", "emulator", "--voice", "emulator", "--emulator-script", "/app/tests/replies.toml",
        "--max-sessions", "4")
    assert args({"script": "/abs/other.toml", "voice": "off", "args": ["--max-sessions", "9"]},
                localive_script="tests/replies.toml", localive_args=["--max-sessions", "4"]) == (
        "--llm", "emulator", "--voice", "off", "--emulator-script", "/abs/other.toml",
        "--max-sessions", "4", "--max-sessions", "9")  # the marker's flags last: argparse keeps the last


def test_a_replay_ignores_the_emulators_ini_options() -> None:
    assert args({"replay": "tests/cassettes/weather", "timing": "fast"}, localive_script="tests/replies.toml") == (
        "--replay", "/app/tests/cassettes/weather", "--replay-timing", "fast")
    assert args({"replay": Path("/abs/cassettes")}) == ("--replay", "/abs/cassettes")


def test_without_an_ini_file_paths_are_from_the_rootdir() -> None:
    config = FakeConfig()
    config.inipath = None  # type: ignore[assignment]
    assert serve_args(config, {"script": "replies.toml"})[-1] == "/elsewhere/replies.toml"  # type: ignore[arg-type]


@pytest.mark.parametrize(("marked", "message"), [
    ({"replay": "c", "script": "s"}, "no script or voice with it"),
    ({"replay": "c", "voice": "emulator"}, "no script or voice with it"),
    ({"replay": "c", "timing": "slow"}, "one of recorded, fast"),
    ({"timing": "fast"}, "goes with replay"),
    ({"voice": "loud"}, "one of off, emulator, embedded"),
    ({"args": "--max-sessions 3"}, "a list of strings"),
    ({"args": [3]}, "a list of strings"),
])
def test_a_marker_that_makes_no_command_line_says_why(marked: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        args(marked)
