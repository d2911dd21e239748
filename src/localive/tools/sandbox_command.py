"""How a sandboxed run's process is started: its command line (sh, prlimit, bwrap, nice, python3) and spawn options.

Everything that bounds one process is set between the fork and the program, without Python code in the child
(``preexec_fn`` may deadlock in a multi-threaded server): subprocess switches uid and groups in C, ``sh`` waits until
the server has moved it into the run's cgroup (sandbox_cgroup.py), ``prlimit`` sets the rlimits, bwrap builds the
namespaces, mounts and seccomp filter. sandbox.py's module docstring has the whole picture.
"""

from __future__ import annotations

import os
import shutil
from typing import TypedDict

from localive.tools.sandbox_cgroup import GATE, SH

PYTHON = "/usr/bin/python3"  # a system interpreter: only /usr is visible inside
CODE_PATH = "/main.py"
NOFILE = 64
NICENESS = 19  # code execution must not starve the realtime audio pipeline (nor delay other sessions)
# MALLOC_ARENA_MAX: glibc reserves 64 MiB of address space for each thread's malloc arena, which RLIMIT_AS counts:
# after a multiprocessing.Pool, 220 of a process's MiB were reservations and a 150 MiB bytearray failed under a
# 240 MiB limit. One arena suffices for Python (its threads take turns anyway).
ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp", "MALLOC_ARENA_MAX": "1"}


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot be built on this machine; the message says why in one line."""


def command(*, code_fd: int, seccomp_fd: int | None, memory_bytes: int, processes: int, file_bytes: int,
            cpu_s: int, tmpfs_bytes: int, gated: bool) -> list[str]:
    """The command line of a run; ``gated``: behind ``sh``, which waits for a line on stdin (sandbox_cgroup.py)."""
    argv = [
        tool("prlimit", "util-linux"), f"--as={memory_bytes}", f"--nproc={processes}", f"--fsize={file_bytes}",
        f"--cpu={cpu_s}:{cpu_s + 1}", f"--nofile={NOFILE}", "--core=0", "--memlock=0", "--msgqueue=0", "--",
        tool("bwrap", "bubblewrap"), "--unshare-all", "--unshare-user", "--disable-userns", "--as-pid-1",
        "--die-with-parent", "--new-session", "--hostname", "sandbox",
        "--ro-bind", "/usr", "/usr", "--tmpfs", "/usr/local", "--remount-ro", "/usr/local", *top_level_links(),
        "--proc", "/proc", "--dev", "/dev", "--size", str(tmpfs_bytes), "--tmpfs", "/dev/shm",
        "--size", str(tmpfs_bytes), "--tmpfs", "/tmp", "--ro-bind-data", str(code_fd), CODE_PATH,
        "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/tmp",
    ]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    argv += ["--", "/usr/bin/nice", "-n", str(NICENESS), PYTHON, "-I", "-u", CODE_PATH]
    return [SH, "-c", GATE, "localive-sandbox", *argv] if gated else argv


class SpawnOptions(TypedDict):
    user: int
    group: int
    extra_groups: list[int]
    start_new_session: bool
    pass_fds: list[int]
    env: dict[str, str]
    cwd: str


def spawn_options(uid: int, fds: list[int]) -> SpawnOptions:
    """How a run is started: own session and process group, no root uid or groups, a tiny environment.

    subprocess switches uid and groups in C between fork and exec: no Python code runs there (``preexec_fn`` could
    deadlock in this multi-threaded server), and prlimit sets the rlimits after the exec.
    """
    return SpawnOptions(user=uid, group=uid, extra_groups=[], start_new_session=True, pass_fds=fds, env=ENV, cwd="/")


def tool(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=os.defpath)
    if path is None:
        raise SandboxUnavailable(f"{name} is not installed: apt-get install {package}")
    return path


def mapped(ids: range, id_map: str) -> bool:
    """Whether a uid_map or gid_map maps all of ``ids``."""
    with open(id_map) as lines:
        for line in lines:
            first, _, count = map(int, line.split())
            if first <= ids.start and ids.stop <= first + count:
                return True
    return False


def top_level_links() -> list[str]:
    """/bin, /lib, /lib64… as on the host: symlinks into /usr on merged-/usr systems, read-only binds otherwise."""
    args: list[str] = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = f"/{name}"
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


def memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name)
    os.write(fd, data)  # memfd writes are not short
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
