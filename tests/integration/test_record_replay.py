"""Record and replay (issue 20): the seed's complete programs, unchanged, run through `localive relay` to a second
localive (the upstream: the emulator, with speech), are recorded to cassettes, and then pass against `localive serve
--replay` with no model loaded — twice, with the same server messages byte for byte (the replay logs how many it
sent and the SHA-256 of their frames). A client that strays from the cassette is closed with 1007 naming the first
difference."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from google import genai
from google.genai import errors, types

from localive.testing.server import LocaliveServer, serve, start_relay, start_server

SEED = Path(__file__).parent.parent / "seed_programs"
SCRIPT = Path(__file__).parent.parent / "data" / "emulator_script.toml"
PROGRAMS = ("establishing_a_connection.py", "sending_and_receiving_text.py", "function_calling.py",
            "session_resumption.py", "sending_audio_example.py", "receiving_audio_example.py")
REPLAYED = re.compile(r"replay of (\S+) ended: (\d+) server messages sent, SHA-256 of their frames ([0-9a-f]{64})")
OUTPUTS = ("received_audio.wav",)  # files a program writes, compared between runs


@dataclass
class Run:
    stdout: str
    files: dict[str, bytes]


def tone_wav(path: Path, speech_s: float = 0.8, silence_s: float = 1.2) -> None:
    """A 16 kHz WAV of a loud tone and then silence: what the voice emulator hears as one utterance."""
    t = np.arange(round(speech_s * 16000)) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 300 * t) * 32767).astype("<i2").tobytes()
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(tone + bytes(2 * round(silence_s * 16000)))


def run_program(name: str, server: LocaliveServer, cwd: Path) -> Run:
    cwd.mkdir(parents=True, exist_ok=True)
    if name == "sending_audio_example.py":
        tone_wav(cwd / "sample.wav")
    result = subprocess.run([sys.executable, str(SEED / name)], env=server.client_env(), cwd=cwd,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "error" not in result.stdout.lower(), result.stdout
    return Run(result.stdout, {f: (cwd / f).read_bytes() for f in OUTPUTS if (cwd / f).exists()})


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Path, Run]]]:
    """Each program run once through a recording relay: its cassettes' folder and what it printed."""
    work = tmp_path_factory.mktemp("record")
    upstream = start_server(work / "upstream", "--llm", "emulator", "--voice", "emulator",
                            "--emulator-script", str(SCRIPT))
    try:
        relay = start_relay(work / "relay", upstream, "--record", str(work / "recording"))
        try:
            found = {}
            for name in PROGRAMS:
                run = run_program(name, relay, work / "runs" / name)
                folder = work / "cassettes" / name
                folder.mkdir(parents=True)
                for cassette in sorted((work / "recording").glob("*.jsonl")):
                    shutil.move(cassette, folder / cassette.name)
                assert list(folder.iterdir()), f"{name}: no session was recorded"
                found[name] = (folder, run)
        finally:
            relay.stop()
    finally:
        upstream.stop()
    yield found


def without_handles(stdout: str) -> str:
    return re.sub(r"handle(?: is)?: \S+", "handle", stdout)


def replayed(log: str) -> list[tuple[str, int, str]]:
    return [(m.group(1), int(m.group(2)), m.group(3)) for m in REPLAYED.finditer(log)]


@pytest.mark.parametrize("name", PROGRAMS)
def test_a_recorded_seed_program_passes_against_the_replay_identically_twice(
        name: str, recorded: dict[str, tuple[Path, Run]], tmp_path: Path) -> None:
    folder, original = recorded[name]
    with serve("--replay", str(folder), workdir=tmp_path / "replay") as replay:
        first = run_program(name, replay, tmp_path / "first")
        second = run_program(name, replay, tmp_path / "second")
        log = replay.log()
    assert "no model loaded" in log and "loading models" not in log
    sessions = replayed(log)
    assert len(sessions) == 2 * len(list(folder.iterdir())), log[-3000:]
    half = len(sessions) // 2
    assert sessions[:half] == sessions[half:]  # the same cassettes, the same number of messages, the same bytes
    assert all(count > 0 for _, count, _ in sessions)
    assert first.stdout == second.stdout and first.files == second.files
    # what the app printed is what it printed against the real upstream, but for the handles a replay gives
    assert without_handles(first.stdout) == without_handles(original.stdout)
    assert first.files == original.files


@pytest.fixture(scope="module")
def text_replay(recorded: dict[str, tuple[Path, Run]], tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[LocaliveServer]:
    with serve("--replay", str(recorded["sending_and_receiving_text.py"][0]), "--replay-timing", "fast",
               workdir=tmp_path_factory.mktemp("text-replay")) as server:
        yield server


async def test_a_client_that_strays_from_the_cassette_is_closed_naming_the_first_difference(
        text_replay: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in text_replay.client_env().items():
        monkeypatch.setenv(key, value)
    client = genai.Client()
    async with client.aio.live.connect(model="gemini-2.0-flash-live-001",
                                       config={"response_modalities": ["TEXT"]}) as session:
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "Hello, who are you?"}]})
        with pytest.raises(errors.APIError) as closed:
            async for _ in session.receive():
                pass
    assert closed.value.code == 1007
    reason = str(closed.value)
    assert "Replay: client message 1" in reason and "text" in reason and "Hello, who are you?" in reason
    assert "Hello, how are you?" in text_replay.log()  # the whole report, in the log


async def test_a_setup_no_cassette_recorded_is_refused_naming_the_difference(
        text_replay: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in text_replay.client_env().items():
        monkeypatch.setenv(key, value)
    client = genai.Client()
    with pytest.raises(errors.APIError) as refused:
        async with client.aio.live.connect(model="gemini-2.0-flash-live-001",
                                           config={"response_modalities": ["TEXT"], "temperature": 0.5}):
            pass
    assert refused.value.code == 1007
    assert "no cassette recorded this setup" in str(refused.value) and "temperature" in str(refused.value)


async def test_a_cassettes_faults_are_replayed(recorded: dict[str, tuple[Path, Run]], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A cassette's header may hold an emulator script's [faults]: here a setup refused once, then a goAway and the
    real service's 1011 close one second into each session, and a spurious `interrupted` after the first turn, around
the recorded conversation."""
    folder = tmp_path / "faulty"
    folder.mkdir()
    for cassette in recorded["sending_and_receiving_text.py"][0].glob("*.jsonl"):
        header, rest = cassette.read_text().split("\n", 1)
        faults = {"setup_error": {"code": 1011, "reason": "The service is currently unavailable.", "count": 1},
                  "goaway_after_s": 1, "goaway_time_left_s": 1, "interrupted_after_turn": 1}
        (folder / cassette.name).write_text(json.dumps({**json.loads(header), "faults": faults}) + "\n" + rest)
    with serve("--replay", str(folder), workdir=tmp_path / "replay") as replay:
        for key, value in replay.client_env().items():
            monkeypatch.setenv(key, value)
        client = genai.Client()
        config: types.LiveConnectConfigDict = {"response_modalities": ["TEXT"]}
        with pytest.raises(errors.APIError) as refused:
            async with client.aio.live.connect(model="gemini-2.0-flash-live-001", config=config):
                pass
        assert refused.value.code == 1011 and "currently unavailable" in str(refused.value)
        answer, go_away, interrupted = "", False, False
        with pytest.raises(errors.APIError) as closed:
            async with client.aio.live.connect(model="gemini-2.0-flash-live-001", config=config) as session:
                await session.send_client_content(turns={"role": "user", "parts": [{"text": "Hello, how are you?"}]})
                async for message in session.receive():
                    answer += message.text or ""
                    go_away = go_away or message.go_away is not None  # on a slow machine, before the turn ends
                while True:
                    async for message in session.receive():
                        go_away = go_away or message.go_away is not None
                        interrupted = interrupted or bool(message.server_content and
                                                          message.server_content.interrupted)
    assert answer == "You said: Hello, how are you?" and go_away and interrupted
    assert closed.value.code == 1011 and "Deadline expired" in str(closed.value)


def test_without_audio_a_cassette_holds_hashes_and_replays_silence_of_the_same_length(
        tmp_path: Path) -> None:
    """`--no-audio`: each audio blob is written as its length and SHA-256; the client's audio is still matched by
    that hash, and the server's is replayed as silence of its length."""
    with serve("--llm", "emulator", "--voice", "emulator", "--emulator-script", str(SCRIPT),
               workdir=tmp_path / "upstream") as upstream:
        relay = start_relay(tmp_path / "relay", upstream, "--record", str(tmp_path / "cassettes"), "--no-audio")
        try:
            heard = run_program("sending_audio_example.py", relay, tmp_path / "in")
            spoken = run_program("receiving_audio_example.py", relay, tmp_path / "out")
        finally:
            relay.stop()
    written = "\n".join(p.read_text() for p in sorted((tmp_path / "cassettes").glob("*.jsonl")))
    blobs = [blob for line in written.splitlines() if line for blob in audio_blobs(json.loads(line))]
    assert blobs and all("data" not in blob and len(blob["sha256"]) == 64 and blob["bytes"] > 0 for blob in blobs)
    with serve("--replay", str(tmp_path / "cassettes"), "--replay-timing", "fast", workdir=tmp_path / "replay") as r:
        assert run_program("sending_audio_example.py", r, tmp_path / "in-again").stdout == heard.stdout
        again = run_program("receiving_audio_example.py", r, tmp_path / "out-again")
    with wave.open(str(tmp_path / "out" / "received_audio.wav")) as original, \
            wave.open(str(tmp_path / "out-again" / "received_audio.wav")) as replayed_audio:
        assert original.getnframes() == replayed_audio.getnframes() > 0
        assert replayed_audio.readframes(replayed_audio.getnframes()) == bytes(2 * original.getnframes())
    assert again.stdout == spoken.stdout


def audio_blobs(value: object) -> list[dict[str, object]]:
    if isinstance(value, dict):
        if str(value.get("mimeType", "")).startswith("audio/"):
            return [value]
        return [blob for v in value.values() for blob in audio_blobs(v)]
    if isinstance(value, list):
        return [blob for v in value for blob in audio_blobs(v)]
    return []
