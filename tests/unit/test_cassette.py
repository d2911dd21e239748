"""Cassettes (issue 20): the format's checks, what is never written, and how a client's message is matched."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from localive.cassette.format import CassetteError, Event, header_line, read_cassette, read_cassettes
from localive.cassette.match import MatchRules, first_difference
from localive.cassette.redact import Handles, placeholder_of, redact_client, redact_server, replay_handle, scrub
from localive.server.replay import CassetteLibrary

SETUP = {"setup": {"model": "models/gemini-2.0-flash-live-001", "generationConfig": {"responseModalities": ["TEXT"]}}}


def write(path: Path, *lines: object) -> Path:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def audio(data: bytes) -> dict[str, str]:
    return {"mimeType": "audio/pcm;rate=16000", "data": base64.b64encode(data).decode()}


# --- the format ---------------------------------------------------------------------------------------------------

def test_a_cassette_reads_back_what_was_written(tmp_path: Path) -> None:
    events = [Event(0.0, "client", SETUP), Event(0.01, "server", {"setupComplete": {}}),
              Event(1.5, "client", close=(1000, "")), ]
    path = write(tmp_path / "0001.jsonl", header_line("v1beta", audio_kept=True), *(e.line() for e in events))
    cassette = read_cassette(path)
    assert cassette.events == tuple(events) and cassette.setup == SETUP and cassette.header["api"] == "v1beta"


@pytest.mark.parametrize(("lines", "named"), [
    ([], "empty"),
    (['{"cassette": 2}'], "not a cassette header"),
    (['{"cassette": 1, "faults": {"nope": 1}}', {"t": 0, "from": "client", "message": SETUP}], "nope"),
    (['{"cassette": 1}', "not json"], ":2: not JSON"),
    (['{"cassette": 1}', {"t": 0, "from": "server", "message": {"setupComplete": {}}}], "client's setup"),
    (['{"cassette": 1}', {"t": 0, "from": "client", "message": SETUP, "extra": 1}], "unknown keys"),
    (['{"cassette": 1}', {"t": -1, "from": "client", "message": SETUP}], "'t'"),
    (['{"cassette": 1}', {"t": 0, "from": "both", "message": SETUP}], "'from'"),
    (['{"cassette": 1}', {"t": 0, "from": "client", "message": SETUP, "close": {"code": 1000}}], "either"),
    (['{"cassette": 1}', {"t": 0, "from": "client", "message": SETUP},
      {"t": 1, "from": "server", "close": {"code": 99, "reason": ""}}], "'close'"),
    (['{"cassette": 1}', {"t": 1, "from": "client", "message": SETUP},
      {"t": 0.5, "from": "server", "message": {}}], "back in time"),
])
def test_a_bad_cassette_is_refused_naming_what_and_where(tmp_path: Path, lines: list[object], named: str) -> None:
    path = write(tmp_path / "bad.jsonl", *lines) if lines else tmp_path / "bad.jsonl"
    if not lines:
        path.write_text("")
    with pytest.raises(CassetteError, match=named.replace("(", r"\(")) as refused:
        read_cassette(path)
    assert str(path) in str(refused.value)


def test_a_folder_without_cassettes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CassetteError, match="no cassettes"):
        read_cassettes(tmp_path)


# --- what is never written ----------------------------------------------------------------------------------------

def test_handles_become_placeholders_shared_by_the_update_and_the_resuming_setup() -> None:
    handles = Handles()
    update = redact_server({"sessionResumptionUpdate": {"newHandle": "secret-handle-1", "resumable": True}},
                           handles, keep_audio=True)
    assert update["sessionResumptionUpdate"] == {"newHandle": "<handle 1>", "resumable": True}
    resuming = {"setup": {"model": "m", "sessionResumption": {"handle": "secret-handle-1"}}}
    assert redact_client(resuming, handles, keep_audio=True)["setup"]["sessionResumption"]["handle"] == "<handle 1>"
    assert replay_handle("<handle 1>") == "replay-handle-1" and placeholder_of("replay-handle-1") == "<handle 1>"
    assert redact_server({"sessionResumptionUpdate": {"newHandle": "", "resumable": False}}, handles,
                         keep_audio=True)["sessionResumptionUpdate"]["newHandle"] == ""


def test_without_audio_each_blob_is_its_length_and_hash() -> None:
    message = {"realtimeInput": {"audio": audio(b"\x01\x02" * 100)}}
    written = redact_client(message, Handles(), keep_audio=False)
    blob = written["realtimeInput"]["audio"]
    assert "data" not in blob and blob["bytes"] == 200 and len(blob["sha256"]) == 64
    image = {"realtimeInput": {"video": {"mimeType": "image/jpeg", "data": "AAAA"}}}
    assert redact_client(image, Handles(), keep_audio=False) == image  # only audio


def test_secrets_are_cut_out_wherever_they_appear() -> None:
    key = 'k3y-with-"quote"-and-more'
    line = json.dumps({"text": f"my key is {key}", "other": "auth_tokens/abcdefghijkl"})
    cleaned = scrub(line, [key, "auth_tokens/abcdefghijkl", "short"])
    assert "k3y-with" not in cleaned and "abcdefghijkl" not in cleaned and cleaned.count("<redacted>") == 2
    assert json.loads(cleaned)  # still a line of JSON


# --- matching -------------------------------------------------------------------------------------------------------

def turn(text: str) -> dict[str, object]:
    return {"clientContent": {"turns": [{"role": "user", "parts": [{"text": text}]}], "turnComplete": True}}


def test_text_matches_by_the_rule() -> None:
    assert first_difference(turn("Hello"), turn("Hello"), MatchRules()) is None
    difference = first_difference(turn("Hello there"), turn("Hello"), MatchRules())
    assert difference == 'clientContent.turns[0].parts[0].text: got "Hello there", recorded "Hello"'
    assert first_difference(turn("hello   THERE"), turn("Hello there"), MatchRules("casefold")) is None
    assert first_difference(turn("anything"), turn("Hello"), MatchRules("any")) is None
    regex = MatchRules().overridden({"text": {"regex": "Hello .*"}})
    assert first_difference(turn("Hello you"), turn("Hello"), regex) is None
    assert first_difference(turn("Bye"), turn("Hello"), regex) is not None


def test_other_fields_must_be_equal_and_the_first_difference_is_named() -> None:
    recorded = turn("Hi")
    got = {"clientContent": {**recorded["clientContent"], "turnComplete": False}}  # type: ignore[dict-item]
    assert first_difference(got, recorded, MatchRules("any")) == \
        "clientContent.turnComplete: got False, recorded True"
    assert first_difference({"realtimeInput": {}}, recorded, MatchRules()) == \
        "clientContent is missing (recorded an object of 2)"
    assert "items" in (first_difference({"a": [1, 2]}, {"a": [1]}, MatchRules()) or "")
    assert first_difference({"a": 1}, {"a": 1.0}, MatchRules()) is None


def test_audio_matches_by_hash_length_or_not_at_all() -> None:
    recorded = {"realtimeInput": {"audio": audio(b"\x00\x01" * 50)}}
    hashed = redact_client(recorded, Handles(), keep_audio=False)
    same, other, longer = audio(b"\x00\x01" * 50), audio(b"\x01\x01" * 50), audio(b"\x00\x01" * 60)
    for theirs in (recorded, hashed):
        assert first_difference({"realtimeInput": {"audio": same}}, theirs, MatchRules()) is None
        assert "other audio" in (first_difference({"realtimeInput": {"audio": other}}, theirs, MatchRules()) or "")
        assert first_difference({"realtimeInput": {"audio": other}}, theirs, MatchRules(audio="length")) is None
        assert "120 bytes of audio, recorded 100" in (
            first_difference({"realtimeInput": {"audio": longer}}, theirs, MatchRules(audio="length")) or "")
        assert first_difference({"realtimeInput": {"audio": longer}}, theirs, MatchRules(audio="any")) is None


@pytest.mark.parametrize("match", [{"text": "loose"}, {"audio": "size"}, {"text": {"regex": "("}}, {"video": "x"}])
def test_bad_match_rules_are_refused(match: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MatchRules().overridden(match)


def test_the_library_gives_matching_cassettes_in_order_least_used_first(tmp_path: Path) -> None:
    other = {"setup": {**SETUP["setup"], "systemInstruction": {"parts": [{"text": "Be brief."}]}}}
    for name, setup in (("0001", SETUP), ("0002", other), ("0003", SETUP)):
        write(tmp_path / f"{name}.jsonl", '{"cassette": 1}', {"t": 0, "from": "client", "message": setup})
    library = CassetteLibrary(read_cassettes(tmp_path))
    chosen = [library.choose(SETUP, MatchRules()) for _ in range(3)]
    assert [c.name for c in chosen if not isinstance(c, str)] == ["0001.jsonl", "0003.jsonl", "0001.jsonl"]
    chosen_other = library.choose(other, MatchRules())
    assert not isinstance(chosen_other, str) and chosen_other.name == "0002.jsonl"
    refused = library.choose({"setup": {**SETUP["setup"], "model": "models/x"}}, MatchRules())
    assert isinstance(refused, str) and "no cassette recorded this setup" in refused and "setup.model" in refused


# --- the commands' refusals -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "said"), [
    (["serve", "--replay", "DIR", "--llm", "emulator"], "--llm has no use with it"),
    (["serve", "--replay", "DIR", "--emulator-script", "x.toml"], "--emulator-script has no use with it"),
    (["serve", "--replay", "MISSING"], "not a directory of cassettes"),
    (["serve", "--replay", "EMPTY"], "no cassettes"),
    (["relay", "--upstream", "ftp://example.com"], "--upstream"),
    (["relay", "--upstream", "https://user:pw@example.com"], "may not hold credentials"),
    (["relay", "--no-audio"], "--no-audio needs --record"),
])
def test_replay_and_relay_refuse_what_they_cannot_do_with_one_line(
        argv: list[str], said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from localive.cli import main

    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "DIR").mkdir()
    argv = [str(tmp_path / a) if a in ("DIR", "MISSING", "EMPTY") else a for a in argv]
    assert main([*argv, "--data-dir", str(tmp_path / "data"), "--port", "1", "--plain-port", "off"]) == 2
    assert said in capsys.readouterr().err
