"""The `localive_server` fixture and `localive` marker (localive/testing/fixtures.py) in an app's own suite: small
generated suites run by pytest in a subprocess (pytester), with a strict ini (`--strict-markers`, warnings as
errors), whose tests ask the emulator, a replayed cassette and a subprocess app through `genai.Client()` configured
by nothing but the environment the fixture sets.

The inner runs load the plugin with `-p localive.testing.fixtures` and plugin autoloading off: the `pytest11` entry
point that loads it in users' suites exists only once localive is (re)installed (tests/unit/test_testing_fixtures.py
checks that it is declared), and loading it twice would be an error.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from localive.testing.server import start_relay, start_server

pytest_plugins = ["pytester"]

APP = '''
"""The app under test: one question over the Live API, configured only by the environment."""
import asyncio
import sys

from google import genai


async def ask(prompt):
    client = genai.Client()
    async with client.aio.live.connect(model="gemini-2.0-flash-live-001",
                                       config={"response_modalities": ["TEXT"]}) as session:
        await session.send_client_content(turns={"role": "user", "parts": [{"text": prompt}]})
        return "".join([m.text async for m in session.receive() if m.text])


if __name__ == "__main__":
    print(asyncio.run(ask(sys.argv[1])))
'''

REPLIES = '''
default = "You said: {input}"
[[reply]]
match = "weather"
text = "It is always sunny in the emulator."
'''

OTHER_REPLIES = '''
default = "The other script heard: {input}"
'''

INI = '''
[pytest]
addopts = --strict-markers
filterwarnings =
    error
    ignore::DeprecationWarning:websockets.*
    ignore::DeprecationWarning:uvicorn.*
'''


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A folder holding the app, its replies and a strict ini; autoloaded plugins off in the inner runs."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for name in ("GOOGLE_GEMINI_BASE_URL", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS"):
        monkeypatch.delenv(name, raising=False)
    pytester.makefile(".py", app=APP)
    pytester.makefile(".toml", replies=REPLIES, other=OTHER_REPLIES)
    return pytester


def run(suite: pytest.Pytester, ini: str = INI) -> pytest.RunResult:
    suite.makeini(ini)
    return suite.runpytest_subprocess("-p", "localive.testing.fixtures", "-v", timeout=240)


def test_the_emulator_from_a_script_with_servers_shared_per_configuration(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_app='''
        import asyncio
        import os
        import subprocess
        import sys

        import pytest

        from app import ask

        PIDS = {}


        def test_the_ini_script_answers_the_sdk(localive_server):
            PIDS["ini"] = localive_server.pid
            assert asyncio.run(ask("What's the weather?")) == "It is always sunny in the emulator."
            assert os.environ["GOOGLE_GEMINI_BASE_URL"] == localive_server.base_url
            assert os.environ["GEMINI_API_KEY"] == "localive"


        def test_the_same_configuration_shares_the_server(localive_server):
            assert localive_server.pid == PIDS["ini"]


        @pytest.mark.localive(script="other.toml")
        def test_a_marker_script_gets_its_own_server(localive_server):
            assert localive_server.pid != PIDS["ini"]
            assert asyncio.run(ask("hello")) == "The other script heard: hello"


        def test_a_subprocess_app_sees_the_environment(localive_server):
            out = subprocess.run([sys.executable, "app.py", "weather today?"], capture_output=True, text=True,
                                 timeout=60, check=True).stdout
            assert out.strip() == "It is always sunny in the emulator."


        def test_without_the_fixture_the_environment_is_as_it_was():
            assert "GOOGLE_GEMINI_BASE_URL" not in os.environ


        @pytest.mark.localive(args=["--max-sessions", "7"])
        class TestMarkedClass:
            def test_the_class_marker_adds_flags(self, localive_server):
                assert "--max-sessions" in localive_server.process.process.args
                assert localive_server.pid != PIDS["ini"]

            @pytest.mark.localive(script="other.toml")
            def test_the_nearest_marker_wins_key_by_key(self, localive_server):
                args = localive_server.process.process.args
                assert "--max-sessions" in args and any(a.endswith("other.toml") for a in args)
    ''')
    result = run(suite, INI + "localive_script = replies.toml\n")
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=7)


def test_a_server_that_dies_or_a_bad_marker_fails_clearly(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_app='''
        import asyncio
        import os
        import signal

        import pytest

        from app import ask


        def test_no_configuration_is_the_default_emulator(localive_server):
            assert "--voice" in localive_server.process.process.args
            assert asyncio.run(ask("hello")) == "You said: hello"


        @pytest.mark.localive(args=["--max-sessions", "3"])
        def test_the_server_is_killed(localive_server):
            os.kill(localive_server.pid, signal.SIGKILL)
            localive_server.process.process.wait()


        @pytest.mark.localive(args=["--max-sessions", "3"])
        def test_after_it_died(localive_server):
            pass


        @pytest.mark.localive(replay="somewhere", script="replies.toml")
        def test_replay_and_script(localive_server):
            pass


        @pytest.mark.localive(args=["--no-such-flag"])
        def test_a_server_that_does_not_start(localive_server):
            pass
    ''')
    result = run(suite)
    result.assert_outcomes(passed=2, errors=4)  # the killed test passes, then errors in its teardown
    out = result.stdout.str()
    # in its teardown and in the next test's setup (pytest repeats the errors in its summary where $CI is set)
    assert out.count("has exited with status -9; its log ends:") >= 2, out
    assert "ERROR at teardown of test_the_server_is_killed" in out and "ERROR at setup of test_after_it_died" in out
    assert "no script or voice with it" in out
    assert "did not start" in out and "--no-such-flag" in out


@pytest.fixture(scope="module")
def cassette(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cassette of app.py asking about the weather, recorded through `localive relay` from the emulator."""
    work = tmp_path_factory.mktemp("cassette")
    (work / "app.py").write_text(APP)
    (work / "replies.toml").write_text(REPLIES)
    with start_server(work / "upstream", "--llm", "emulator", "--voice", "off", "--emulator-script",
                      str(work / "replies.toml")) as upstream, \
            start_relay(work / "relay", upstream, "--record", str(work / "recording")) as relay:
        subprocess.run([sys.executable, "app.py", "What's the weather?"], cwd=work, env=relay.client_env(),
                       check=True, capture_output=True, timeout=60)
    assert len(list((work / "recording").glob("*.jsonl"))) == 1
    return work / "recording"


def test_a_replayed_cassette(suite: pytest.Pytester, cassette: Path) -> None:
    shutil.copytree(cassette, suite.path / "cassettes" / "weather")
    suite.makepyfile(test_app='''
        import asyncio

        import pytest
        from google.genai import errors

        from app import ask

        pytestmark = pytest.mark.localive(replay="cassettes/weather", timing="fast")


        def test_the_recorded_answer(localive_server):
            assert asyncio.run(ask("What's the weather?")) == "It is always sunny in the emulator."
            assert "no model loaded" in localive_server.log()


        def test_a_question_off_the_cassette_is_refused(localive_server):
            with pytest.raises(errors.APIError) as refused:
                asyncio.run(ask("Something else?"))
            assert refused.value.code == 1007
    ''')
    result = run(suite)
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=2)


def test_the_docs_example_runs_verbatim(suite: pytest.Pytester, cassette: Path) -> None:
    """docs/testing.md's "In your pytest suite" example, as written, with the files it names."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "testing.md").read_text()
    section = docs[docs.index("## In your pytest suite"):docs.index("## In your Node tests")]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    (suite.path / "tests").mkdir()
    (suite.path / "tests" / "test_weather.py").write_text(example)
    (suite.path / "tests" / "replies.toml").write_text(REPLIES)
    shutil.copytree(cassette, suite.path / "tests" / "cassettes" / "weather")
    (suite.path / "my_live_app.py").write_text('import asyncio\nfrom app import ask\n\n'
                                                'print(asyncio.run(ask("What\'s the weather?")))\n')
    suite.makeini(INI + "asyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    result = suite.runpytest_subprocess("-p", "localive.testing.fixtures", "-p", "pytest_asyncio.plugin", "-v",
                                        timeout=240)
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=2)
