"""Does one hostile client slow everyone else down? Another session's turn latency while it attacks.

    python -m benchmarks.attacks [--turns 100] [--attacks declarations,parts,...]

Starts a private server (the emulator model, which repeats the user's words, so that the server's own work is
measured; API keys on; URL context allowed to 127.0.0.1). A victim session runs text turns, first on the idle
server, then while one attacking client, in a process of its own, repeats the worst message of one kind as
fast as the server takes it. Prints p50/p90/max turn latency per attack and its ratio to the idle server's.

With two or more cores, the server is pinned to the first core and both clients to the others, for the idle
measurement too: a real attacker's own work (building and compressing its messages) happens on its own machine,
and would otherwise take the server's core here; the attacker also runs at the lowest CPU priority, so that it
does not delay the victim's client either.
The attacks are those of security findings F1, F2, F4, F6, F9, F11 and F18, each at the largest
size the server still accepts; docs/security.md describes them and has the results.
"""

from __future__ import annotations

import argparse
import asyncio
import bz2
import contextlib
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from localive.bench.machine import collect as machine
from localive.bench.server import RunningServer, free_port, start_server

KEY = "bench-attacks-key"
MODEL = "models/gemini-2.0-flash-live-001"
TIMEOUT_S = 60.0
# the model repeats the user's words, and "check this" makes it call `check` with arguments that backtrack
# catastrophically against the attacker's ^(a+)+$ in Python's `re`
SCRIPT = ('default = "{input}"\ndelay_ms = 0\n[[reply]]\nmatch = "^check this"\ncall = "check"\n'
          f'args = {{ s = "{"a" * 40}!" }}\ntext = "checked"\n')
COMPRESSION: dict[str, Any] = {"contextWindowCompression": {"slidingWindow": {}}}


def live_url(server: RunningServer) -> str:
    return f"{server.live_url}?key={KEY}"


async def open_session(url: str, **setup: Any) -> ClientConnection:
    ws = await connect(url, open_timeout=TIMEOUT_S, max_size=2**22, proxy=None)
    await ws.send(json.dumps({"setup": {"model": MODEL, "generationConfig": {"responseModalities": ["TEXT"]},
                                        **setup}}))
    async with asyncio.timeout(TIMEOUT_S):
        while "setupComplete" not in json.loads(await ws.recv()):
            pass
    return ws


async def text_turn(ws: ClientConnection, text: str) -> None:
    await ws.send(json.dumps({"clientContent": {"turns": [{"role": "user", "parts": [{"text": text}]}],
                                                "turnComplete": True}}))
    async with asyncio.timeout(TIMEOUT_S):
        while not json.loads(await ws.recv()).get("serverContent", {}).get("turnComplete"):
            pass


# --- the attacks: each sends one kind of message again and again --------------------------------------------------

def _declarations(round_: int) -> dict[str, Any]:
    """512 declarations (the most a message may hold), with schemas never seen before: about 190 KB."""
    return {"contextUpdate": {"tools": {"tools": [{"functionDeclarations": [
        {"name": f"f{i}", "description": "d" * 200, "parametersJsonSchema": {
            "type": "object", "properties": {f"p{round_}_{i}": {"type": "string", "pattern": f"^x{i}y{round_}$"}},
            "required": [f"p{round_}_{i}"]}} for i in range(512)]}]}}}


PARTS = json.dumps({"clientContent": {"turns": [{"parts": [{"text": "x"}] * 999}] * 9}})  # ~19,000 values
TOO_BIG = json.dumps({"contextUpdate": {"tools": {"tools": [{"functionDeclarations": [
    {"name": f"f{i}", "parametersJsonSchema": {"type": "object"}} for i in range(6000)]}]}}})  # refused: 1007
HISTORY = json.dumps({"clientContent": {"turns": [{"parts": [{"text": "y" * 900_000}]}]}})
REDOS = {"functionDeclarations": [{"name": "check", "parametersJsonSchema": {
    "type": "object", "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}}}]}


async def _attack(url: str, stop: Event, frames: Callable[[int], str], pause_s: float = 0.0, **setup: Any) -> int:
    """Send `frames(n)` again and again (a `pause_s` apart), reconnecting whenever the server closes, as an attacker
    would; return how many were sent."""
    sent = 0
    while not stop.is_set():
        try:
            ws = await open_session(url, **setup)
            async with ws:
                while not stop.is_set():
                    await ws.send(frames(sent))
                    sent += 1
                    await asyncio.sleep(pause_s)
        except ConnectionClosed:  # refused or ended by the server: come back
            sent += 1
    return sent


def _turn(text: str) -> Callable[[int], str]:
    """A turn that makes the server work (code runs, URL fetches, function calls), each interrupting the last."""
    frame = json.dumps({"clientContent": {"turns": [{"parts": [{"text": text}]}], "turnComplete": True}})
    return lambda _: frame


TURN_PAUSE_S = 0.5


def _mint_forever(base: str, stop: Event) -> int:
    body = json.dumps({"uses": 1, "bidiGenerateContentSetup": {
        "systemInstruction": {"parts": [{"text": "z" * 60_000}]}}}).encode()
    sent = 0
    while not stop.is_set():
        request = urllib.request.Request(f"{base}/v1alpha/auth_tokens", data=body, method="POST",
                                         headers={"x-goog-api-key": KEY, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # our own server
                response.read()
        except (urllib.error.HTTPError, OSError):
            pass
        sent += 1
    return sent


class _HostilePages(BaseHTTPRequestHandler):
    BOMB = bz2.compress(b"\0" * (256 * 2**20))  # 256 MB of zeros in ~200 bytes, declared as a "charset"
    DEEP = ("<html><body>" + "<div>" * 190_000 + "deep" + "</div>" * 190_000 + "</body></html>").encode()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body, kind = ((self.BOMB, "text/plain; charset=bz2_codec") if self.path.startswith("/bomb")
                      else (self.DEEP, "text/html"))
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _attacker(kind: str, url: str, base: str, stop: Event, sent: Any) -> None:
    """The attacking client: a process of its own, at the lowest CPU priority, so that its own work (building and
    compressing messages) does not delay the victim's client, which shares its core(s)."""
    os.nice(19)
    if kind == "tokens":
        sent.value = _mint_forever(base, stop)
        return
    if kind == "urls":
        pages = ThreadingHTTPServer(("127.0.0.1", free_port()), _HostilePages)
        threading.Thread(target=pages.serve_forever, daemon=True).start()
        port = pages.server_address[1]
        links = " ".join(f"http://127.0.0.1:{port}/{'bomb' if i % 2 else 'deep'}/{i}" for i in range(20))
        sent.value = asyncio.run(_attack(url, stop, _turn(links), TURN_PAUSE_S, tools=[{"urlContext": {}}]))
        return
    if kind == "code":
        program = "```python\nwhile True:\n    pass\n```"
        sent.value = asyncio.run(_attack(url, stop, _turn(program), TURN_PAUSE_S, tools=[{"codeExecution": {}}]))
        return
    if kind == "redos":
        sent.value = asyncio.run(_attack(url, stop, _turn("check this"), TURN_PAUSE_S, tools=[REDOS]))
        return
    frames: dict[str, Callable[[int], str]] = {
        "declarations": lambda i: json.dumps(_declarations(i)),
        "parts": lambda i: PARTS,
        "refused": lambda i: TOO_BIG,
        "history": lambda i: HISTORY,
    }
    sent.value = asyncio.run(_attack(url, stop, frames[kind], **COMPRESSION))


ATTACKS = {
    "declarations": "contextUpdate with 512 new function declarations (190 KB), repeated (F2)",
    "parts": "clientContent of 9 turns × 999 parts (the most values a message may hold), repeated (F2)",
    "refused": "contextUpdate with 6,000 declarations: refused 1007, reconnect, again (F2)",
    "history": "900 KB unfinished turns, repeated, with compression (F6)",
    "tokens": "token mints with a 60 KB locked setup, repeated (F9)",
    "urls": "turns with 20 URLs: bz2 'charset' bombs and 190,000 nested <div>s (F1, F4)",
    "code": "turns running an endless loop in the sandbox, each interrupting the last (F7, F11)",
    "redos": "turns whose function arguments backtrack against ^(a+)+$ (F18)",
}


async def _victim(server: RunningServer, turns: int) -> list[float]:
    ws = await open_session(live_url(server))
    seconds = []
    async with ws:
        for i in range(turns):
            started = time.perf_counter()
            await text_turn(ws, f"ping {i}")
            seconds.append(time.perf_counter() - started)
            await asyncio.sleep(0.1)
    return seconds


def _summary(seconds: list[float]) -> tuple[float, float, float]:
    ordered = sorted(seconds)
    return statistics.median(ordered), ordered[int(0.9 * (len(ordered) - 1))], ordered[-1]


def _pin(pid: int, cores: set[int]) -> None:
    """Move every thread of a process to `cores` (threads started later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task.name), cores)


def isolate(server: RunningServer) -> str:
    """Pin the server to core 0 and this process (and the attacker it starts) to the others; say what was done."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return "server and clients share one core"
    _pin(server.process.pid, {cores[0]})
    _pin(os.getpid(), set(cores[1:]))
    return f"server pinned to core {cores[0]}, clients to core(s) {', '.join(map(str, cores[1:]))}"


def measure(server: RunningServer, attacks: Sequence[str], turns: int, warmup_s: float = 2.0) -> list[str]:
    """The report's table rows: idle first, then each attack."""
    idle = _summary(asyncio.run(_victim(server, turns)))
    rows = [f"| idle server | {idle[0] * 1000:.1f} | {idle[1] * 1000:.1f} | {idle[2] * 1000:.1f} | 1.00 | 1.00 | – |"]
    context = multiprocessing.get_context("spawn")
    for kind in attacks:
        stop, sent = context.Event(), context.Value("i", 0)
        attacker = context.Process(target=_attacker, args=(kind, live_url(server), f"http://127.0.0.1:"
                                                           f"{server.plain_port}", stop, sent), daemon=True)
        attacker.start()
        print(f"attacks: {kind} …", file=sys.stderr, flush=True)
        time.sleep(warmup_s)
        try:
            under = _summary(asyncio.run(_victim(server, turns)))
        finally:
            stop.set()
            attacker.join(timeout=60)
            if attacker.is_alive():
                attacker.kill()
        rows.append(f"| {ATTACKS[kind]} | {under[0] * 1000:.1f} | {under[1] * 1000:.1f} | {under[2] * 1000:.1f} "
                    f"| {under[0] / idle[0]:.2f} | {under[1] / idle[1]:.2f} | {sent.value} |")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.attacks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=100,
                        help="victim turns per measurement (default 100; with few, an attacker may not have started)")
    parser.add_argument("--attacks", default=",".join(ATTACKS),
                        help=f"comma-separated, from: {', '.join(ATTACKS)} (default: all)")
    args = parser.parse_args(argv)
    attacks = [a.strip() for a in args.attacks.split(",") if a.strip()]
    if unknown := [a for a in attacks if a not in ATTACKS]:
        parser.error(f"unknown attacks: {', '.join(unknown)}")
    with tempfile.TemporaryDirectory(prefix="localive-attacks-") as scratch:
        workdir = Path(scratch)
        script = workdir / "script.toml"
        script.write_text(SCRIPT, encoding="utf-8")
        server = start_server(workdir, "--llm", "emulator", "--voice", "off", "--admission", "off", "--api-key", KEY,
                              "--emulator-script", str(script), "--url-allow", "127.0.0.1")
        try:
            placement = isolate(server)
            rows = measure(server, attacks, args.turns)
        finally:
            server.stop()
    print(f"Victim: one session's text turns (send → turnComplete), {args.turns} per row; one attacking client.")
    print(f"Machine: {machine().one_line()}; {placement}.\n")
    print("| while one client sends… | p50 ms | p90 ms | max ms | p50 × idle | p90 × idle | attack messages |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
