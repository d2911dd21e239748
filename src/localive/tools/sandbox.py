"""The sandbox that runs model-written Python for the code-execution tool.

Threat model: the program comes from the model, and the model's input comes from whoever talks to the server, so
the program is hostile. It must not see or change anything of the host (files, the server's environment with its API
keys, other sessions' runs), reach any network (the server's own ports included), take the host down (fork bombs,
memory, disk, CPU, floods of output), outlive its run, or keep other clients' code from running. It may compute,
print, start a few processes and write scratch files in a private /tmp.

One run is one process tree, started as root and dropped at once to an unprivileged uid of its own:

    server (root) ─fork→ setsid, setgroups([]), setgid/setuid(U)          (subprocess's own, no Python after fork)
        exec sh -c 'read -r go && exec "$@"'                              (waits until moved into its cgroup)
        exec prlimit --as … --nproc … --fsize … --cpu … --nofile … --core=0   (util-linux: the rlimits)
        exec bwrap --unshare-all --unshare-user --disable-userns …        (namespaces, mounts, seccomp)
            ─clone→ pid 1 of a new pid namespace: exec nice -n 19 python3 -I -u /main.py

* A run first gets a turn (sandbox_admission.py): at most ``concurrent_runs`` at once, ``runs_per_owner`` per owner
  (who asked: the caller passes it), the others wait in a fair line for at most ``wait_s`` and are then not run.
* U comes from a pool of uids (sandbox_uids.py) that no account uses, one per concurrent run: RLIMIT_NPROC counts the
  processes of a uid, so two runs under one uid would share one budget. Root ignores RLIMIT_NPROC; U does not, and
  within bwrap's user namespace it has no capability in the host's namespace. A uid is claimed across server
  processes with a lock file in a directory that only root can write.
* Memory: a cgroup per run (sandbox_cgroup.py) bounds the whole run to ``run_memory_bytes``. Where no cgroup can be
  made, the rlimits are lowered so that processes × address space (plus the tmpfs) stays within the same bound.
* bwrap gives the program new user, pid, network, ipc, uts and cgroup namespaces: no network interface but a
  loopback of its own, no process of the host to see or signal. Its filesystem is an empty, read-only root with
  /usr bound read-only (but an empty /usr/local, where pip installs system-wide; /bin, /lib… as on the host), a
  fresh /proc, a minimal read-only /dev, the program at /main.py, and size-limited tmpfs mounts on /tmp (the working
  directory) and /dev/shm. No /etc, /root, /home or project files. ``--disable-userns`` forbids nested user
  namespaces; ``--new-session`` detaches the program from any terminal.
* prlimit and bwrap start with a tiny explicit environment (PATH, LANG, HOME), which is all that the program, and
  any ``/proc/*/environ`` it can read, holds: the server's environment (API keys) never gets in.
* A seccomp filter (sandbox_seccomp.py, handed to ``bwrap --seccomp``) refuses syscalls that enlarge the kernel's
  attack surface or allocate memory that RLIMIT_AS does not count.
* The wall-time limit is enforced here. On expiry, on cancellation and at the end of every run every process under U
  but bwrap is SIGKILLed: the program is pid 1 of its pid namespace (``--as-pid-1``), so the kernel takes all of the
  namespace down with it, and bwrap reaps it and exits. U goes back to the pool once nothing runs under it. Should
  the server die, ``--die-with-parent`` kills bwrap and the program.

If any of this cannot be built, :meth:`PythonSandbox.check` raises :class:`SandboxUnavailable`; code never runs
outside the sandbox. docs/code-execution.md has the details and what was verified.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import platform
import pwd
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from localive.tools import sandbox_cgroup
from localive.tools.sandbox_admission import Admission
from localive.tools.sandbox_cgroup import Cgroups, RunCgroup
from localive.tools.sandbox_command import PYTHON, SandboxUnavailable, command, mapped, memfd, spawn_options, tool
from localive.tools.sandbox_output import Output, exit_note, size
from localive.tools.sandbox_seccomp import seccomp_filter
from localive.tools.sandbox_uids import UID_POOL, UidPool, UnsafeClaims, kill_uid

__all__ = ["BUSY", "OUTCOME_DEADLINE_EXCEEDED", "OUTCOME_FAILED", "OUTCOME_OK", "UID_POOL", "CodeSandbox",
           "PythonSandbox", "RunResult", "SandboxLimits", "SandboxUnavailable"]

log = logging.getLogger(__name__)

OUTCOME_OK = "OUTCOME_OK"
OUTCOME_FAILED = "OUTCOME_FAILED"
OUTCOME_DEADLINE_EXCEEDED = "OUTCOME_DEADLINE_EXCEEDED"

CHECK_UID_WAIT_S = 10.0  # the start-up check gives up on a uid after this long, rather than hang the start
BUSY = "[not run: the sandbox is busy, try again]"
_SELF_TEST = "import os\nassert os.getuid() != 0 and not os.path.exists('/etc')\nprint('sandbox ok')\n"


@dataclass(frozen=True)
class SandboxLimits:
    """What one run may use, and how many run at once; docs/code-execution.md says how each limit is enforced."""

    wall_s: float = 30.0  # like Gemini
    memory_bytes: int = 512 * 2**20  # address space of each process (RLIMIT_AS)
    processes: int = 32  # processes and threads of the run, bwrap included (RLIMIT_NPROC; pids.max)
    file_bytes: int = 16 * 2**20  # largest file that may be written (RLIMIT_FSIZE)
    output_bytes: int = 64 * 1024  # stdout+stderr kept; beyond it output is cut with a note
    tmpfs_bytes: int = 64 * 2**20  # size of the private /tmp, and of /dev/shm
    run_memory_bytes: int = 2 * 2**30  # all of the run: its processes' memory and its tmpfs (a memory cgroup)
    processes_without_cgroup: int = 8  # where no memory cgroup can be made, `processes` is lowered to this, and
    # `memory_bytes` to fit run_memory_bytes: (run_memory_bytes - 2 × tmpfs_bytes) / processes
    concurrent_runs: int = 8  # runs at once in this server, all owners together; the others wait
    runs_per_owner: int = 2  # runs at once of one owner (run()'s `owner`)
    wait_s: float | None = None  # longest wait for a turn and a uid, then the run is not started; None: wall_s

    def rlimits(self, cgroup: bool) -> tuple[int, int]:
        """(address space per process, processes) of a run, with or without a memory cgroup around it."""
        if cgroup:
            return self.memory_bytes, self.processes
        processes = min(self.processes, self.processes_without_cgroup)
        return min(self.memory_bytes, (self.run_memory_bytes - 2 * self.tmpfs_bytes) // processes), processes


@dataclass(frozen=True)
class RunResult:
    """How a run ended, in Gemini's terms, and what it printed."""

    outcome: str  # OUTCOME_OK | OUTCOME_FAILED | OUTCOME_DEADLINE_EXCEEDED (Gemini's enum names)
    output: str  # stdout and stderr interleaved, as printed, cut at output_bytes with a note


class CodeSandbox(Protocol):
    """What the session runs the model's code with: PythonSandbox, or a stand-in in tests (engines/faults.py)."""

    async def run(self, code: str, *, owner: str | None = None) -> RunResult: ...


class PythonSandbox:
    """Runs Python programs in a bubblewrap sandbox under :class:`SandboxLimits`."""

    def __init__(self, limits: SandboxLimits = SandboxLimits()) -> None:
        self.limits = limits
        self.bounds = ""  # what bounds the runs' memory and number, in one line; set by check()
        self._problem: str | None = None  # None: not checked yet; "": fine
        self._checking = threading.Lock()  # the first runs, started at once, check once
        self._cgroups = Cgroups(why="not checked yet")
        self._seccomp = seccomp_filter(platform.machine())
        self._admission = Admission(limits.concurrent_runs, limits.runs_per_owner)

    def check(self) -> str:
        """Verify, once, that the sandbox can be built here by running a trivial program in it.

        Blocking; never waits longer than about ``CHECK_UID_WAIT_S`` plus ``wall_s``. Returns (and logs, once) what
        bounds the runs' memory and number, in one line. Raises :class:`SandboxUnavailable` with the reason, now and
        on every later call.
        """
        with self._checking:
            if self._problem is None:
                self._problem = self._find_problem()
                if not self._problem:
                    log.info("code execution: %s", self.bounds)
        if self._problem:
            raise SandboxUnavailable(self._problem)
        return self.bounds

    @property
    def rlimits(self) -> tuple[int, int]:
        """(address space per process, processes) that runs get here: lowered where there is no memory cgroup."""
        return self.limits.rlimits(self._cgroups.memory)

    async def run(self, code: str, *, owner: str | None = None) -> RunResult:
        """Run ``code`` with ``python3 -I``; never blocks the event loop. Cancelling kills everything it started.

        ``owner`` names who asked (a principal, a connection): at most ``runs_per_owner`` runs of one owner go at
        once. Without one, only ``concurrent_runs`` applies. A run that gets no turn within ``wait_s`` is not
        started: ``OUTCOME_FAILED`` with the output ``BUSY``.
        """
        if self._problem is None:
            await asyncio.to_thread(self.check)
        self.check()
        wait_s = self.limits.wall_s if self.limits.wait_s is None else self.limits.wait_s
        deadline = time.monotonic() + wait_s
        if not await self._admission.enter(owner, wait_s):
            log.warning("sandbox busy: a run of %s was not started after waiting %.0f s for a turn",
                        owner or "an unnamed caller", wait_s)
            return RunResult(OUTCOME_FAILED, BUSY)
        try:
            uid = await _UIDS.acquire(max(deadline - time.monotonic(), 0.0), f"a run of {owner or 'an unnamed caller'}")
            if uid is None:
                log.warning("sandbox busy: a run of %s was not started: no sandbox uid came free in %.0f s",
                            owner or "an unnamed caller", wait_s)
                return RunResult(OUTCOME_FAILED, BUSY)
            return await self._run_as(uid, code)
        finally:
            self._admission.leave(owner)

    async def _run_as(self, uid: int, code: str) -> RunResult:
        started: _Started | None = None
        try:
            # Not cancellable: asyncio would kill bwrap half-way through building the sandbox, and could orphan
            # its child (bwrap's --die-with-parent only holds once the child is set up). It takes milliseconds.
            spawning = asyncio.ensure_future(self._spawn(uid, code))
            try:
                started = await asyncio.shield(spawning)
            except asyncio.CancelledError:
                started = await spawning
                raise
            proc, cgroup = started.proc, started.cgroup
            if not started.confined:
                return RunResult(OUTCOME_FAILED, "[not run: the sandbox could not bound its memory]")
            output = Output(self.limits.output_bytes)
            try:
                async with asyncio.timeout(self.limits.wall_s):
                    assert proc.stdout is not None
                    while chunk := await proc.stdout.read(65536):
                        output.feed(chunk)
                    returncode = await proc.wait()
            except TimeoutError:
                note = f"[stopped: the time limit of {self.limits.wall_s:g} s was exceeded]"
                return RunResult(OUTCOME_DEADLINE_EXCEEDED, output.text(note))
            if cgroup is not None and (killed := cgroup.oom_kills()):  # failed, even if the program did not notice
                return RunResult(OUTCOME_FAILED, output.text(
                    f"[the run went over its memory limit of {size(self.limits.run_memory_bytes)}: the kernel "
                    f"killed {killed} of its processes]"))
            if returncode == 0:
                return RunResult(OUTCOME_OK, output.text())
            return RunResult(OUTCOME_FAILED, output.text(exit_note(returncode)))
        finally:
            # Also on cancellation; shielded, so that a second cancellation cannot skip it (it then goes on in the
            # background).
            await asyncio.shield(_end_run(uid, started))

    def _fds(self, code: str) -> list[int]:
        """The program, and the seccomp filter, in memory files that bwrap reads."""
        fds = [memfd("main.py", code.encode("utf-8", "replace"))]
        if self._seccomp is not None:
            fds.append(memfd("seccomp", self._seccomp))
        return fds

    async def _spawn(self, uid: int, code: str) -> _Started:
        """Start the run, in its cgroup if one can be made (else under the lowered rlimits)."""
        cgroup = await asyncio.to_thread(self._cgroup_for, uid)
        fds = self._fds(code)
        gate_read, gate_write = os.pipe() if cgroup is not None else (subprocess.DEVNULL, -1)
        try:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self._argv(*fds, cgroup=cgroup is not None), stdin=gate_read, stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, **spawn_options(uid, fds))
            except BaseException:
                if cgroup is not None:
                    await asyncio.to_thread(cgroup.remove)
                raise
            if cgroup is None:
                return _Started(proc, None, confined=True)
            try:
                cgroup.join(proc.pid)  # meanwhile sh waits for the gate; this writes a few bytes to cgroupfs
            except OSError as error:
                log.error("cannot move a sandbox run into its cgroup (%s); it is not run", error)
                return _Started(proc, cgroup, confined=False)  # the gate closes unwritten: sh exits
            os.write(gate_write, b"go\n")
            return _Started(proc, cgroup, confined=True)
        finally:
            for fd in [*fds, gate_read, gate_write]:
                if fd >= 0:
                    os.close(fd)

    def _cgroup_for(self, uid: int) -> RunCgroup | None:
        """The run's cgroup, or None: then it runs under the lowered rlimits. Blocking (milliseconds)."""
        if not self._cgroups.memory:
            return None
        try:
            return RunCgroup.create(self._cgroups, f"localive-sandbox-uid-{uid}", self.limits.run_memory_bytes,
                                    self.limits.processes)
        except OSError as error:
            log.error("cannot make a cgroup for a sandbox run (%s); it runs under the lowered rlimits", error)
            return None

    def _argv(self, code_fd: int, seccomp_fd: int | None = None, *, cgroup: bool = False) -> list[str]:
        """The run's command line: in a cgroup, behind the gate and with the full rlimits; else the lowered ones."""
        memory_bytes, processes = self.limits.rlimits(cgroup)
        return command(code_fd=code_fd, seccomp_fd=seccomp_fd, memory_bytes=memory_bytes, processes=processes,
                       file_bytes=self.limits.file_bytes, cpu_s=math.ceil(self.limits.wall_s) + 1,
                       tmpfs_bytes=self.limits.tmpfs_bytes, gated=cgroup)

    def _find_problem(self) -> str:
        if platform.system() != "Linux":
            return "code execution needs Linux (bubblewrap and namespaces)"
        if os.geteuid() != 0:
            return "the server must run as root to start sandboxed code under an unprivileged uid"
        try:
            tool("bwrap", "bubblewrap")
            tool("prlimit", "util-linux")
        except SandboxUnavailable as missing:
            return str(missing)
        if not os.access(PYTHON, os.X_OK):
            return f"no system Python at {PYTHON} for sandboxed code: apt-get install python3"
        if not mapped(UID_POOL, "/proc/self/uid_map") or not mapped(UID_POOL, "/proc/self/gid_map"):
            return (f"uids {UID_POOL.start}-{UID_POOL.stop - 1}, reserved for sandboxed code, are not mapped in the "
                    "server's user namespace (/proc/self/uid_map)")
        for reserved in UID_POOL:
            try:
                account = pwd.getpwuid(reserved).pw_name
            except KeyError:
                continue
            return f"uid {reserved}, reserved for sandboxed code, belongs to the account {account}"
        try:
            uid = _UIDS.acquire_blocking(CHECK_UID_WAIT_S)
        except UnsafeClaims as unsafe:
            return str(unsafe)
        if uid is None:
            return (f"no sandbox uid came free in {CHECK_UID_WAIT_S:g} s: all {len(UID_POOL)} are claimed by other "
                    f"localive servers on this host (lock files in {_UIDS.claims_dir})")
        limits = self.limits
        try:
            self._cgroups = Cgroups(why=f"no {sandbox_cgroup.SH}")
            if os.access(sandbox_cgroup.SH, os.X_OK):
                self._cgroups = sandbox_cgroup.find(f"localive-sandbox-uid-{uid}", limits.run_memory_bytes,
                                                    limits.processes)
            try:
                problem = self._self_test(uid)
            except _NotConfined as error:  # cgroups that cannot be joined are none
                self._cgroups = Cgroups(why=f"cannot move a process into {self._cgroups.describe()}: {error}")
                problem = self._self_test(uid)
        finally:
            _UIDS.reclaim(uid)
        if problem:
            return problem
        memory_bytes, processes = self.rlimits
        each = f"{size(memory_bytes)} of address space per process, {processes} processes"
        if self._cgroups.memory:
            bound = f"{size(limits.run_memory_bytes)} per run ({self._cgroups.describe()}); {each}"
        else:
            bound = (f"{size(limits.run_memory_bytes)} per run by rlimits alone ({each}, tmpfs "
                     f"{size(2 * limits.tmpfs_bytes)}): no memory cgroup ({self._cgroups.why})")
        wait_s = limits.wall_s if limits.wait_s is None else limits.wait_s
        self.bounds = (f"memory {bound}; at most {limits.concurrent_runs} runs at once, {limits.runs_per_owner} per "
                       f"owner, each waiting at most {wait_s:g} s for its turn")
        return ""

    def _self_test(self, uid: int) -> str:
        """Run a trivial program as ``uid``, in its cgroup if there is one: what went wrong, or "". Blocking."""
        cgroup = self._cgroup_for(uid)
        fds = self._fds(_SELF_TEST)
        try:
            with subprocess.Popen(self._argv(*fds, cgroup=cgroup is not None), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **spawn_options(uid, fds)) as proc:
                try:
                    if cgroup is not None:
                        try:
                            cgroup.join(proc.pid)
                        except OSError as error:
                            raise _NotConfined(error.strerror) from error
                    printed, _ = proc.communicate(b"go\n" if cgroup is not None else None,
                                                  timeout=max(self.limits.wall_s, 10.0))
                finally:
                    kill_uid(uid)  # nothing, normally; all of it on a timeout or an error
        except subprocess.TimeoutExpired:
            return "bubblewrap did not run a trivial program in time"
        except OSError as error:
            return f"cannot start bubblewrap: {error}"
        finally:
            for fd in fds:
                os.close(fd)
            if cgroup is not None:
                cgroup.remove()
        text = printed.decode("utf-8", "replace").strip()
        if proc.returncode != 0 or text != "sandbox ok":
            last_line = text.splitlines()[-1] if text else f"exit status {proc.returncode}"
            return f"bubblewrap could not build the sandbox: {last_line}"
        return ""


class _NotConfined(Exception):
    """A process could not be moved into its run's cgroup."""


@dataclass(frozen=True)
class _Started:
    proc: asyncio.subprocess.Process
    cgroup: RunCgroup | None
    confined: bool  # False: it could not be moved into its cgroup, and exits without running anything


_UIDS = UidPool(UID_POOL)


async def _end_run(uid: int, started: _Started | None) -> None:
    """Kill what is left of a run, from the inside out, remove its cgroup and give its uid back.

    Killing the program (pid 1 of the sandbox's pid namespace) takes the namespace down and lets bwrap reap it and
    exit; killing bwrap first would orphan its child. The killing is repeated until bwrap exits, for a child that
    bwrap was still setting up. Whatever then runs under the uid is killed too.
    """
    if started is not None:
        proc = started.proc
        for _ in range(100):
            if proc.returncode is None:
                await asyncio.to_thread(kill_uid, uid, proc.pid)
            if await _finished(proc, timeout_s=0.05):
                break
        else:  # bwrap is stuck: kill it
            _kill_group(proc.pid)
            await _finished(proc, timeout_s=5)
    cgroup = started.cgroup if started is not None else None
    await asyncio.to_thread(_UIDS.reclaim, uid, cgroup.remove if cgroup is not None else None)


async def _finished(proc: asyncio.subprocess.Process, timeout_s: float) -> bool:
    """Whether bwrap exited in time; what was still printed is read to the end so that asyncio closes the pipe."""
    try:
        async with asyncio.timeout(timeout_s):
            while proc.stdout is not None and await proc.stdout.read(65536):
                pass
            await proc.wait()
    except TimeoutError:
        return False
    return True


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
