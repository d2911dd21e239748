"""Turn helpers for resumption tests with the official Python SDK and the emulator's "which turn" rule."""

from __future__ import annotations

from google import genai


def resuming(handle: str | None) -> dict[str, object]:
    """A TEXT config that asks for resumption updates, resuming `handle` when there is one."""
    return {"response_modalities": ["TEXT"], "session_resumption": {"handle": handle} if handle else {}}


def turn_of(answer: str) -> int:
    """N in the emulator's "This is turn N." (tests/data/emulator_script.toml)."""
    assert answer.startswith("This is turn "), answer
    return int(answer.split()[-1].rstrip("."))


async def ask(session: genai.live.AsyncSession, text: str = "which turn is this?") -> tuple[str, str | None]:
    """One turn; returns the answer and the last resumable handle received during it."""
    await session.send_client_content(turns={"role": "user", "parts": [{"text": text}]})
    answer, handle = "", None
    async for message in session.receive():
        answer += message.text or ""
        update = message.session_resumption_update
        if update and update.resumable and update.new_handle:
            handle = update.new_handle
    return answer, handle
