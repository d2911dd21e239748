"""What `localive relay` and `localive serve --replay` add to a turn (issue 20).

Three servers on free ports: an emulator (`serve --llm emulator --voice off`, the yardstick: its answers cost
nothing), a relay in front of it recording to a cassette, and a replay of that cassette (`--replay-timing fast`).
One raw WebSocket client (the `websockets` library, on the plain listeners) runs the same text turns against each,
one session with N turns, interleaved round by round so that all three see the same machine; reported: the time
from sending a turn to its `turnComplete`, median and p90, and each path's ratio to the direct one.

    python -m benchmarks.relay [--turns 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from localive.testing.server import LocaliveServer, start_relay, start_server

SETUP = {"setup": {"model": "models/gemini-2.0-flash-live-001", "generationConfig": {"responseModalities": ["TEXT"]}}}


def turn_message(n: int) -> str:
    return json.dumps({"clientContent": {"turns": [{"role": "user", "parts": [{"text": f"question {n}"}]}],
                                         "turnComplete": True}})


async def open_session(server: LocaliveServer) -> ClientConnection:
    key = server.env.get("GEMINI_API_KEY", "localive")
    ws = await connect(f"{server.live_url}?key={key}", max_size=None)
    await ws.send(json.dumps(SETUP))
    json.loads(await ws.recv())  # setupComplete
    return ws


async def one_turn(ws: ClientConnection, n: int) -> float:
    started = time.perf_counter()
    await ws.send(turn_message(n))
    while "turnComplete" not in (json.loads(await ws.recv()).get("serverContent") or {}):
        pass
    return time.perf_counter() - started


async def measure(servers: dict[str, LocaliveServer], turns: int) -> dict[str, list[float]]:
    sessions = {name: await open_session(server) for name, server in servers.items()}
    times: dict[str, list[float]] = {name: [] for name in servers}
    try:
        for n in range(turns):
            for name, ws in sessions.items():
                times[name].append(await one_turn(ws, n))
    finally:
        for ws in sessions.values():
            await ws.close()
    return times


def report(times: dict[str, list[float]]) -> str:
    direct = statistics.median(times["direct"])
    lines = [f"{'path':<8} {'p50 ms':>8} {'p90 ms':>8} {'p50 vs direct':>14}"]
    for name, values in times.items():
        p50, p90 = statistics.median(values), statistics.quantiles(values, n=10)[-1]
        lines.append(f"{name:<8} {p50 * 1000:8.2f} {p90 * 1000:8.2f} {p50 / direct:13.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="localive-relay-bench-") as where:
        work = Path(where)
        direct = start_server(work / "direct", "--llm", "emulator", "--voice", "off")
        try:
            relay = start_relay(work / "relay", direct, "--record", str(work / "cassettes"))
            try:
                recorded = asyncio.run(measure({"direct": direct, "relay": relay}, args.turns))
            finally:
                relay.stop()
            replay = start_server(work / "replay", "--replay", str(work / "cassettes"), "--replay-timing", "fast")
            try:
                # the replay answers only the recorded session: the direct one runs again beside it
                again = asyncio.run(measure({"direct": direct, "replay": replay}, args.turns))
            finally:
                replay.stop()
        finally:
            direct.stop()
    print(report({"direct": recorded["direct"] + again["direct"], "relay": recorded["relay"],
                  "replay": again["replay"]}))


if __name__ == "__main__":
    main()
