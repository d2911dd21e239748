"""A naive Live app: one connection, no resumption, goAway ignored. It asks `--questions` questions, `--pause-s`
apart, printing each answer. Against a server that ends connections (a goAway fault, or the real service's
~10-minute limit) it dies with the close: 1011 "Deadline expired before operation could complete."
(tests/integration/test_faults.py shows it, beside tests/apps/reconnecting_app.py, which survives).
"""

from __future__ import annotations

import argparse
import asyncio

from google import genai
from google.genai import types

MODEL = "gemini-2.0-flash-live-001"


async def run(questions: int, pause_s: float) -> None:
    client = genai.Client()
    config = types.LiveConnectConfig(response_modalities=[types.Modality.TEXT])
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        for i in range(questions):
            await session.send_client_content(
                turns=types.Content(role="user", parts=[types.Part(text="which turn is this?")]))
            print("".join([message.text or "" async for message in session.receive()]), flush=True)
            if i + 1 < questions:
                await asyncio.sleep(pause_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=5)
    parser.add_argument("--pause-s", type=float, default=1.0)
    args = parser.parse_args()
    asyncio.run(run(args.questions, args.pause_s))


if __name__ == "__main__":
    main()
