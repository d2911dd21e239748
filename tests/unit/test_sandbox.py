"""The code-execution sandbox: it runs Python, and every way out that we could think of fails cleanly.

These tests need root and bubblewrap (CI installs it); without them they fail, they do not skip.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import re
import secrets
import shutil
import socket
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from localive.tools.sandbox import (
    OUTCOME_DEADLINE_EXCEEDED,
    OUTCOME_FAILED,
    OUTCOME_OK,
    UID_POOL,
    PythonSandbox,
    RunResult,
    SandboxLimits,
    SandboxUnavailable,
)
from localive.tools.sandbox_seccomp import seccomp_filter

PR_SET_CHILD_SUBREAPER = 36


@pytest.fixture(scope="module")
def sandbox() -> PythonSandbox:
    box = PythonSandbox()
    box.check()  # raises SandboxUnavailable, with the reason, where bubblewrap is missing or broken
    return box


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Iterator[None]:
    yield
    assert sandbox_processes(zombies=False) == []


def sandbox_processes(zombies: bool = True) -> list[psutil.Process]:
    """The processes under a uid of the sandbox's pool that this test process started.

    The uids are the host's: other localive servers (other test sessions) run their code under them too. Ours are
    this process's descendants, and orphans that init adopted (which is how a leak would look).
    """
    found = []
    for process in psutil.process_iter():
        try:
            if process.uids().real in UID_POOL and (zombies or process.status() != psutil.STATUS_ZOMBIE) \
                    and _started_here(process):
                found.append(process)
        except psutil.NoSuchProcess:
            pass
    return found


def _started_here(process: psutil.Process) -> bool:
    ancestors = process.parents()  # the nearest first
    if any(ancestor.pid == os.getpid() for ancestor in ancestors):
        return True
    for ancestor in ancestors:
        if ancestor.uids().real not in UID_POOL:
            return bool(ancestor.pid == 1)  # adopted by init: an orphan, perhaps ours; else another server's
    return True


async def run(box: PythonSandbox, code: str) -> RunResult:
    return await box.run(textwrap.dedent(code))


# ---- it runs Python -------------------------------------------------------------------------------------------

async def test_prints_the_sum_of_the_first_50_primes(sandbox: PythonSandbox) -> None:
    result = await run(sandbox, """
        primes = [n for n in range(2, 1000) if all(n % d for d in range(2, int(n**0.5) + 1))][:50]
        print(sum(primes))
    """)
    assert result == RunResult(OUTCOME_OK, "5117\n")


async def test_an_exception_fails_with_its_traceback(sandbox: PythonSandbox) -> None:
    result = await run(sandbox, """
        def ratio(a, b):
            return a / b
        print("before")
        ratio(1, 0)
    """)
    assert result.outcome == OUTCOME_FAILED
    assert result.output.startswith("before\nTraceback (most recent call last):\n")
    assert "return a / b" in result.output  # the source line: the program is a file
    assert result.output.rstrip().endswith("ZeroDivisionError: division by zero")


async def test_stdout_and_stderr_are_interleaved_as_printed(sandbox: PythonSandbox) -> None:
    result = await run(sandbox, """
        import sys
        print("one")
        print("two", file=sys.stderr)
        print("three")
    """)
    assert result == RunResult(OUTCOME_OK, "one\ntwo\nthree\n")


async def test_threads_subprocesses_multiprocessing_and_scratch_files_work(sandbox: PythonSandbox) -> None:
    result = await run(sandbox, """
        import multiprocessing, subprocess, threading

        def square(x):
            return x * x

        if __name__ == "__main__":
            with multiprocessing.Pool(2) as pool:
                print(pool.map(square, range(5)))
            threads = [threading.Thread(target=square, args=(i,)) for i in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            print(subprocess.run(["echo", "child"], capture_output=True, text=True).stdout.strip())
            with open("scratch.txt", "w") as f:
                f.write("kept")
            print(open("/tmp/scratch.txt").read())
    """)
    assert result == RunResult(OUTCOME_OK, "[0, 1, 4, 9, 16]\nchild\nkept\n")


# ---- it sees nothing of the host ----------------------------------------------------------------------------------

async def test_no_network_not_even_the_hosts_loopback(sandbox: PythonSandbox) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        result = await run(sandbox, f"""
            import socket
            print(socket.if_nameindex())
            for address in [("127.0.0.1", {port}), ("1.1.1.1", 53), ("localhost", 80)]:
                try:
                    socket.create_connection(address, timeout=2)
                    print("connected", address)
                except OSError as error:
                    print("refused", type(error).__name__)
        """)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody came
    assert result.outcome == OUTCOME_OK
    assert "connected" not in result.output
    assert result.output.splitlines() == [
        "[(1, 'lo')]", "refused ConnectionRefusedError", "refused OSError", "refused gaierror"]


async def test_no_host_files(sandbox: PythonSandbox) -> None:
    result = await run(sandbox, f"""
        import os
        print(sorted(os.listdir("/")))
        print(os.listdir("/usr/local"))
        for path in ["/etc/passwd", "/etc", "/root", "/home", "/work", "/var", "/sys", {str(Path(__file__))!r}]:
            print(path, os.path.exists(path))
    """)
    assert result.outcome == OUTCOME_OK
    top, usr_local, *paths = result.output.splitlines()
    assert usr_local == "[]"
    assert set(eval(top)) <= {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "dev", "proc", "tmp", "main.py"}
    assert all(line.endswith(" False") for line in paths), paths


async def test_the_filesystem_is_read_only_but_for_tmp(sandbox: PythonSandbox) -> None:
    result = await run(sandbox, """
        for path in ["/x", "/usr/x", "/dev/x", "/proc/x", "/main.py", "/tmp/x", "/dev/shm/x"]:
            try:
                with open(path, "w") as f:
                    f.write("x")
                print(path, "written")
            except OSError as error:
                print(path, error.strerror)
    """)
    assert result.output.splitlines() == [
        "/x Read-only file system", "/usr/x Read-only file system", "/dev/x Read-only file system",
        "/proc/x No such file or directory", "/main.py Read-only file system", "/tmp/x written", "/dev/shm/x written"]


async def test_the_servers_environment_is_invisible(sandbox: PythonSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = secrets.token_hex(16)
    monkeypatch.setenv("LOCALIVE_TEST_SECRET", secret)
    result = await run(sandbox, """
        import os
        print(dict(os.environ))
        for pid in [name for name in os.listdir("/proc") if name.isdigit()]:
            for what in ["environ", "cmdline"]:
                try:
                    print(pid, what, open(f"/proc/{pid}/{what}", "rb").read())
                except OSError as error:
                    print(pid, what, error)
    """)
    assert result.outcome == OUTCOME_OK
    assert secret not in result.output
    assert "LOCALIVE_TEST_SECRET" not in result.output
    environ = next(line for line in result.output.splitlines() if line.startswith("1 environ "))
    assert sorted(eval(environ.split(" ", 2)[2]).split(b"\0")) == [  # read, and minimal
        b"", b"HOME=/tmp", b"LANG=C.UTF-8", b"MALLOC_ARENA_MAX=1", b"PATH=/usr/bin:/bin", b"PWD=/tmp"]


async def test_the_program_runs_under_an_unprivileged_uid(sandbox: PythonSandbox) -> None:
    result = await run(sandbox, """
        import os
        print(os.getuid(), os.geteuid(), os.getgid(), os.getgroups())
        print(open("/proc/self/status").read())
    """)
    uid, euid, gid, groups = result.output.splitlines()[0].split(" ", 3)
    assert int(uid) in UID_POOL and uid == euid == gid and groups == "[]"
    assert "CapEff:\t0000000000000000" in result.output
    assert "NoNewPrivs:\t1" in result.output
    assert "Seccomp:\t2" in result.output


# ---- limits -------------------------------------------------------------------------------------------------------

async def test_a_fork_bomb_is_stopped_by_the_process_limit(sandbox: PythonSandbox) -> None:
    result = await run(sandbox, """
        import os, time
        forked = 0
        while True:
            try:
                pid = os.fork()
            except OSError as error:
                print(error)
                break
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            forked += 1
        print("forked", forked)
    """)
    assert result.outcome == OUTCOME_OK
    error, forked = result.output.splitlines()
    assert error == "[Errno 11] Resource temporarily unavailable"
    processes = sandbox.rlimits[1]  # 32; 8 where no memory cgroup bounds the run
    assert processes - 12 < int(forked.split()[1]) < processes


async def test_a_real_fork_bomb_ends_with_its_run() -> None:
    box = PythonSandbox(SandboxLimits(wall_s=1.5))
    started = time.monotonic()
    result = await run(box, """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """)
    assert result.outcome == OUTCOME_DEADLINE_EXCEEDED
    assert time.monotonic() - started < 4


async def test_concurrent_runs_have_separate_process_budgets(sandbox: PythonSandbox) -> None:
    wanted = min(20, sandbox.rlimits[1] - 3)  # bwrap and the parent count too; three runs would not fit in one budget
    code = f"""
        import os, time
        children = []
        for _ in range({wanted}):
            try:
                pid = os.fork()
            except OSError as error:
                print(error)
                break
            if pid == 0:
                time.sleep(1)
                os._exit(0)
            children.append(pid)
        for pid in children:
            os.waitpid(pid, 0)
        print("forked", len(children))
    """
    results = await asyncio.gather(run(sandbox, code), run(sandbox, code), run(sandbox, code))
    assert list(results) == [RunResult(OUTCOME_OK, f"forked {wanted}\n")] * 3


async def test_allocating_4_gb_fails(sandbox: PythonSandbox) -> None:
    result = await run(sandbox, "block = bytearray(4 * 2**30)")
    assert result.outcome == OUTCOME_FAILED
    assert result.output.rstrip().endswith("MemoryError")


async def test_an_endless_loop_exceeds_the_deadline() -> None:
    box = PythonSandbox(SandboxLimits(wall_s=2))
    started = time.monotonic()
    result = await run(box, """
        print("looping")
        while True:
            pass
    """)
    elapsed = time.monotonic() - started
    assert result == RunResult(OUTCOME_DEADLINE_EXCEEDED, "looping\n[stopped: the time limit of 2 s was exceeded]")
    assert 2 <= elapsed < 3.5


async def test_writing_1_gb_is_stopped_by_the_file_size_limit(sandbox: PythonSandbox) -> None:
    result = await run(sandbox, """
        with open("/tmp/big", "wb") as f:
            for _ in range(1024):
                f.write(bytes(2**20))
    """)
    assert result.outcome == OUTCOME_FAILED
    assert result.output.rstrip().endswith("OSError: [Errno 27] File too large")


async def test_many_files_are_stopped_by_the_size_of_tmp(sandbox: PythonSandbox) -> None:
    result = await run(sandbox, """
        for i in range(100):
            with open(f"/tmp/part{i}", "wb") as f:
                f.write(bytes(15 * 2**20))
    """)
    assert result.outcome == OUTCOME_FAILED
    assert result.output.rstrip().endswith("OSError: [Errno 28] No space left on device")


async def test_an_output_flood_is_cut(sandbox: PythonSandbox) -> None:
    result = await run(sandbox, """
        for i in range(300_000):
            print(i)
    """)
    assert result.outcome == OUTCOME_OK
    kept, note = result.output.rsplit("\n", 1)
    assert len(kept.encode()) == SandboxLimits().output_bytes
    assert result.output.startswith("0\n1\n2\n")
    printed = sum(len(str(i)) + 1 for i in range(300_000))
    assert note == f"[output truncated: {printed - SandboxLimits().output_bytes} more bytes not shown]"


async def test_a_small_output_limit() -> None:
    result = await run(PythonSandbox(SandboxLimits(output_bytes=10)), "print('0123456789abcdef'); 1/0")
    assert result.outcome == OUTCOME_FAILED
    kept, note = result.output.split("\n")
    assert kept == "0123456789"
    assert re.fullmatch(r"\[output truncated: 1\d\d more bytes not shown\]", note)  # the rest and the traceback


async def test_killing_the_parent_or_everything_leaves_the_host_alone(sandbox: PythonSandbox) -> None:
    canary = await asyncio.create_subprocess_exec("sleep", "30")
    try:
        result = await run(sandbox, """
            import os
            print("parent", os.getppid())
            for target in [os.getppid(), -1, 1]:
                try:
                    os.kill(target, 9)
                    print("sent", target)
                except OSError as error:
                    print(target, error.strerror)
            print("still here")
        """)
        assert canary.returncode is None and psutil.Process(canary.pid).status() != psutil.STATUS_ZOMBIE
    finally:
        canary.kill()
        await canary.wait()
    assert result == RunResult(OUTCOME_OK, "parent 0\nsent 0\n-1 No such process\nsent 1\nstill here\n")
    assert (await run(sandbox, "print('next')")).output == "next\n"


# ---- seccomp --------------------------------------------------------------------------------------------------

async def test_the_seccomp_filter_refuses_risky_syscalls(sandbox: PythonSandbox) -> None:
    if os.uname().machine != "x86_64":
        pytest.fail("this test's syscall numbers are x86_64's: add the machine's")
    result = await run(sandbox, """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        def call(name, *args):
            ctypes.set_errno(0)
            result = getattr(libc, name)(*args)
            print(name, result, os.strerror(ctypes.get_errno()))
        call("unshare", 0x10000000)                  # CLONE_NEWUSER
        call("syscall", 56, 0x40000000 | 17, 0)      # clone(CLONE_NEWNET | SIGCHLD)
        call("syscall", 435, 0, 0)                   # clone3
        call("syscall", 425, 1, 0)                   # io_uring_setup
        call("syscall", 250, 0, 0)                   # keyctl
        call("syscall", 0x40000000 | 39)             # x32 getpid
        call("syscall", 319, b"x", 0)                # memfd_create
        call("syscall", 29, 0, 4096, 0o1600)         # shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600)
        call("syscall", 39)                          # getpid: allowed
    """)
    assert result.output.splitlines() == [
        "unshare -1 Operation not permitted",
        "syscall -1 Operation not permitted",
        "syscall -1 Function not implemented",
        "syscall -1 Operation not permitted",
        "syscall -1 Operation not permitted",
        "syscall -1 Function not implemented",
        "syscall -1 Operation not permitted",
        "syscall -1 Operation not permitted",
        "syscall 1 Success",
    ]


def test_the_seccomp_filter_is_well_formed() -> None:
    for machine in ("x86_64", "aarch64"):
        program = seccomp_filter(machine)
        assert program is not None and len(program) % 8 == 0 and len(program) // 8 < 256
    assert seccomp_filter("riscv64") is None


def test_every_limit_reaches_the_command_line(sandbox: PythonSandbox) -> None:
    limits = SandboxLimits(wall_s=5, memory_bytes=111 * 2**20, processes=7, file_bytes=2**20, tmpfs_bytes=3 * 2**20)
    argv = PythonSandbox(limits)._argv(3, 4)
    for flag in [f"--as={111 * 2**20}", "--nproc=7", f"--fsize={2**20}", "--cpu=6:7", "--nofile=64", "--core=0",
                 "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
                 "--as-pid-1"]:
        assert flag in argv
    assert argv.count(str(3 * 2**20)) == 2  # /tmp and /dev/shm
    assert argv[argv.index("--seccomp") + 1] == "4"
    assert argv[-3:] == ["-I", "-u", "/main.py"]


# ---- the runs end, whatever happens -------------------------------------------------------------------------------

async def test_cancelling_a_run_kills_its_processes(sandbox: PythonSandbox) -> None:
    forks = 3 if sandbox.rlimits[1] > 9 else 2  # 8 Pythons, or 4 where the run may have only 8 processes
    task = asyncio.create_task(run(sandbox, f"""
        import os, time
        for _ in range({forks}):
            os.fork()
        time.sleep(60)
    """))
    for _ in range(200):
        if len(sandbox_processes()) >= 2**forks + 1:  # bwrap and the Pythons
            break
        await asyncio.sleep(0.02)
    assert len(sandbox_processes()) == 2**forks + 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sandbox_processes() == []


async def test_cancelling_at_any_moment_leaves_nothing_running(sandbox: PythonSandbox) -> None:
    for delay in [0, 0.001, 0.003, 0.005, 0.01, 0.02, 0.05]:
        task = asyncio.create_task(sandbox.run("import time\nprint('started')\ntime.sleep(60)"))
        await asyncio.sleep(delay)
        task.cancel()
        started = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - started < 2
        assert sandbox_processes(zombies=False) == []


async def test_100_quick_runs_leave_no_process_behind(sandbox: PythonSandbox) -> None:
    # zombies of earlier tests (or runs) whose reaper is a container's init that never reaps do not count
    before = {p.pid for p in sandbox_processes()}
    children = set(psutil.Process().children(recursive=True))  # e.g. the test servers of other test modules
    gate = asyncio.Semaphore(8)

    async def square(i: int) -> RunResult:
        async with gate:
            return await sandbox.run(f"print({i} * {i})")

    results = await asyncio.gather(*(square(i) for i in range(100)))
    assert results == [RunResult(OUTCOME_OK, f"{i * i}\n") for i in range(100)]
    assert [p for p in sandbox_processes() if p.pid not in before] == []
    assert set(psutil.Process().children(recursive=True)) - children == set()


async def test_when_the_server_dies_its_runs_die_too() -> None:
    # The dead server's orphans come to this process, which reaps them: left to an init that does not reap (a
    # container's), their zombies would count against their uid's RLIMIT_NPROC in the tests that follow.
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        server = await asyncio.create_subprocess_exec(sys.executable, "-c", textwrap.dedent("""
            import asyncio
            from localive.tools.sandbox import PythonSandbox
            asyncio.run(PythonSandbox().run("import os, time\\nos.fork()\\ntime.sleep(60)"))
        """))
        for _ in range(500):
            if len(sandbox_processes(zombies=False)) >= 3:  # bwrap and 2 Pythons
                break
            await asyncio.sleep(0.01)
        assert len(sandbox_processes(zombies=False)) == 3
        server.kill()
        await server.wait()
        for _ in range(100):
            if not sandbox_processes(zombies=False):
                break
            await asyncio.sleep(0.01)
        assert sandbox_processes(zombies=False) == []
        for _ in range(100):
            for zombie in sandbox_processes():
                if zombie.ppid() == os.getpid():
                    os.waitpid(zombie.pid, os.WNOHANG)  # noqa: ASYNC222 (WNOHANG does not block)
            if not sandbox_processes():
                break
            await asyncio.sleep(0.01)
        assert sandbox_processes() == []  # zombies included
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


# ---- no sandbox, no run -------------------------------------------------------------------------------------------

async def test_without_bubblewrap_nothing_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which",
                        lambda name, *args, **kwargs: None if name == "bwrap" else real_which(name, *args, **kwargs))
    box = PythonSandbox()
    with pytest.raises(SandboxUnavailable, match=r"^bwrap is not installed: apt-get install bubblewrap$"):
        box.check()
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        await box.run("print('unsandboxed')")


def test_a_sandbox_that_cannot_start_python_is_unavailable() -> None:
    with pytest.raises(SandboxUnavailable, match=r"^bubblewrap could not build the sandbox: "):
        PythonSandbox(SandboxLimits(memory_bytes=8 * 2**20)).check()


def test_without_root_nothing_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SandboxUnavailable, match="must run as root"):
        PythonSandbox().check()


def test_the_test_process_is_unharmed() -> None:
    me = psutil.Process()
    assert me.status() in (psutil.STATUS_RUNNING, psutil.STATUS_SLEEPING) and os.getuid() == 0
    assert me.rlimit(psutil.RLIMIT_NPROC) != (SandboxLimits().processes,) * 2
