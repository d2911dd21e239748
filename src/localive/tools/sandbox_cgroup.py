"""A memory cgroup per sandboxed run: the kernel's bound on the memory of a whole run, whatever its processes do.

RLIMIT_AS bounds each process, and RLIMIT_NPROC how many there are, so without a cgroup a run could hold their
product: 24 children touching 480 MB each took 10 GB of host RAM from one run (security finding F7). A memory cgroup
counts every page its processes touch, tmpfs included, and when the run goes over its limit the kernel's OOM killer
acts inside it, on the run's own processes only.

Where. cgroup v2 (``memory.max``, ``memory.swap.max`` 0, ``memory.oom.group`` 1, ``pids.max``) or v1
(``memory.limit_in_bytes``, ``memory.memsw.limit_in_bytes``; ``pids.max`` in the pids hierarchy). A run's cgroup is
named after its uid (claimed host-wide, so the name is unique) and made under the server's own cgroup where the kernel
allows it, so that the run also counts against whatever bounds the server (systemd ``MemoryMax=``, ``docker
--memory``), else under the hierarchy's root. In v2 a cgroup's children get the memory controller only if its
``cgroup.subtree_control`` lists it, which a cgroup holding processes cannot change: a server in a systemd service
thus uses the root. Containers usually mount /sys/fs/cgroup read-only: then :func:`find` finds nothing, and the
sandbox lowers the rlimits instead so that the run's total stays bounded (sandbox.py).

How a run joins without ``preexec_fn`` (which may deadlock in a multi-threaded server): it is spawned as
``sh -c 'read -r go && exec "$@" </dev/null' … prlimit … bwrap …``, which waits on its stdin. The server writes its
pid into ``cgroup.procs``, then a line; only then does the process exec prlimit and bwrap, and everything they start
is born in the cgroup. If the pid cannot be moved, the server closes the pipe unwritten and ``sh`` exits at once.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from dataclasses import dataclass

log = logging.getLogger("localive.tools.sandbox")

SH = "/bin/sh"
GATE = 'read -r go && exec "$@" </dev/null'  # sh -c GATE NAME ARGV…: run ARGV once a line arrives on stdin


@dataclass(frozen=True)
class Place:
    """A cgroup directory under which runs' cgroups are made, and what they set there."""

    version: int  # 1 or 2
    parent: str
    controllers: frozenset[str]  # "memory" and/or "pids"


@dataclass(frozen=True)
class Cgroups:
    """Where runs' cgroups go; no places: no cgroup could be used, and ``why`` says why."""

    places: tuple[Place, ...] = ()
    why: str = ""

    @property
    def memory(self) -> bool:
        return any("memory" in place.controllers for place in self.places)

    def describe(self) -> str:
        return "; ".join(f"cgroup v{p.version} {'+'.join(sorted(p.controllers))} under {p.parent}"
                         for p in self.places)


class RunCgroup:
    """The cgroups of one run (one per hierarchy): made with their limits, joined, read, removed."""

    def __init__(self, paths: list[tuple[Place, str]]) -> None:
        self.paths = paths

    @classmethod
    def create(cls, cgroups: Cgroups, name: str, memory_bytes: int, processes: int) -> RunCgroup:
        """Make the cgroups of a run, with its limits; raises OSError (and leaves nothing) if it cannot. Blocking."""
        made = cls([])
        try:
            for place in cgroups.places:
                path = os.path.join(place.parent, name)
                _fresh_directory(path)
                made.paths.append((place, path))
                for file, value, required in _settings(place, memory_bytes, processes):
                    target = os.path.join(path, file)
                    if required or os.path.exists(target):
                        _write(target, value)
        except OSError:
            made.remove()
            raise
        return made

    def join(self, pid: int) -> None:
        """Move process ``pid`` into the run's cgroups; raises OSError."""
        for _, path in self.paths:
            _write(os.path.join(path, "cgroup.procs"), str(pid))

    def oom_kills(self) -> int:
        """How many of the run's processes the OOM killer has killed (0 where the kernel does not say)."""
        for place, path in self.paths:
            if "memory" in place.controllers:
                file = "memory.events" if place.version == 2 else "memory.oom_control"
                with contextlib.suppress(OSError, ValueError):
                    return _field(os.path.join(path, file), "oom_kill")
        return 0

    def peak_bytes(self) -> int | None:
        """The most memory the run has held, where the kernel keeps it."""
        for place, path in self.paths:
            if "memory" in place.controllers:
                file = "memory.peak" if place.version == 2 else "memory.max_usage_in_bytes"
                with contextlib.suppress(OSError, ValueError), open(os.path.join(path, file)) as f:
                    return int(f.read())
        return None

    def remove(self, timeout_s: float = 2.0) -> bool:
        """Remove the run's cgroups once their processes are gone; False (logged) if one outlives ``timeout_s``."""
        deadline, removed = time.monotonic() + timeout_s, True
        for _, path in self.paths:
            while True:
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError as error:
                    if error.errno != errno.EBUSY or time.monotonic() > deadline:
                        log.error("cannot remove the sandbox cgroup %s: %s", path, error.strerror)
                        removed = False
                        break
                    time.sleep(0.01)  # its last processes are still exiting
        return removed


def find(probe: str, memory_bytes: int, processes: int) -> Cgroups:
    """The cgroups that runs can use here: each candidate is tried by making a cgroup ``probe`` with these limits.

    Blocking (milliseconds). Never raises: where nothing works, ``Cgroups.why`` says why.
    """
    try:
        mounts, own = _mounts(), _own_cgroups()
    except OSError as error:
        return Cgroups(why=f"cannot read /proc/self/mountinfo or /proc/self/cgroup: {error.strerror}")
    places: list[Place] = []
    problems: list[str] = []
    for mountpoint, root in [(m, r) for m, r, fstype, _ in mounts if fstype == "cgroup2"]:
        try:
            with open(os.path.join(mountpoint, "cgroup.controllers")) as f:
                if "memory" not in f.read().split():
                    continue  # hybrid mode's unified hierarchy: the controllers are v1's
        except OSError:
            continue
        for parent in _candidates(mountpoint, root, own.get("")):
            try:
                with open(os.path.join(parent, "cgroup.subtree_control")) as f:
                    enabled = set(f.read().split())
            except OSError:
                continue
            if "memory" in enabled and _works(Place(2, parent, frozenset({"memory"} | {"pids"} & enabled)),
                                              probe, memory_bytes, processes, places, problems):
                break
        if places:
            return Cgroups(tuple(places))
    for controller in ("memory", "pids"):
        for mountpoint, root in [(m, r) for m, r, fstype, options in mounts
                                 if fstype == "cgroup" and controller in options]:
            if any(_works(Place(1, parent, frozenset({controller})), probe, memory_bytes, processes, places, problems)
                   for parent in _candidates(mountpoint, root, own.get(controller))):
                break
        if controller == "memory" and not places:
            break  # a pids limit alone does not bound memory
    if places:
        return Cgroups(tuple(places))
    return Cgroups(why="; ".join(problems) or "no cgroup hierarchy with the memory controller is mounted")


def _works(place: Place, probe: str, memory_bytes: int, processes: int, places: list[Place],
           problems: list[str]) -> bool:
    try:
        RunCgroup.create(Cgroups((place,)), probe, memory_bytes, processes).remove()
    except OSError as error:
        problems.append(f"cannot make a cgroup under {place.parent}: {error.strerror}")
        return False
    places.append(place)
    return True


def _candidates(mountpoint: str, root: str, own: str | None) -> list[str]:
    """The server's own cgroup in this hierarchy (if it is visible through this mount), then the mount's root."""
    found = []
    if own is not None:
        relative = os.path.relpath(own, root)
        if relative == "." or not relative.startswith(".."):
            found.append(os.path.normpath(os.path.join(mountpoint, relative)))
    if mountpoint not in found:
        found.append(mountpoint)
    return [path for path in found if os.path.isdir(path)]


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(mount point, root within the hierarchy, fstype, super options) of each cgroup mount."""
    found = []
    with open("/proc/self/mountinfo") as lines:
        for line in lines:
            fields, _, rest = line.partition(" - ")
            fstype, _, options = [*rest.split(), "", "", ""][:3]
            if fstype in ("cgroup", "cgroup2"):
                parts = fields.split()
                found.append((_unescape(parts[4]), _unescape(parts[3]), fstype, set(options.split(","))))
    return found


def _own_cgroups() -> dict[str, str]:
    """The server's cgroup in each hierarchy, by controller ("" for v2)."""
    found = {}
    with open("/proc/self/cgroup") as lines:
        for line in lines:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(","):
                found[controller] = path
    return found


def _settings(place: Place, memory_bytes: int, processes: int) -> list[tuple[str, str, bool]]:
    """(file, value, required) to write in a run's cgroup, in order: no swap, and the OOM killer takes the run."""
    settings = []
    if "memory" in place.controllers:
        if place.version == 2:
            settings += [("memory.max", str(memory_bytes), True), ("memory.swap.max", "0", False),
                         ("memory.oom.group", "1", False)]
        else:  # memsw (memory + swap) after the memory limit: it may not be below it
            settings += [("memory.limit_in_bytes", str(memory_bytes), True),
                         ("memory.memsw.limit_in_bytes", str(memory_bytes), False)]
    if "pids" in place.controllers:
        settings.append(("pids.max", str(processes), True))
    return settings


def _fresh_directory(path: str) -> None:
    """Make ``path``; one left by a server that died is removed first (its processes died with it)."""
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(path)
    os.mkdir(path)


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _field(path: str, name: str) -> int:
    with open(path) as lines:
        for line in lines:
            key, _, value = line.partition(" ")
            if key == name:
                return int(value)
    return 0


def _unescape(path: str) -> str:
    return path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
