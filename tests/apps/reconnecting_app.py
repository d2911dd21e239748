"""A Live app that survives the end of its connections: on `goAway` (or, if it comes first, the close that follows:
1011 "Deadline expired before operation could complete."), it reconnects with the newest
`sessionResumptionUpdate.newHandle` and carries on where it was, as Google's documentation advises.

It asks `--questions` questions, `--pause-s` apart, and prints each answer on a line of its own, then
"connections: N". Configured as any app is, by `eval "$(localive env)"` (tests/integration/test_faults.py runs it
against a server whose emulator script sends goAway every couple of seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from google import genai
from google.genai import errors, types

MODEL = "gemini-2.0-flash-live-001"


class Conversation:
    def __init__(self) -> None:
        self.client = genai.Client()
        self.handle: str | None = None  # the newest resumable handle
        self.went_away = False  # this connection heard goAway: finish the turn, then reconnect
        self.connections = 0

    def config(self) -> types.LiveConnectConfig:
        return types.LiveConnectConfig(response_modalities=[types.Modality.TEXT],
                                       session_resumption=types.SessionResumptionConfig(handle=self.handle))

    def note(self, message: types.LiveServerMessage) -> None:
        update = message.session_resumption_update
        if update is not None and update.resumable and update.new_handle:
            self.handle = update.new_handle
        if message.go_away is not None:
            self.went_away = True

    async def ask(self, session: genai.live.AsyncSession, question: str) -> str:
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text=question)]))
        answer = ""
        async for message in session.receive():  # until turnComplete
            self.note(message)
            answer += message.text or ""
        return answer

    async def listen(self, session: genai.live.AsyncSession, seconds: float) -> None:
        """Between questions: keep reading, so that a goAway is heard when it comes."""
        try:
            async with asyncio.timeout(seconds):
                while not self.went_away:
                    async for message in session.receive():
                        self.note(message)
                        if self.went_away:
                            break
        except TimeoutError:
            pass

    async def run(self, questions: list[str], pause_s: float) -> list[str]:
        answers: list[str] = []
        while len(answers) < len(questions):
            self.went_away = False
            self.connections += 1
            try:
                async with self.client.aio.live.connect(model=MODEL, config=self.config()) as session:
                    while len(answers) < len(questions) and not self.went_away:
                        answers.append(await self.ask(session, questions[len(answers)]))
                        print(answers[-1], flush=True)
                        if len(answers) < len(questions):
                            await self.listen(session, pause_s)
            except errors.APIError as exc:  # the close came before we left: resume all the same
                if exc.code != 1011:
                    raise
        return answers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=5)
    parser.add_argument("--pause-s", type=float, default=1.0)
    args = parser.parse_args()
    conversation = Conversation()
    asyncio.run(conversation.run(["which turn is this?"] * args.questions, args.pause_s))
    print(f"connections: {conversation.connections}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
