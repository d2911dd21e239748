"""An SDK client for a server started by localive.testing (`start_server`, `serve`)."""

from __future__ import annotations

import pytest
from google import genai

from localive.testing.server import LocaliveServer


def sdk_client(server: LocaliveServer, monkeypatch: pytest.MonkeyPatch) -> genai.Client:
    """A google-genai client configured as an app would be after `eval "$(localive env)"`."""
    for name, value in server.client_env().items():
        monkeypatch.setenv(name, value)
    return genai.Client()
