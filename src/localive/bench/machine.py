"""What machine a benchmark ran on: CPU model, cores, memory, OS, Python, library versions, date."""

from __future__ import annotations

import datetime as dt
import os
import platform
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import psutil

from localive import __version__


@dataclass(frozen=True)
class MachineInfo:
    cpu_model: str
    logical_cores: int
    physical_cores: int | None
    ram_gib: float
    os: str
    python: str
    localive: str
    date_utc: str
    libraries: dict[str, str] = field(default_factory=dict)

    def one_line(self) -> str:
        physical = f", {self.physical_cores} physical" if self.physical_cores else ""
        libs = ", ".join(f"{name} {version}" for name, version in self.libraries.items())
        return (f"{self.cpu_model}, {self.logical_cores} logical cores{physical}, {self.ram_gib:.1f} GiB RAM, "
                f"{self.os}, Python {self.python}, localive {self.localive}" + (f", {libs}" if libs else ""))


def cpu_model(cpuinfo: str) -> str:
    """The CPU model named in /proc/cpuinfo text ('model name', or 'Hardware'/'Processor' on ARM)."""
    for key in ("model name", "hardware", "processor"):
        for line in cpuinfo.splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip().lower() == key and value.strip() and not value.strip().isdigit():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def collect(libraries: tuple[str, ...] = ("uvicorn", "websockets")) -> MachineInfo:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        cpuinfo = ""
    versions = {name: v for name in libraries if (v := _version(name)) is not None}
    return MachineInfo(
        cpu_model=cpu_model(cpuinfo),
        logical_cores=os.cpu_count() or 1,
        physical_cores=psutil.cpu_count(logical=False),
        ram_gib=psutil.virtual_memory().total / 2**30,
        os=platform.platform(terse=True),
        python=platform.python_version(),
        localive=__version__,
        date_utc=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        libraries=versions,
    )


NOISY_PCT = 10.0  # other processes' CPU share above which a measurement is flagged as disturbed


class BackgroundMeter:
    """How much CPU *other* processes used while we measured: system-wide busy time minus our processes'.

    A benchmark on a small machine is only meaningful when it has the machine to itself; this makes the
    noise visible instead of silently folding it into the numbers.
    """

    def __init__(self, *processes: psutil.Process) -> None:
        self._processes = processes
        self._start = self._sample()

    def _sample(self) -> tuple[float, float, float, float]:
        system = psutil.cpu_times()
        # Interrupt time is left out: the loopback traffic between our own processes is counted there.
        busy = system.user + getattr(system, "nice", 0.0) + system.system
        own = 0.0
        for process in self._processes:
            times = process.cpu_times()
            own += times.user + times.system
        return time.monotonic(), busy, own, getattr(system, "steal", 0.0)

    def other_pct(self) -> tuple[float, float]:
        """(other processes' CPU, hypervisor steal) since construction, in % of the whole machine."""
        now, busy, own, steal = self._sample()
        start, busy0, own0, steal0 = self._start
        capacity = max(1e-9, (now - start) * (os.cpu_count() or 1))
        return max(0.0, (busy - busy0) - (own - own0)) / capacity * 100, (steal - steal0) / capacity * 100
