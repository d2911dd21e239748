"""The sandbox that runs model-written Python for the code-execution tool.

Threat model: the program comes from the model, and the model's input comes from whoever talks to the server, so
the program is hostile. It must not see or change anything of the host (files, the server's environment with its API
keys, other sessions' runs), reach any network (the server's own ports included), take the host down (fork bombs,
memory, disk, CPU, floods of output), or outlive its run. It may compute, print, start a few processes and write
scratch files in a private /tmp.

One run is one process tree, started as root and dropped at once to an unprivileged uid of its own:

    server (root) ─fork→ setsid, setgroups([]), setgid/setuid(U)          (subprocess's own, no Python after fork)
        exec prlimit --as … --nproc … --fsize … --cpu … --nofile … --core=0   (util-linux: the rlimits)
        exec bwrap --unshare-all --unshare-user --disable-userns …        (namespaces, mounts, seccomp)
            ─clone→ pid 1 of a new pid namespace: exec nice -n 10 python3 -I -u /main.py

* U comes from a pool of uids (``UID_POOL``) that no account uses, one per concurrent run: RLIMIT_NPROC counts the
  processes of a uid, so two runs under one uid would share one budget. Root ignores RLIMIT_NPROC; U does not, and
  within bwrap's user namespace it has no capability in the host's namespace. A uid is claimed across server processes
  too, by binding an abstract Unix socket named after it.
* bwrap gives the program new user, pid, network, ipc, uts and cgroup namespaces: no network interface but a
  loopback of its own, no process of the host to see or signal. Its filesystem is an empty, read-only root with
  /usr bound read-only (but an empty /usr/local, where pip installs system-wide; /bin, /lib… as on the host), a
  fresh /proc, a minimal read-only /dev, the program at /main.py, and size-limited tmpfs mounts on /tmp (the working
  directory) and /dev/shm. No /etc, /root, /home or project files. ``--disable-userns`` forbids nested user
  namespaces; ``--new-session`` detaches the program from any terminal.
* prlimit and bwrap start with a tiny explicit environment (PATH, LANG, HOME), which is all that the program, and
  any ``/proc/*/environ`` it can read, holds: the server's environment (API keys) never gets in.
* A seccomp filter (built here as classic BPF, handed to ``bwrap --seccomp``) refuses syscalls that enlarge the
  kernel's attack surface or allocate memory that RLIMIT_AS does not count (see ``_DENIED_SYSCALLS``).
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
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import TypedDict

import psutil

log = logging.getLogger(__name__)

OUTCOME_OK = "OUTCOME_OK"
OUTCOME_FAILED = "OUTCOME_FAILED"
OUTCOME_DEADLINE_EXCEEDED = "OUTCOME_DEADLINE_EXCEEDED"

#: uids for sandboxed runs: above the ranges that Debian (≤ 65535), systemd (dynamic users 61184–65519, containers
#: 524288–1879048191) and /etc/subuid allocations use, below 2³¹.
UID_POOL = range(1_900_000_000, 1_900_000_032)
PYTHON = "/usr/bin/python3"  # a system interpreter: only /usr is visible inside
CODE_PATH = "/main.py"
NOFILE = 64
NICENESS = 10  # code execution must not starve the realtime audio pipeline
_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"}
_SELF_TEST = "import os\nassert os.getuid() != 0 and not os.path.exists('/etc')\nprint('sandbox ok')\n"


@dataclass(frozen=True)
class SandboxLimits:
    """What one run may use; docs/code-execution.md says how each limit is enforced."""

    wall_s: float = 30.0  # like Gemini
    memory_bytes: int = 512 * 2**20  # address space of each process (RLIMIT_AS)
    processes: int = 32  # processes and threads of the run, bwrap included (RLIMIT_NPROC)
    file_bytes: int = 16 * 2**20  # largest file that may be written (RLIMIT_FSIZE)
    output_bytes: int = 64 * 1024  # stdout+stderr kept; beyond it output is cut with a note
    tmpfs_bytes: int = 64 * 2**20  # size of the private /tmp, and of /dev/shm


@dataclass(frozen=True)
class RunResult:
    """How a run ended, in Gemini's terms, and what it printed."""

    outcome: str  # OUTCOME_OK | OUTCOME_FAILED | OUTCOME_DEADLINE_EXCEEDED (Gemini's enum names)
    output: str  # stdout and stderr interleaved, as printed, cut at output_bytes with a note


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot be built on this machine; the message says why in one line."""


class PythonSandbox:
    """Runs Python programs in a bubblewrap sandbox under :class:`SandboxLimits`."""

    def __init__(self, limits: SandboxLimits = SandboxLimits()) -> None:
        self.limits = limits
        self._problem: str | None = None  # None: not checked yet; "": fine
        self._seccomp = _seccomp_filter(platform.machine())

    def check(self) -> None:
        """Verify, once, that the sandbox can be built here by running a trivial program in it.

        Blocking. Raises :class:`SandboxUnavailable` with the reason, now and on every later call.
        """
        if self._problem is None:
            self._problem = self._find_problem()
        if self._problem:
            raise SandboxUnavailable(self._problem)

    async def run(self, code: str) -> RunResult:
        """Run ``code`` with ``python3 -I``; never blocks the event loop. Cancelling kills everything it started."""
        if self._problem is None:
            await asyncio.to_thread(self.check)
        self.check()
        uid = await _UIDS.acquire()
        proc: asyncio.subprocess.Process | None = None
        try:
            # Not cancellable: asyncio would kill bwrap half-way through building the sandbox, and could orphan
            # its child (bwrap's --die-with-parent only holds once the child is set up). It takes milliseconds.
            spawning = asyncio.ensure_future(self._spawn(uid, code))
            try:
                proc = await asyncio.shield(spawning)
            except asyncio.CancelledError:
                proc = await spawning
                raise
            output = _Output(self.limits.output_bytes)
            try:
                async with asyncio.timeout(self.limits.wall_s):
                    assert proc.stdout is not None
                    while chunk := await proc.stdout.read(65536):
                        output.feed(chunk)
                    returncode = await proc.wait()
            except TimeoutError:
                note = f"[stopped: the time limit of {self.limits.wall_s:g} s was exceeded]"
                return RunResult(OUTCOME_DEADLINE_EXCEEDED, output.text(note))
            if returncode == 0:
                return RunResult(OUTCOME_OK, output.text())
            return RunResult(OUTCOME_FAILED, output.text(_exit_note(returncode)))
        finally:
            # Also on cancellation; shielded, so that a second cancellation cannot skip it (it then goes on in the
            # background).
            await asyncio.shield(_end_run(uid, proc))

    def _fds(self, code: str) -> list[int]:
        """The program, and the seccomp filter, in memory files that bwrap reads."""
        fds = [_memfd("main.py", code.encode("utf-8", "replace"))]
        if self._seccomp is not None:
            fds.append(_memfd("seccomp", self._seccomp))
        return fds

    async def _spawn(self, uid: int, code: str) -> asyncio.subprocess.Process:
        fds = self._fds(code)
        try:
            return await asyncio.create_subprocess_exec(
                *self._argv(*fds), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                **_spawn_options(uid, fds))
        finally:
            for fd in fds:
                os.close(fd)

    def _argv(self, code_fd: int, seccomp_fd: int | None = None) -> list[str]:
        limits, cpu_s = self.limits, math.ceil(self.limits.wall_s) + 1
        argv = [
            _tool("prlimit", "util-linux"), f"--as={limits.memory_bytes}", f"--nproc={limits.processes}",
            f"--fsize={limits.file_bytes}", f"--cpu={cpu_s}:{cpu_s + 1}", f"--nofile={NOFILE}", "--core=0",
            "--memlock=0", "--msgqueue=0", "--",
            _tool("bwrap", "bubblewrap"), "--unshare-all", "--unshare-user", "--disable-userns", "--as-pid-1",
            "--die-with-parent", "--new-session", "--hostname", "sandbox",
            "--ro-bind", "/usr", "/usr", "--tmpfs", "/usr/local", "--remount-ro", "/usr/local", *_top_level_links(),
            "--proc", "/proc", "--dev", "/dev", "--size", str(limits.tmpfs_bytes), "--tmpfs", "/dev/shm",
            "--size", str(limits.tmpfs_bytes), "--tmpfs", "/tmp", "--ro-bind-data", str(code_fd), CODE_PATH,
            "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/tmp",
        ]
        if seccomp_fd is not None:
            argv += ["--seccomp", str(seccomp_fd)]
        return [*argv, "--", "/usr/bin/nice", "-n", str(NICENESS), PYTHON, "-I", "-u", CODE_PATH]

    def _find_problem(self) -> str:
        if platform.system() != "Linux":
            return "code execution needs Linux (bubblewrap and namespaces)"
        if os.geteuid() != 0:
            return "the server must run as root to start sandboxed code under an unprivileged uid"
        try:
            _tool("bwrap", "bubblewrap")
            _tool("prlimit", "util-linux")
        except SandboxUnavailable as missing:
            return str(missing)
        if not os.access(PYTHON, os.X_OK):
            return f"no system Python at {PYTHON} for sandboxed code: apt-get install python3"
        if not _mapped(UID_POOL, "/proc/self/uid_map") or not _mapped(UID_POOL, "/proc/self/gid_map"):
            return (f"uids {UID_POOL.start}-{UID_POOL.stop - 1}, reserved for sandboxed code, are not mapped in the "
                    "server's user namespace (/proc/self/uid_map)")
        for uid in UID_POOL:
            try:
                account = pwd.getpwuid(uid).pw_name
            except KeyError:
                continue
            return f"uid {uid}, reserved for sandboxed code, belongs to the account {account}"
        uid = _UIDS.acquire_blocking()
        fds = self._fds(_SELF_TEST)
        try:
            done = subprocess.run(self._argv(*fds), stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=max(self.limits.wall_s, 10.0), check=False, **_spawn_options(uid, fds))
        except subprocess.TimeoutExpired:
            return "bubblewrap did not run a trivial program in time"
        except OSError as error:
            return f"cannot start bubblewrap: {error}"
        finally:
            for fd in fds:
                os.close(fd)
            _UIDS.reclaim(uid)
        printed = (done.stdout + done.stderr).decode("utf-8", "replace").strip()
        if done.returncode != 0 or printed != "sandbox ok":
            last_line = printed.splitlines()[-1] if printed else f"exit status {done.returncode}"
            return f"bubblewrap could not build the sandbox: {last_line}"
        return ""


class _Output:
    """The program's output, kept up to a limit while it is read; the rest is counted and dropped."""

    def __init__(self, limit: int) -> None:
        self.limit, self.kept, self.dropped = limit, bytearray(), 0

    def feed(self, chunk: bytes) -> None:
        room = max(self.limit - len(self.kept), 0)
        self.kept += chunk[:room]
        self.dropped += max(len(chunk) - room, 0)

    def text(self, note: str = "") -> str:
        notes = [f"[output truncated: {self.dropped} more bytes not shown]"] if self.dropped else []
        notes += [note] if note else []
        text = self.kept.decode("utf-8", "replace")
        if notes and text and not text.endswith("\n"):
            text += "\n"
        return text + "\n".join(notes)


class _UidPool:
    """Hands out one uid of ``UID_POOL`` per concurrent run, so that runs never share an RLIMIT_NPROC count.

    A uid is claimed across processes by binding the abstract Unix socket "localive-sandbox-uid-<uid>" (per network
    namespace; the kernel drops it when this process dies). A uid under which processes could not be killed is kept
    out of the pool.
    """

    def __init__(self, uids: range) -> None:
        self._uids, self._claims, self._lock = uids, dict[int, socket.socket](), threading.Lock()

    def try_acquire(self) -> int | None:
        with self._lock:
            for uid in self._uids:
                if uid in self._claims:
                    continue
                claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    claim.bind(f"\0localive-sandbox-uid-{uid}")
                except OSError:  # another server process holds it
                    claim.close()
                    continue
                self._claims[uid] = claim
                return uid
        return None

    async def acquire(self) -> int:
        # Polls: the pool is shared by event loops and threads, which no asyncio primitive spans. try_acquire does
        # not block, and runs here, so that a cancellation cannot leave a uid claimed.
        while (uid := self.try_acquire()) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return uid

    def acquire_blocking(self) -> int:
        while (uid := self.try_acquire()) is None:
            time.sleep(0.05)
        return uid

    def reclaim(self, uid: int) -> None:
        """Kill whatever still runs under ``uid``, then return it to the pool. Blocking (a few ms)."""
        if not _kill_uid(uid):
            log.error("processes of sandbox uid %d survived SIGKILL; the uid stays out of the pool", uid)
            return
        with self._lock:
            self._claims.pop(uid).close()


_UIDS = _UidPool(UID_POOL)


async def _end_run(uid: int, proc: asyncio.subprocess.Process | None) -> None:
    """Kill what is left of a run, from the inside out, and give its uid back.

    Killing the program (pid 1 of the sandbox's pid namespace) takes the namespace down and lets bwrap reap it and
    exit; killing bwrap first would orphan its child. The killing is repeated until bwrap exits, for a child that
    bwrap was still setting up. Whatever then runs under the uid is killed too.
    """
    if proc is not None:
        for _ in range(100):
            if proc.returncode is None:
                await asyncio.to_thread(_kill_uid, uid, proc.pid)
            if await _finished(proc, timeout_s=0.05):
                break
        else:  # bwrap is stuck: kill it
            _kill_group(proc.pid)
            await _finished(proc, timeout_s=5)
    await asyncio.to_thread(_UIDS.reclaim, uid)


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


def _processes_of(uid: int, spare: int | None = None) -> list[psutil.Process]:
    """The live processes whose real uid is ``uid``, but ``spare``; zombies are dead and left to their parent."""
    found = []
    for pid in psutil.pids():
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            if pid != spare and process.uids().real == uid and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
    return found


def _kill_uid(uid: int, spare: int | None = None, timeout_s: float = 5.0) -> bool:
    """SIGKILL the processes of ``uid`` (but ``spare``) until none is left; False if some outlive ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while found := _processes_of(uid, spare):
        if time.monotonic() > deadline:
            return False
        for process in found:
            with contextlib.suppress(psutil.Error):
                process.kill()  # psutil checks that the pid was not reused meanwhile
        time.sleep(0.01)
    return True


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class _SpawnOptions(TypedDict):
    user: int
    group: int
    extra_groups: list[int]
    start_new_session: bool
    pass_fds: list[int]
    env: dict[str, str]
    cwd: str


def _spawn_options(uid: int, fds: list[int]) -> _SpawnOptions:
    """How bwrap is started: own session and process group, no root uid or groups, a tiny environment.

    subprocess switches uid and groups in C between fork and exec: no Python code runs there (``preexec_fn`` could
    deadlock in this multi-threaded server), and prlimit sets the rlimits after the exec.
    """
    return _SpawnOptions(user=uid, group=uid, extra_groups=[], start_new_session=True, pass_fds=fds, env=_ENV, cwd="/")


def _tool(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=os.defpath)
    if path is None:
        raise SandboxUnavailable(f"{name} is not installed: apt-get install {package}")
    return path


def _mapped(ids: range, id_map: str) -> bool:
    """Whether a uid_map or gid_map maps all of ``ids``."""
    with open(id_map) as lines:
        for line in lines:
            first, _, count = map(int, line.split())
            if first <= ids.start and ids.stop <= first + count:
                return True
    return False


def _top_level_links() -> list[str]:
    """/bin, /lib, /lib64… as on the host: symlinks into /usr on merged-/usr systems, read-only binds otherwise."""
    args: list[str] = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = f"/{name}"
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name)
    os.write(fd, data)  # memfd writes are not short
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _exit_note(returncode: int) -> str:
    if returncode > 128:  # bwrap reports a program killed by a signal as 128 + the signal's number
        with contextlib.suppress(ValueError):
            name = signal.Signals(returncode - 128).name
            why = {"SIGXCPU": " (CPU time limit)", "SIGKILL": ""}.get(name, "")
            return f"[the program was killed by {name}{why}]"
    return ""


# ---- seccomp ----------------------------------------------------------------------------------------------------

# Syscalls refused with EPERM, by number on (x86_64, aarch64); -1: the architecture has no such syscall.
_DENIED_SYSCALLS = {
    # namespaces and mounts: what user namespaces expose to unprivileged code
    "unshare": (272, 97), "setns": (308, 268), "mount": (165, 40), "umount2": (166, 39), "pivot_root": (155, 41),
    "chroot": (161, 51), "open_tree": (428, 428), "move_mount": (429, 429), "fsopen": (430, 430),
    "fsconfig": (431, 431), "fsmount": (432, 432), "fspick": (433, 433), "mount_setattr": (442, 442),
    # large or frequently buggy kernel interfaces that plain Python never needs
    "bpf": (321, 280), "perf_event_open": (298, 241), "userfaultfd": (323, 282), "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426), "io_uring_register": (427, 427), "keyctl": (250, 219), "add_key": (248, 217),
    "request_key": (249, 218), "ptrace": (101, 117), "process_vm_readv": (310, 270), "process_vm_writev": (311, 271),
    "personality": (135, 92), "modify_ldt": (154, -1), "name_to_handle_at": (303, 264),
    "open_by_handle_at": (304, 265),
    # memory that RLIMIT_AS does not count: memfds written with write(), System V IPC objects
    "memfd_create": (319, 279), "memfd_secret": (447, 447), "shmget": (29, 194), "msgget": (68, 186),
    "semget": (64, 190),
    # privileged anyway: refused before the kernel looks at capabilities
    "kexec_load": (246, 104), "kexec_file_load": (320, 294), "init_module": (175, 105), "finit_module": (313, 273),
    "delete_module": (176, 106), "reboot": (169, 142), "swapon": (167, 224), "swapoff": (168, 225),
    "acct": (163, 89), "syslog": (103, 116), "quotactl": (179, 60), "iopl": (172, -1), "ioperm": (173, -1),
}
_ARCHES = {"x86_64": (0, 0xC000003E, 56), "aarch64": (1, 0xC00000B7, 220)}  # column, AUDIT_ARCH_*, clone's number
_CLONE3 = 435  # refused with ENOSYS, so that glibc falls back to clone, whose flags a filter can read
_CLONE_NEW_NAMESPACES = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET (NEWTIME: clone3 only)
_X32_SYSCALL_BIT = 0x40000000


def _seccomp_filter(machine: str) -> bytes | None:
    """A classic BPF program (``struct sock_filter[]``) for ``bwrap --seccomp``; None on other architectures.

    Foreign architectures' syscalls (i386's int 0x80 on x86_64) kill the process; x32 syscalls get ENOSYS.
    """
    if machine not in _ARCHES:
        return None
    column, audit_arch, clone = _ARCHES[machine]
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06  # BPF_LD|W|ABS, BPF_JMP|{JEQ,JGE,JSET}|K, BPF_RET|K
    # (opcode, jump-if-true target, jump-if-false target, k); targets name the return instructions at the end
    body: list[tuple[int, str | None, str | None, int]] = [
        (ld, None, None, 4),  # seccomp_data.arch
        (jeq, None, "kill", audit_arch),
        (ld, None, None, 0),  # seccomp_data.nr
    ]
    if machine == "x86_64":
        body.append((jge, "enosys", None, _X32_SYSCALL_BIT))
    body.append((jeq, "enosys", None, _CLONE3))
    body += [(jeq, "eperm", None, numbers[column]) for numbers in _DENIED_SYSCALLS.values() if numbers[column] >= 0]
    body += [
        (jeq, None, "allow", clone),
        (ld, None, None, 16),  # low half of seccomp_data.args[0]: clone's flags
        (jset, "eperm", "allow", _CLONE_NEW_NAMESPACES),
    ]
    returns = {"allow": 0x7FFF0000, "eperm": 0x00050000 | 1, "enosys": 0x00050000 | 38, "kill": 0x80000000}
    where = {label: len(body) + i for i, label in enumerate(returns)}
    program = b""
    for i, (code, if_true, if_false, k) in enumerate(body):
        jt = where[if_true] - i - 1 if if_true else 0
        jf = where[if_false] - i - 1 if if_false else 0
        program += struct.pack("=HBBI", code, jt, jf, k)
    return program + b"".join(struct.pack("=HBBI", ret, 0, 0, k) for k in returns.values())
