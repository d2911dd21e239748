"""Per-turn stage timings, logged once per turn (the voice benchmark reads them from the server log).

Moments are read on the session's `Clock` (its monotonic time), so a test in virtual time logs virtual spans."""

from __future__ import annotations

from dataclasses import dataclass, field

from localive.clock import SYSTEM_CLOCK, Clock


@dataclass
class TurnTimings:
    clock: Clock = SYSTEM_CLOCK
    started: float = field(init=False)  # the user's turn ended (VAD, activityEnd, text): when this was made
    transcribed: float | None = None  # pending speech is in the history
    first_token: float | None = None  # the LLM's first text
    first_output: float | None = None  # the first text or audio part was queued for the client
    asr_compute_s: float = 0.0
    asr_audio_s: float = 0.0
    tts_compute_s: float = 0.0
    tts_audio_s: float = 0.0

    def __post_init__(self) -> None:
        self.started = self.clock.monotonic()

    def mark_transcribed(self) -> None:
        self.transcribed = self.clock.monotonic()

    def mark_output(self) -> None:
        if self.first_output is None:
            self.first_output = self.clock.monotonic()

    def mark_token(self) -> None:
        if self.first_token is None:
            self.first_token = self.clock.monotonic()

    def log_fields(self) -> str:
        def ms(t: float | None) -> str:
            return "-" if t is None else f"{(t - self.started) * 1000:.1f}"

        def rtf(compute: float, audio: float) -> str:
            return f"{compute / audio:.3f}" if audio else "-"

        return (f"asr_done_ms={ms(self.transcribed)} llm_first_token_ms={ms(self.first_token)} "
                f"first_output_ms={ms(self.first_output)} asr_rtf={rtf(self.asr_compute_s, self.asr_audio_s)} "
                f"tts_rtf={rtf(self.tts_compute_s, self.tts_audio_s)}")
