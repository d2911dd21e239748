"""Faults on demand: the `[faults]` table of an emulator script, parsed and checked (no I/O).

The real Gemini Live service misbehaves in ways an app must survive: it ends connections after a `goAway`, goes
silent, interrupts nothing, sends transcripts late, audio slower than real time or in bursts, closes during a tool
call, refuses a resumption while the old socket is open, and refuses setups when it is unavailable. An emulator
script (`localive serve --llm emulator --emulator-script FILE`) can ask for each of them::

    [faults]
    goaway_after_s = 2            # goAway 2 s into every connection, then 1011 "Deadline expired…"
    goaway_time_left_s = 1        # …the goAway's timeLeft, and the time until that close (default 1)
    silent_after_turns = 3        # after the 3rd turnComplete, nothing more is sent (the socket stays open)
    interrupted_after_turn = 1    # a spurious serverContent.interrupted after turn 1's turnComplete…
    interrupted_delay_ms = 500    # …this long after it (default 0)
    transcript_delay_ms = 800     # input/output transcriptions sent this long after they were made
    audio_pace = 0.5              # output audio sent at half real-time speed (or, instead,
    # audio_burst_ms = 1000       # output audio held and released every second)
    close_after_tool_call_ms = 0  # 1011 "Internal error encountered." this long after each toolCall
    refuse_resume_while_open = true  # a resumption of a handle sent on a still-open connection: 1011
    setup_error = { code = 1011, reason = "The service is currently unavailable.", count = 1 }

docs/testing.md ("Faults on demand") says what each reproduces. This module only reads the table; the server
applies it: the goAway through the connection's `Limits` (cli.py), the setup checks and the outgoing messages'
timing in server/faults.py and server/fault_stage.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from localive.protocol.errors import MAX_REASON_BYTES

# close codes a server may send (RFC 6455 §7.4: 1004-1006 and 1015 never go on the wire; 1016-2999 are reserved)
SENDABLE_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})
DEFAULT_GOAWAY_TIME_LEFT_S = 1.0


class FaultsError(ValueError):
    """The `[faults]` table of an emulator script is not valid; the message names the key."""


@dataclass(frozen=True)
class SetupError:
    """The first `count` setups of the server are closed with this code and reason."""

    code: int
    reason: str
    count: int = 1


@dataclass(frozen=True)
class Faults:
    goaway_after_s: float | None = None  # None: no goAway of its own (--max-connection-s may still cut)
    goaway_time_left_s: float = DEFAULT_GOAWAY_TIME_LEFT_S
    silent_after_turns: int | None = None
    interrupted_after_turn: int | None = None
    interrupted_delay_ms: float = 0.0
    transcript_delay_ms: float = 0.0
    audio_pace: float | None = None  # a fraction of real time: 0.5 = audio arrives at half speed
    audio_burst_ms: float | None = None
    close_after_tool_call_ms: float | None = None
    refuse_resume_while_open: bool = False
    setup_error: SetupError | None = None

    @property
    def connection_s(self) -> float | None:
        """How long each connection lasts with the goAway fault (goAway, then the close), or None."""
        if self.goaway_after_s is None:
            return None
        return self.goaway_after_s + self.goaway_time_left_s

    @property
    def shapes_output(self) -> bool:
        """Whether the outgoing messages of each connection go through the fault stage (server/fault_stage.py)."""
        return (self.silent_after_turns is not None or self.interrupted_after_turn is not None
                or self.transcript_delay_ms > 0 or self.audio_pace is not None or self.audio_burst_ms is not None
                or self.close_after_tool_call_ms is not None)

    @property
    def any(self) -> bool:
        return self != NO_FAULTS


NO_FAULTS = Faults()
FAULT_KEYS = ("goaway_after_s", "goaway_time_left_s", "silent_after_turns", "interrupted_after_turn",
         "interrupted_delay_ms", "transcript_delay_ms", "audio_pace", "audio_burst_ms", "close_after_tool_call_ms",
         "refuse_resume_while_open", "setup_error")
_SETUP_ERROR_KEYS = ("code", "reason", "count")


def parse_faults(table: object, source: str = "script") -> Faults:
    """The faults a script's `[faults]` table asks for (None or absent: none). Raises FaultsError naming the key."""
    if table is None:
        return NO_FAULTS
    where = f"{source}: [faults]"
    if not isinstance(table, dict):
        raise FaultsError(f"{source}: 'faults' must be a table ([faults])")
    if unknown := set(table) - set(FAULT_KEYS):
        raise FaultsError(f"{where}: unknown keys {sorted(unknown)}; expected {', '.join(FAULT_KEYS)}")
    for needs, key in (("goaway_after_s", "goaway_time_left_s"), ("interrupted_after_turn", "interrupted_delay_ms")):
        if key in table and needs not in table:
            raise FaultsError(f"{where}: '{key}' needs '{needs}'")
    if "audio_pace" in table and "audio_burst_ms" in table:
        raise FaultsError(f"{where}: 'audio_pace' and 'audio_burst_ms' exclude each other")
    refuse = table.get("refuse_resume_while_open", False)
    if not isinstance(refuse, bool):
        raise FaultsError(f"{where}: 'refuse_resume_while_open' must be true or false")
    return Faults(
        goaway_after_s=_number(table, "goaway_after_s", where, positive=True),
        goaway_time_left_s=_or(_number(table, "goaway_time_left_s", where), DEFAULT_GOAWAY_TIME_LEFT_S),
        silent_after_turns=_count(table, "silent_after_turns", where, least=0),
        interrupted_after_turn=_count(table, "interrupted_after_turn", where, least=1),
        interrupted_delay_ms=_or(_number(table, "interrupted_delay_ms", where), 0.0),
        transcript_delay_ms=_or(_number(table, "transcript_delay_ms", where), 0.0),
        audio_pace=_number(table, "audio_pace", where, positive=True),
        audio_burst_ms=_number(table, "audio_burst_ms", where, positive=True),
        close_after_tool_call_ms=_number(table, "close_after_tool_call_ms", where),
        refuse_resume_while_open=refuse,
        setup_error=_setup_error(table.get("setup_error"), f"{where} setup_error"),
    )


def _number(table: dict[str, object], key: str, where: str, *, positive: bool = False) -> float | None:
    """A number of seconds or milliseconds (or a pace): >= 0, or > 0 when `positive`; None when absent."""
    if key not in table:
        return None
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or (positive and value == 0):
        raise FaultsError(f"{where}: '{key}' must be a number {'> 0' if positive else '>= 0'}, not {value!r}")
    return float(value)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _count(table: dict[str, object], key: str, where: str, *, least: int) -> int | None:
    if key not in table:
        return None
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise FaultsError(f"{where}: '{key}' must be an integer >= {least}, not {value!r}")
    return value


def _setup_error(value: object, where: str) -> SetupError | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise FaultsError(f"{where}: must be a table, e.g. {{ code = 1011, reason = \"…\", count = 1 }}")
    if unknown := set(value) - set(_SETUP_ERROR_KEYS):
        raise FaultsError(f"{where}: unknown keys {sorted(unknown)}; expected code, reason, count")
    code, reason = value.get("code"), value.get("reason", "")
    if isinstance(code, bool) or not isinstance(code, int) or not 1000 <= code <= 4999:
        raise FaultsError(f"{where}: 'code' must be a close code from 1000 to 4999, not {code!r}")
    if code < 3000 and code not in SENDABLE_CLOSE_CODES:
        raise FaultsError(f"{where}: 'code' {code} cannot be sent in a close frame; use one of "
                          f"{', '.join(map(str, sorted(SENDABLE_CLOSE_CODES)))} or 3000-4999")
    if not isinstance(reason, str):
        raise FaultsError(f"{where}: 'reason' must be a string")
    if len(reason.encode("utf-8")) > MAX_REASON_BYTES:
        raise FaultsError(f"{where}: 'reason' must fit a close frame: at most {MAX_REASON_BYTES} bytes of UTF-8, "
                          f"not {len(reason.encode('utf-8'))}")
    count = _count(value, "count", where, least=1)
    return SetupError(code, reason, 1 if count is None else count)
