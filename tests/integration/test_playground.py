"""The browser playground in a real headless Chromium against real servers with the embedded models.

The page's microphone is Chromium's fake capture device playing a speech WAV; its camera is Chromium's test
pattern. The page exposes what it shows (turns, playback counters, the raw log) as `window.playground.stats()`.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localive.testing.server import LocaliveServer, start_server
from localive.testing.speech import speech_wav
from tests.support.browser import chromium, require_chromium

pytestmark = pytest.mark.llm
OUTPUT_RATE = 24000
QUESTION = "Which city is the capital of France?"  # espeak + Whisper base hear this one word for word
SCREENSHOTS = Path(os.environ.get("LOCALIVE_SCREENSHOT_DIR", "")) if os.environ.get("LOCALIVE_SCREENSHOT_DIR") else None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()
    wav = speech_wav(QUESTION, rate_hz=48000, lead_s=1.0, trail_s=6.0)
    with chromium(microphone_wav=wav) as browser:
        yield browser


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 860}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    yield page
    context.close()
    assert not errors, f"the page raised: {errors}"


def open_page(page: Any, server: LocaliveServer) -> None:
    page.goto(f"{server.plain_base_url}/")
    page.wait_for_function("document.querySelector('#model').options.length > 0")


def connect(page: Any) -> None:
    page.click("#connect")
    page.wait_for_function("window.playground.stats().connected", timeout=15000)


def stats(page: Any) -> dict[str, Any]:
    return page.evaluate("window.playground.stats()")  # type: ignore[no-any-return]


def wait_for(page: Any, expression: str, timeout_s: float = 60.0) -> None:
    page.wait_for_function(expression, timeout=timeout_s * 1000)


def texts(page: Any, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "nodes => nodes.map(n => n.textContent)")  # type: ignore[no-any-return]


def sent(page: Any) -> list[dict[str, Any]]:
    lines = page.evaluate("window.playground.state.log.lines")
    return [entry["message"] for entry in map(json.loads, lines) if entry["dir"] == "send"]


def send_text(page: Any, text: str) -> None:
    page.fill("#text", text)
    page.click("#send")


def save_screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    folder = SCREENSHOTS or tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000
    print(f"screenshot: {path}")
    return path


def test_spoken_question_is_transcribed_and_answered_aloud(page: Any, llm_server: LocaliveServer,
                                                          tmp_path: Path) -> None:
    open_page(page, llm_server)
    connect(page)
    page.click("#mic")
    wait_for(page, "document.querySelectorAll('#transcript .entry.user').length > 0", 30)
    wait_for(page, "window.playground.stats().turns.length > 0", 60)
    heard = " ".join(texts(page, "#transcript .entry.user")).lower()
    assert "capital" in heard and "france" in heard, heard
    answer = " ".join(texts(page, "#transcript .entry.model")).lower()
    assert "paris" in answer, answer
    wait_for(page, "window.playground.stats().playback.queued === 0", 30)
    now = stats(page)
    turn = now["turns"][0]
    assert now["playback"]["played"] > 0.5 * OUTPUT_RATE, now["playback"]  # the answer was played, not just received
    assert turn["endedBy"] == "voice" and turn["firstAudioMs"] is not None and not turn["interrupted"], turn
    audio = [m["realtimeInput"]["audio"] for m in sent(page) if "realtimeInput" in m and "audio" in m["realtimeInput"]]
    assert audio and audio[0]["mimeType"] == "audio/pcm;rate=16000"
    latency = texts(page, "#latency tbody tr td")
    assert latency[1] == "voice" and latency[2].endswith(" ms"), latency
    save_screenshot(page, tmp_path, "playground.png")


def test_stop_flushes_playback_at_once(page: Any, llm_server: LocaliveServer) -> None:
    open_page(page, llm_server)
    connect(page)
    send_text(page, "Tell me a long story about a brave knight and a dragon.")
    wait_for(page, f"window.playground.stats().playback.queued > {2 * OUTPUT_RATE}", 60)  # > 2 s of audio waiting
    played = stats(page)["playback"]["played"]
    page.click("#stop")
    wait_for(page, "window.playground.stats().playback.flushes === 1", 2)
    after = stats(page)
    assert after["playback"]["queued"] == 0 and after["playback"]["flushedSamples"] > 2 * OUTPUT_RATE
    time.sleep(1.0)
    # nothing of that turn is played after Stop (a few render quanta may have been in flight)
    assert stats(page)["playback"]["played"] - played < 0.5 * OUTPUT_RATE
    send_text(page, "Thank you.")  # Stop is local: the server ends the story when a new turn interrupts it
    wait_for(page, "window.playground.stats().turns.length >= 1", 60)
    assert stats(page)["turns"][0]["stopped"] is True


def test_interruption_flushes_playback(page: Any, llm_server: LocaliveServer) -> None:
    """A new message while the answer plays: the server sends `interrupted` and the page drops the queued audio."""
    open_page(page, llm_server)
    page.select_option("#model", "localive-emulator")  # echoes the message: a long, predictable answer
    connect(page)
    send_text(page, " ".join(["one two three four five six seven eight nine ten"] * 4))
    wait_for(page, f"window.playground.stats().playback.queued > {3 * OUTPUT_RATE}", 30)
    send_text(page, "Short one.")
    wait_for(page, "window.playground.stats().turns.length >= 2", 30)
    now = stats(page)
    assert now["turns"][0]["interrupted"] is True
    assert now["playback"]["flushes"] >= 1 and now["playback"]["flushedSamples"] > OUTPUT_RATE, now["playback"]
    notes = " ".join(texts(page, "#transcript .entry.note"))
    assert re.search(r"Interrupted: flushed [1-9]\d* ms", notes), notes
    assert "You said: Short one." in " ".join(texts(page, "#transcript .entry.model"))


def test_switching_the_voice_sends_a_new_setup(page: Any, llm_server: LocaliveServer) -> None:
    open_page(page, llm_server)
    page.select_option("#model", "localive-emulator")
    connect(page)
    page.select_option("#voice", "Kore")
    wait_for(page, "window.playground.stats().setup.setup.generationConfig.speechConfig"
                   ".voiceConfig.prebuiltVoiceConfig.voiceName === 'Kore' && window.playground.stats().connected", 20)
    setups = [m["setup"] for m in sent(page) if "setup" in m]
    voices = [s["generationConfig"]["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"]["voiceName"] for s in setups]
    assert voices == ["Puck", "Kore"]
    send_text(page, "Hello Kore.")
    wait_for(page, "window.playground.stats().turns.length === 1", 30)
    assert stats(page)["turns"][0]["audioSeconds"] > 0.3


def test_push_to_talk_sends_manual_activity(page: Any, llm_server: LocaliveServer) -> None:
    open_page(page, llm_server)
    page.select_option("#model", "localive-emulator")
    page.check("#ptt-mode")
    connect(page)
    assert stats(page)["setup"]["setup"]["realtimeInputConfig"] == {"automaticActivityDetection": {"disabled": True}}
    page.click("#mic")  # the fake microphone starts its WAV again: 1 s of silence, then the question
    page.hover("#talk")
    page.mouse.down()
    time.sleep(5.0)
    page.mouse.up()
    wait_for(page, "window.playground.stats().turns.length === 1", 30)
    kinds = [next(iter(m["realtimeInput"])) for m in sent(page) if "realtimeInput" in m]
    assert kinds[0] == "activityStart" and "activityEnd" in kinds, kinds[:3]
    assert kinds.index("activityEnd") > kinds.index("audio")  # the question was sent between the two
    assert stats(page)["turns"][0]["endedBy"] == "push-to-talk"
    assert "capital" in " ".join(texts(page, "#transcript .entry.model")).lower()


def test_raw_log_downloads_as_jsonl(page: Any, llm_server: LocaliveServer, tmp_path: Path) -> None:
    open_page(page, llm_server)
    page.select_option("#model", "localive-emulator")
    connect(page)
    send_text(page, "Log this.")
    wait_for(page, "window.playground.stats().turns.length === 1", 30)
    with page.expect_download() as download:
        page.click("#download")
    path = tmp_path / "session.jsonl"
    download.value.save_as(path)
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    kinds = [(e["dir"], next(iter(e["message"]))) for e in entries]
    assert kinds[:3] == [("event", "open"), ("send", "setup"), ("recv", "setupComplete")], kinds[:3]
    assert ("send", "clientContent") in kinds
    audio = [p for e in entries if e["dir"] == "recv" for p in
             e["message"].get("serverContent", {}).get("modelTurn", {}).get("parts", [])]
    assert audio and all(len(p["inlineData"]["data"]) > 100 for p in audio)  # full audio, to replay the session
    assert any(e["message"].get("serverContent", {}).get("turnComplete") for e in entries)


def test_camera_sends_jpeg_frames(page: Any, llm_server: LocaliveServer) -> None:
    open_page(page, llm_server)
    page.select_option("#model", "localive-emulator")
    connect(page)
    page.click("#camera")
    wait_for(page, "window.playground.stats().videoFrames >= 3", 15)
    frames = [m["realtimeInput"]["video"] for m in sent(page) if "video" in m.get("realtimeInput", {})]
    assert all(f["mimeType"] == "image/jpeg" and f["data"].startswith("/9j/") for f in frames)  # JPEG magic
    send_text(page, "Still there?")
    wait_for(page, "window.playground.stats().turns.length === 1", 30)
    assert stats(page)["connected"], stats(page)["lastClose"]


# ---- with API keys: the page works through an ephemeral token and never sees a key ----------------------------

KEY = "playground-test-key-7f3a9c2e51"


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocaliveServer]:
    server = start_server(tmp_path_factory.mktemp("keyed"), "--api-key", KEY, "--llm", "emulator")
    yield server
    server.stop()


def test_with_keys_the_page_uses_an_ephemeral_token(browser: Any, keyed_server: LocaliveServer) -> None:
    context = browser.new_context()
    page = context.new_page()
    seen: list[str] = []
    page.on("console", lambda message: seen.append(message.text))
    page.on("request", lambda request: seen.extend([request.url, json.dumps(request.headers),
                                                    request.post_data or ""]))
    page.on("response", lambda response: seen.append(json.dumps(response.headers)))
    sockets: list[str] = []

    def on_socket(ws: Any) -> None:
        sockets.append(ws.url)
        ws.on("framesent", lambda payload: seen.append(str(payload)))
        ws.on("framereceived", lambda payload: seen.append(str(payload)))

    page.on("websocket", on_socket)
    open_page(page, keyed_server)
    connect(page)
    send_text(page, "Hello with a token.")
    wait_for(page, "window.playground.stats().turns.length === 1", 30)
    assert "You said: Hello with a token." in " ".join(texts(page, "#transcript .entry.model"))
    assert len(sockets) == 1 and "Constrained?access_token=auth_tokens%2F" in sockets[0], sockets
    seen.append(page.content())
    seen.append(page.evaluate("JSON.stringify({local: {...localStorage}, session: {...sessionStorage}, "
                              "log: window.playground.state.log.lines})"))
    assert seen and not [s for s in seen if KEY in s]
    context.close()


def test_without_a_token_the_keyed_server_refuses_the_page(browser: Any, keyed_server: LocaliveServer) -> None:
    """The token is what lets the page in: the same page pointed at the plain endpoint is refused."""
    context = browser.new_context()
    page = context.new_page()
    open_page(page, keyed_server)
    page.evaluate("window.playground.state.config.auth = 'none'")
    page.click("#connect")
    wait_for(page, "window.playground.stats().lastClose !== null", 15)
    close = stats(page)["lastClose"]
    assert close["code"] == 1008 and "API key" in close["reason"], close
    context.close()
