"""Faults on demand: the `[faults]` table (protocol/faults.py), the server-wide refusals (server/faults.py) and the
goAway fault as the connection's limits (cli.py)."""

from __future__ import annotations

import json
import re
import textwrap
import tomllib
from pathlib import Path

import pytest

from localive import cli
from localive.clock import VirtualClock
from localive.engines.llm import emulator as emulator_module
from localive.engines.llm.emulator import EmulatorScript
from localive.protocol import faults as faults_module
from localive.protocol.errors import INTERNAL, close_for
from localive.protocol.faults import FAULT_KEYS, NO_FAULTS, Faults, FaultsError, SetupError, parse_faults
from localive.protocol.messages import ClientMessage
from localive.protocol.parse import parse_client_message
from localive.protocol.server_messages import resumption_update
from localive.server.faults import HANDLES_PER_CONNECTION, ServerFaults

FAULT_SCRIPT = Path(__file__).parent.parent / "data" / "emulator_faults.toml"
UNAVAILABLE = "The service is currently unavailable."


def test_a_full_table_is_read_with_its_units() -> None:
    faults = parse_faults(tomllib.loads("""
        goaway_after_s = 2
        goaway_time_left_s = 0.5
        silent_after_turns = 3
        interrupted_after_turn = 1
        interrupted_delay_ms = 250
        transcript_delay_ms = 800
        audio_pace = 0.5
        close_after_tool_call_ms = 0
        refuse_resume_while_open = true
        setup_error = { code = 1011, reason = "The service is currently unavailable.", count = 2 }
    """))
    assert faults == Faults(goaway_after_s=2.0, goaway_time_left_s=0.5, silent_after_turns=3,
                            interrupted_after_turn=1, interrupted_delay_ms=250.0, transcript_delay_ms=800.0,
                            audio_pace=0.5, close_after_tool_call_ms=0.0, refuse_resume_while_open=True,
                            setup_error=SetupError(1011, UNAVAILABLE, 2))
    assert faults.connection_s == 2.5 and faults.shapes_output and faults.any


def test_defaults_and_no_table() -> None:
    assert parse_faults(None) == NO_FAULTS and not NO_FAULTS.any and NO_FAULTS.connection_s is None
    faults = parse_faults({"goaway_after_s": 2, "setup_error": {"code": 4000}, "audio_burst_ms": 500})
    assert faults.goaway_time_left_s == 1.0 and faults.connection_s == 3.0
    assert faults.setup_error == SetupError(4000, "", 1)
    assert faults.shapes_output  # bursts reshape the output; goAway and setup errors alone do not
    assert not parse_faults({"goaway_after_s": 2, "refuse_resume_while_open": True}).shapes_output


@pytest.mark.parametrize(("table", "says"), [
    ([], "'faults' must be a table"),
    ({"goaway_after": 2}, "unknown keys ['goaway_after']"),
    ({"goaway_after_s": 0}, "'goaway_after_s' must be a number > 0"),
    ({"goaway_after_s": True}, "'goaway_after_s' must be a number > 0"),
    ({"goaway_time_left_s": 1}, "'goaway_time_left_s' needs 'goaway_after_s'"),
    ({"goaway_after_s": 1, "goaway_time_left_s": -1}, "'goaway_time_left_s' must be a number >= 0"),
    ({"silent_after_turns": 1.5}, "'silent_after_turns' must be an integer >= 0"),
    ({"interrupted_after_turn": 0}, "'interrupted_after_turn' must be an integer >= 1"),
    ({"interrupted_delay_ms": 5}, "'interrupted_delay_ms' needs 'interrupted_after_turn'"),
    ({"transcript_delay_ms": "800"}, "'transcript_delay_ms' must be a number >= 0"),
    ({"audio_pace": 0}, "'audio_pace' must be a number > 0"),
    ({"audio_pace": 0.5, "audio_burst_ms": 100}, "exclude each other"),
    ({"close_after_tool_call_ms": -1}, "'close_after_tool_call_ms' must be a number >= 0"),
    ({"refuse_resume_while_open": 1}, "'refuse_resume_while_open' must be true or false"),
    ({"setup_error": 1011}, "setup_error: must be a table"),
    ({"setup_error": {"code": 1011, "why": "x"}}, "unknown keys ['why']"),
    ({"setup_error": {"reason": "x"}}, "'code' must be a close code from 1000 to 4999, not None"),
    ({"setup_error": {"code": 999}}, "from 1000 to 4999, not 999"),
    ({"setup_error": {"code": 5000}}, "from 1000 to 4999, not 5000"),
    ({"setup_error": {"code": 1006}}, "'code' 1006 cannot be sent in a close frame"),
    ({"setup_error": {"code": 2000}}, "'code' 2000 cannot be sent"),
    ({"setup_error": {"code": 1011, "reason": 5}}, "'reason' must be a string"),
    ({"setup_error": {"code": 1011, "reason": "é" * 62}}, "at most 123 bytes of UTF-8, not 124"),
    ({"setup_error": {"code": 1011, "count": 0}}, "'count' must be an integer >= 1"),
])
def test_bad_tables_are_refused_naming_the_key(table: object, says: str) -> None:
    with pytest.raises(FaultsError) as refused:
        parse_faults(table, source="s.toml")
    assert says in str(refused.value) and str(refused.value).startswith("s.toml")


def test_the_fault_script_is_a_valid_emulator_script() -> None:
    data = tomllib.loads(FAULT_SCRIPT.read_text())
    assert EmulatorScript.from_dict(data).rule_for("which turn is this?") is not None  # [faults] is allowed there
    assert parse_faults(data["faults"]).goaway_after_s is not None


def test_serve_refuses_a_bad_faults_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "script.toml"
    script.write_text('[faults]\naudio_pace = -1\n')
    assert cli.main(["serve", "--llm", "emulator", "--voice", "off", "--emulator-script", str(script),
                     "--data-dir", str(tmp_path)]) == 2
    assert "'audio_pace' must be a number > 0" in capsys.readouterr().err


def test_the_goaway_fault_sets_the_connection_limits_over_the_flags() -> None:
    args = cli.build_parser().parse_args(["serve", "--limits", "gemini", "--max-connection-s", "30"])
    faults = parse_faults({"goaway_after_s": 2, "goaway_time_left_s": 1})
    limits = cli._limits(args, faults)
    assert (limits.max_connection_s, limits.goaway_before_s, limits.max_session_s) == (3.0, 1.0, 900.0)
    assert cli._limits(args, NO_FAULTS).max_connection_s == 30.0


def setup(handle: str | None = None) -> ClientMessage:
    resumption = {} if handle is None else {"handle": handle}
    return parse_client_message(json.dumps({"setup": {"model": "models/x", "sessionResumption": resumption}}))


def test_the_first_count_setups_are_refused_with_the_scripted_close() -> None:
    server = ServerFaults(Faults(setup_error=SetupError(1011, UNAVAILABLE, 2)))
    closes = [close_for(refusal) if (refusal := server.refusal(setup())) else None for _ in range(3)]
    assert [(c.code, c.reason) if c else None for c in closes] == [(1011, UNAVAILABLE)] * 2 + [None]
    assert closes[0] is not None and closes[0].blame == "nobody"  # planned: logged at DEBUG
    content = parse_client_message('{"clientContent": {"turnComplete": true}}')
    assert server.refusal(content) is None  # not a setup: not counted
    assert server.setups == 3


async def test_a_handle_sent_on_an_open_connection_cannot_be_resumed_until_it_closes() -> None:
    server = ServerFaults(Faults(refuse_resume_while_open=True))
    first = server.connect(VirtualClock())
    assert first is not None
    source_messages = [resumption_update("h1", True), resumption_update("h2", True), {"goAway": {}}]
    source = ListSource(source_messages)
    sent = [m async for m in first.pipe(source)]
    assert sent == [*source_messages, close_for(None)]  # passed through as they are: no output faults
    for handle in ("h1", "h2"):
        refusal = server.refusal(setup(handle))
        assert refusal is not None and (close_for(refusal).code, close_for(refusal).reason) == (
            INTERNAL, "Internal error encountered.")
    assert server.refusal(setup("elsewhere")) is None and server.refusal(setup()) is None
    first.close()
    assert server.refusal(setup("h2")) is None


async def test_each_connection_keeps_only_its_newest_handles() -> None:
    server = ServerFaults(Faults(refuse_resume_while_open=True))
    connection = server.connect(VirtualClock())
    assert connection is not None
    handles = [f"h{i}" for i in range(HANDLES_PER_CONNECTION + 5)]
    async for _ in connection.pipe(ListSource([resumption_update(h, True) for h in handles])):
        pass
    assert server.refusal(setup(handles[0])) is None  # memory is bounded: the oldest are forgotten
    assert server.refusal(setup(handles[-1])) is not None


def test_no_stage_where_the_faults_do_not_touch_the_output() -> None:
    assert ServerFaults(Faults(goaway_after_s=1, setup_error=SetupError(1011, ""))).connect(VirtualClock()) is None


class ListSource:
    """A source that gives its messages, then a normal close."""

    def __init__(self, messages: list[dict[str, object]]) -> None:
        self.messages = list(messages)

    async def get(self) -> dict[str, object] | object:
        return self.messages.pop(0) if self.messages else close_for(None)


def test_every_key_is_documented_with_its_symptom_and_the_documented_examples_parse() -> None:
    docs = (Path(__file__).parent.parent.parent / "docs" / "testing.md").read_text()
    rows = [line for line in docs.splitlines() if line.startswith("| `")]
    for key in FAULT_KEYS:
        assert any(row.startswith(f"| `{key}") or f"`{key} =" in row for row in rows), key
    assert all(len(row.split(" | ")) == 3 for row in rows)  # key, what the server does, the symptom
    examples = [docs.split("```toml")[1].split("```")[0], faults_module.__doc__, emulator_module.__doc__]
    for example in examples:
        assert example is not None
        start = re.search(r"^ *\[faults\] *$", example, re.MULTILINE)
        assert start is not None
        table = textwrap.dedent(example[start.start():].split("\n\n")[0])
        assert parse_faults(tomllib.loads(table)["faults"]).any
