"""The sandbox's uids: one unprivileged uid per concurrent run, claimed so that only localive servers can claim one.

Each run needs a uid of its own: RLIMIT_NPROC counts the processes of a uid, so two runs under one uid would share
one budget. Servers on the same host share the pool, so a claim must hold across processes, and must be one that
nobody else can make: the pool used to claim a uid by binding an abstract Unix socket, which any local user could
bind first, and then every run (and the server's start-up check) waited forever (security finding F10).

A claim is now an exclusive ``flock`` on ``<CLAIMS_DIR>/uid-<uid>.lock``. The directory is root's, mode 0700, and is
verified (owner, mode, not a symlink) through the descriptor that is then used, so another user can neither create,
open nor lock a claim file; the kernel drops a claim when the process that holds it dies. Every wait for a uid is
bounded: :meth:`UidPool.acquire` returns None at its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import stat
import threading
import time
from collections.abc import Callable

import psutil

log = logging.getLogger("localive.tools.sandbox")

#: uids for sandboxed runs: above the ranges that Debian (≤ 65535), systemd (dynamic users 61184–65519, containers
#: 524288–1879048191) and /etc/subuid allocations use, below 2³¹.
UID_POOL = range(1_900_000_000, 1_900_000_032)
#: where uids are claimed: every localive server of a host must use the same directory (servers in containers with
#: a /run of their own and a shared uid space would not see each other's claims).
CLAIMS_DIR = "/run/localive-sandbox"
POLL_S = 0.05  # how often a wait for a uid retries: the pool is shared by processes, which no primitive spans


class UnsafeClaims(RuntimeError):
    """The claims directory cannot be made or is not root's alone; the message says why in one line."""


class UidPool:
    """Hands out one uid of ``uids`` per concurrent run, claimed host-wide by a lock file in ``claims_dir``.

    A uid under which processes could not be killed stays claimed (out of the pool) until the server exits.
    """

    def __init__(self, uids: range, claims_dir: str = CLAIMS_DIR) -> None:
        self.uids, self.claims_dir = uids, claims_dir
        self._claims: dict[int, int] = {}  # uid → descriptor of its locked claim file
        self._lock = threading.Lock()
        self._dir_fd: int | None = None

    def verify(self) -> None:
        """Make and verify the claims directory, once; raises :class:`UnsafeClaims`. Blocking (microseconds)."""
        with self._lock:
            self._directory()

    def try_acquire(self) -> int | None:
        """A free uid, now claimed, or None. Blocking, but only for a few opens of files on a tmpfs."""
        with self._lock:
            directory = self._directory()
            for uid in self.uids:
                if uid in self._claims:
                    continue
                try:
                    fd = os.open(f"uid-{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                                 dir_fd=directory)
                except OSError as error:
                    log.error("cannot open the claim file of sandbox uid %d in %s: %s", uid, self.claims_dir, error)
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:  # another server process holds it
                    os.close(fd)
                    continue
                self._claims[uid] = fd
                return uid
        return None

    async def acquire(self, timeout_s: float, waiting: str = "a run") -> int | None:
        """A uid, or None if none came free within ``timeout_s``; logs a line when it has to wait."""
        # try_acquire runs here, not in a thread, so that a cancellation cannot leave a uid claimed.
        deadline = time.monotonic() + timeout_s
        if (uid := self.try_acquire()) is not None:
            return uid
        self._log_wait(waiting, timeout_s)
        while (uid := self.try_acquire()) is None:
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(POLL_S)
        return uid

    def acquire_blocking(self, timeout_s: float, waiting: str = "the start-up check") -> int | None:
        deadline = time.monotonic() + timeout_s
        if (uid := self.try_acquire()) is not None:
            return uid
        self._log_wait(waiting, timeout_s)
        while (uid := self.try_acquire()) is None:
            if time.monotonic() >= deadline:
                return None
            time.sleep(POLL_S)
        return uid

    def reclaim(self, uid: int, cleanup: Callable[[], object] | None = None) -> None:
        """Kill whatever still runs under ``uid``, call ``cleanup`` (what is named after the uid goes: a cgroup), then
        return the uid to the pool. Blocking (a few ms)."""
        if not kill_uid(uid):
            log.error("processes of sandbox uid %d survived SIGKILL; the uid stays out of the pool", uid)
            return
        if cleanup is not None:
            cleanup()
        with self._lock:
            os.close(self._claims.pop(uid))  # closing the only descriptor of the lock releases it

    def claimed(self) -> int:
        """How many uids this process holds."""
        with self._lock:
            return len(self._claims)

    def _log_wait(self, waiting: str, timeout_s: float) -> None:
        log.warning("%s waits for a sandbox uid: all %d are claimed (%d by this server, the rest by other localive "
                    "servers on this host; locks in %s); it gives up after %.0f s", waiting, len(self.uids),
                    self.claimed(), self.claims_dir, timeout_s)

    def _directory(self) -> int:
        if self._dir_fd is None:
            self._dir_fd = open_private_directory(self.claims_dir)
        return self._dir_fd


def open_private_directory(path: str) -> int:
    """A descriptor of ``path``, made if missing, after checking that only root can write in it.

    The checks are made on the descriptor that is then used, so that the directory cannot be swapped in between.
    Raises :class:`UnsafeClaims`.
    """
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        raise UnsafeClaims(f"cannot make or open the sandbox uid claims directory {path}: {error.strerror}") from error
    info = os.fstat(fd)
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid != 0 or mode & 0o022:
        os.close(fd)
        raise UnsafeClaims(f"the sandbox uid claims directory {path} must be root's and writable by nobody else "
                           f"(owner uid {info.st_uid}, mode {mode:04o}); remove it and restart")
    if mode & 0o077:
        os.fchmod(fd, 0o700)  # nobody else needs to list it, let alone open a claim file in it
    return fd


def processes_of(uid: int, spare: int | None = None) -> list[psutil.Process]:
    """The live processes whose real uid is ``uid``, but ``spare``; zombies are dead and left to their parent."""
    found = []
    for pid in _pids_owned_by(uid):  # a stat per process first: the full check below only for those few
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            if pid != spare and process.uids().real == uid and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
    return found


def _pids_owned_by(uid: int) -> list[int]:
    """The pids whose /proc entry belongs to ``uid`` (a process's effective uid; the runs' never changes: they run
    with no_new_privs, so a setuid binary keeps it). One stat per process, little Python: this runs in a thread
    after every run, and scanning every process with psutil held the interpreter lock for milliseconds."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{name}").st_uid == uid:
                    pids.append(int(name))
    return pids


def kill_uid(uid: int, spare: int | None = None, timeout_s: float = 5.0) -> bool:
    """SIGKILL the processes of ``uid`` (but ``spare``) until none is left; False if some outlive ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while found := processes_of(uid, spare):
        if time.monotonic() > deadline:
            return False
        for process in found:
            with contextlib.suppress(psutil.Error):
                process.kill()  # psutil checks that the pid was not reused meanwhile
        time.sleep(0.01)
    return True
