"""Headless Debian Chromium driven by Playwright (no browser download: Playwright only speaks the protocol)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("LOCALIVE_CHROMIUM", "/usr/bin/chromium"))

# Chromium's own connections (updates, sync, field trials) are refused on a closed network: turn them off.
QUIET = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps"]


def require_chromium() -> None:
    """Skip without Chromium, except under scripts/test.sh (LOCALIVE_REQUIRE_BROWSER=1), where it fails."""
    if CHROMIUM.is_file():
        return
    message = f"{CHROMIUM} is missing: apt-get install chromium (the playground's browser tests need it)"
    if os.environ.get("LOCALIVE_REQUIRE_BROWSER"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@contextmanager
def chromium(microphone_wav: Path | None = None) -> Iterator[object]:
    """A headless Chromium whose fake microphone plays `microphone_wav` once (then silence) and whose fake
    camera shows Chromium's test pattern; media permission prompts are accepted."""
    from playwright.sync_api import sync_playwright

    args = [*QUIET, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            "--autoplay-policy=no-user-gesture-required"]
    if microphone_wav is not None:
        args.append(f"--use-file-for-fake-audio-capture={microphone_wav}%noloop")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            yield browser
        finally:
            browser.close()
