"""The attacks of the security findings F7, F10 and F11 (docs/security.md), replayed on the sandbox.

F7: one run took 10 GB of host RAM (24 children × 480 MB). F10: an unprivileged local user squatted the uid pool's
abstract sockets, and every run, and the server's start, hung. F11: 32 sleeping runs of one client made everybody
else's code wait, without a bound. Like test_sandbox.py, these need root and bubblewrap, and fail without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from localive.tools import sandbox as sandbox_module
from localive.tools import sandbox_cgroup
from localive.tools.sandbox import (
    BUSY,
    OUTCOME_FAILED,
    OUTCOME_OK,
    UID_POOL,
    PythonSandbox,
    RunResult,
    SandboxLimits,
    SandboxUnavailable,
)
from localive.tools.sandbox_admission import Admission
from localive.tools.sandbox_uids import CLAIMS_DIR, UidPool, UnsafeClaims
from tests.unit.test_sandbox import sandbox_processes

NOBODY = 65534
SLEEP = "import time\nprint('started', flush=True)\ntime.sleep(60)\n"


@pytest.fixture(scope="module")
def sandbox() -> PythonSandbox:
    box = PythonSandbox()
    box.check()
    return box


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Iterator[None]:
    yield
    assert sandbox_processes(zombies=False) == []


async def uids_in_use(count: int, timeout_s: float = 10.0) -> set[int]:
    """The pool uids whose program has started (not only bwrap), once there are ``count`` of them."""
    deadline = time.monotonic() + timeout_s
    while True:
        uids = set()
        for process in sandbox_processes(zombies=False):
            with contextlib.suppress(psutil.NoSuchProcess):
                if process.name() == "python3":
                    uids.add(process.uids().real)
        if len(uids) >= count or time.monotonic() > deadline:
            return uids
        await asyncio.sleep(0.05)


async def cancel(tasks: list[asyncio.Task[RunResult]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# ---- F7: memory ------------------------------------------------------------------------------------------------

MEMORY_HOG = """
    import os, time
    pids = []
    for i in range(24):
        try:
            pid = os.fork()
        except OSError as error:
            print("fork:", error.strerror)
            break
        if pid == 0:
            try:
                block = b"x" * 480_000_000  # touched: every page is written
                time.sleep(1)
                os._exit(0)
            except MemoryError:
                os._exit(3)
        pids.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    print("children", len(pids), "held", codes.count(0), "refused", codes.count(3), "killed", sum(c < 0 for c in codes))
"""


class MemoryWatch:
    """The peak rise of the host's used RAM, and the peak of the sandbox's processes' RSS, while it runs."""

    def __init__(self) -> None:
        self.base_bytes = psutil.virtual_memory().used
        self.host_rise_bytes = self.sandbox_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            self.host_rise_bytes = max(self.host_rise_bytes, psutil.virtual_memory().used - self.base_bytes)
            rss = 0
            for process in sandbox_processes(zombies=False):
                with contextlib.suppress(psutil.Error):
                    rss += process.memory_info().rss
            self.sandbox_bytes = max(self.sandbox_bytes, rss)


@pytest.mark.parametrize("memory_bound", ["as found here", "rlimits only"])
async def test_24_children_touching_480_mb_stay_within_the_runs_memory_bound(
        memory_bound: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if memory_bound == "rlimits only":  # a host (a container) where no memory cgroup can be made
        monkeypatch.setattr(sandbox_cgroup, "find", lambda *_: sandbox_cgroup.Cgroups(why="none in this test"))
    box = PythonSandbox(SandboxLimits(wall_s=60))
    bounds = await asyncio.to_thread(box.check)
    bound_bytes = box.limits.run_memory_bytes
    assert bounds.startswith("memory 2 GiB per run ")
    with MemoryWatch() as watch:
        result = await box.run(textwrap.dedent(MEMORY_HOG))
    # 24 × 480 MB is 11.5 GB; with one run's memory bounded, the host sees at most the bound (plus other
    # processes' noise: this machine is shared)
    assert watch.sandbox_bytes < bound_bytes + 256 * 2**20, result
    assert watch.host_rise_bytes < bound_bytes + 2**30, result
    if box.rlimits[1] == box.limits.processes:  # a memory cgroup: the kernel killed what went over
        assert result.outcome == OUTCOME_FAILED
        assert re.search(r"\[the run went over its memory limit of 2 GiB: the kernel killed \d+ of its processes\]$",
                         result.output), result.output
        if "held" in result.output:  # the parent survived (cgroup v1 kills the biggest processes; v2 all of them)
            assert int(result.output.split("held ")[1].split()[0]) <= 4  # what fits in 2 GiB
    else:  # 8 processes (zombies of the uid count too) of 240 MiB: the children cannot even allocate
        fork_error, counts = result.output.splitlines()
        assert fork_error == "fork: Resource temporarily unavailable"
        assert re.fullmatch(r"children ([1-6]) held 0 refused \1 killed 0", counts), counts


def test_either_way_a_run_cannot_hold_more_than_2_gib() -> None:
    limits = SandboxLimits()
    assert limits.run_memory_bytes == 2 * 2**30 and limits.tmpfs_bytes == 64 * 2**20
    assert limits.rlimits(cgroup=True) == (512 * 2**20, 32)  # the cgroup bounds the whole run
    memory_bytes, processes = limits.rlimits(cgroup=False)
    assert (memory_bytes, processes) == (240 * 2**20, 8)
    assert processes * memory_bytes + 2 * limits.tmpfs_bytes <= limits.run_memory_bytes
    box = PythonSandbox()
    gated, plain = box._argv(3, 4, cgroup=True), box._argv(3, 4)
    assert gated[:4] == ["/bin/sh", "-c", 'read -r go && exec "$@" </dev/null', "localive-sandbox"]
    assert f"--as={512 * 2**20}" in gated and "--nproc=32" in gated
    assert plain[0].endswith("prlimit") and f"--as={240 * 2**20}" in plain and "--nproc=8" in plain


def test_the_memory_bound_in_force_is_said(sandbox: PythonSandbox) -> None:
    if sandbox.rlimits[1] == SandboxLimits().processes:
        assert sandbox.bounds.startswith("memory 2 GiB per run (cgroup v")
        assert "512 MiB of address space per process, 32 processes" in sandbox.bounds
    else:
        assert sandbox.bounds.startswith("memory 2 GiB per run by rlimits alone (240 MiB of address space per "
                                         "process, 8 processes, tmpfs 128 MiB): no memory cgroup (")
    assert sandbox.bounds.endswith("at most 8 runs at once, 2 per owner, each waiting at most 30 s for its turn")


async def test_each_run_gets_a_cgroup_that_goes_with_it(sandbox: PythonSandbox) -> None:
    places = sandbox._cgroups.places
    if not places:
        pytest.skip(f"no memory cgroup on this host ({sandbox._cgroups.why}); the rlimits-only tests cover it")
    task = asyncio.create_task(sandbox.run(SLEEP))
    (uid,) = await uids_in_use(1)
    name = f"localive-sandbox-uid-{uid}"
    for place in places:
        procs = await asyncio.to_thread(Path(place.parent, name, "cgroup.procs").read_text)
        assert {p.pid for p in sandbox_processes(zombies=False)} <= {int(pid) for pid in procs.split()}  # its tree
    memory = next(p for p in places if "memory" in p.controllers)
    limit = "memory.max" if memory.version == 2 else "memory.limit_in_bytes"
    assert await asyncio.to_thread(Path(memory.parent, name, limit).read_text) == f"{2 * 2**30}\n"
    await cancel([task])
    assert not any([await asyncio.to_thread(Path(place.parent, name).exists) for place in places])


async def test_a_legitimate_program_works_under_the_lowered_rlimits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_cgroup, "find", lambda *_: sandbox_cgroup.Cgroups(why="none in this test"))
    box = PythonSandbox()
    await asyncio.to_thread(box.check)
    assert box.rlimits == (240 * 2**20, 8)
    result = await box.run(textwrap.dedent("""
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
            block = bytearray(150 * 2**20)
            print(len(block) // 2**20, "MiB")
    """))
    assert result == RunResult(OUTCOME_OK, "[0, 1, 4, 9, 16]\nchild\n150 MiB\n")


# ---- F10: uid claims -------------------------------------------------------------------------------------------

SQUATTER = """
import fcntl, os, socket, time
held = []
for uid in range(1_900_000_000, 1_900_000_032):  # what the attack did: every abstract name of the old pool
    claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    claim.bind(f"\\0localive-sandbox-uid-{uid}")
    held.append(claim)
tries = []
for path in ["/run/localive-sandbox/uid-1900000000.lock", "/run/localive-sandbox/squat.lock"]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        tries.append("locked")
    except OSError as error:
        tries.append(error.strerror)
print("squatting", len(held), *tries, flush=True)
time.sleep(60)
"""


async def test_a_local_user_cannot_claim_the_sandboxs_uids() -> None:
    sandbox_module._UIDS.verify()  # the claims directory exists, as on a host where the server ran once
    squatter = await asyncio.create_subprocess_exec("/usr/bin/python3", "-I", "-c", SQUATTER, user=NOBODY,
                                                    group=NOBODY, extra_groups=[], cwd="/", stdout=subprocess.PIPE)
    try:
        assert squatter.stdout is not None
        line = await asyncio.wait_for(squatter.stdout.readline(), timeout=10)
        assert line == b"squatting 32 Permission denied Permission denied\n"
        started = time.monotonic()
        box = PythonSandbox()
        await asyncio.wait_for(asyncio.to_thread(box.check), timeout=30)  # it hung forever
        result = await asyncio.wait_for(box.run("print('still runs')"), timeout=30)  # it hung forever too
        assert result == RunResult(OUTCOME_OK, "still runs\n")
        assert time.monotonic() - started < 10
    finally:
        squatter.kill()
        await squatter.wait()
    info = os.stat(CLAIMS_DIR)
    assert info.st_uid == 0 and info.st_mode & 0o777 == 0o700
    assert all(name.startswith("uid-") for name in os.listdir(CLAIMS_DIR))


def test_a_claims_directory_that_others_can_write_is_refused(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    theirs, open_to_all, link = tmp_path / "theirs", tmp_path / "open", tmp_path / "link"
    theirs.mkdir()
    os.chown(theirs, NOBODY, NOBODY)
    open_to_all.mkdir()
    open_to_all.chmod(0o777)
    link.symlink_to(CLAIMS_DIR)
    with pytest.raises(UnsafeClaims, match=rf"^the sandbox uid claims directory {theirs} must be root's and "
                                           rf"writable by nobody else \(owner uid {NOBODY}, mode 0755\); remove it "
                                           r"and restart$"):
        UidPool(UID_POOL, str(theirs)).try_acquire()
    with pytest.raises(UnsafeClaims, match="mode 0777"):
        UidPool(UID_POOL, str(open_to_all)).try_acquire()
    with pytest.raises(UnsafeClaims, match=rf"^cannot make or open the sandbox uid claims directory {link}: "):
        UidPool(UID_POOL, str(link)).try_acquire()
    monkeypatch.setattr(sandbox_module, "_UIDS", UidPool(UID_POOL, str(theirs)))
    with pytest.raises(SandboxUnavailable, match="must be root's and writable by nobody else"):
        PythonSandbox().check()


async def test_when_every_uid_is_claimed_the_check_and_the_runs_give_up_in_time(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    box = PythonSandbox(SandboxLimits(wait_s=1))
    await asyncio.to_thread(box.check)
    other_server = UidPool(UID_POOL)  # the same claims directory: another localive server on this host
    taken: list[int] = []
    deadline = time.monotonic() + 60  # other test sessions' servers on this host may hold some for a while
    while len(taken) < len(UID_POOL) and time.monotonic() < deadline:
        if (uid := other_server.try_acquire()) is not None:
            taken.append(uid)
        else:
            await asyncio.sleep(0.01)
    assert len(taken) == len(UID_POOL) and other_server.try_acquire() is None
    monkeypatch.setattr(sandbox_module, "CHECK_UID_WAIT_S", 1.0)
    try:
        started = time.monotonic()
        with pytest.raises(SandboxUnavailable, match=r"^no sandbox uid came free in 1 s: all 32 are claimed by "
                                                     r"other localive servers on this host \(lock files in "):
            await asyncio.to_thread(PythonSandbox().check)
        assert time.monotonic() - started < 5
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="localive.tools.sandbox"):
            result = await box.run("print('never')", owner="someone")
        assert result == RunResult(OUTCOME_FAILED, BUSY)
        assert 1 <= time.monotonic() - started < 4
        assert "a run of someone waits for a sandbox uid: all 32 are claimed" in caplog.text
    finally:
        for uid in taken:
            other_server.reclaim(uid)
    assert (await box.run("print('runs again')")).output == "runs again\n"


# ---- F11: fair, bounded turns ----------------------------------------------------------------------------------

async def test_one_owner_with_many_runs_leaves_room_for_the_others(sandbox: PythonSandbox) -> None:
    greedy = [asyncio.create_task(sandbox.run(SLEEP, owner="greedy")) for _ in range(12)]
    try:
        assert len(await uids_in_use(2)) == 2
        await asyncio.sleep(0.5)
        assert len(await uids_in_use(3, timeout_s=0)) == 2  # runs_per_owner: the other 10 wait
        started = time.monotonic()
        result = await sandbox.run("print('my turn')", owner="patient")
        waited_s = time.monotonic() - started
        assert result == RunResult(OUTCOME_OK, "my turn\n")
        assert waited_s < 3  # it waited 31 s behind 32 sleeping runs
    finally:
        await cancel(greedy)


async def test_waiting_runs_start_in_the_order_they_came() -> None:
    box = PythonSandbox(SandboxLimits(concurrent_runs=1))
    await asyncio.to_thread(box.check)
    holder = asyncio.create_task(box.run("import time\ntime.sleep(1)", owner="first"))
    await uids_in_use(1)
    finished: list[str] = []

    async def run(owner: str) -> None:
        result = await box.run(f"print({owner!r})", owner=owner)
        assert result.output == f"{owner}\n"
        finished.append(owner)

    waiting = []
    for owner in ["a", "b", "c", "d", "e"]:
        waiting.append(asyncio.create_task(run(owner)))
        await asyncio.sleep(0.05)
    await asyncio.gather(holder, *waiting)
    assert finished == ["a", "b", "c", "d", "e"]


async def test_a_run_that_gets_no_turn_in_time_is_not_run(caplog: pytest.LogCaptureFixture) -> None:
    box = PythonSandbox(SandboxLimits(concurrent_runs=1, wait_s=1))
    holder = asyncio.create_task(box.run(SLEEP, owner="holder"))
    try:
        await uids_in_use(1)
        started = time.monotonic()
        with caplog.at_level(logging.INFO, logger="localive.tools.sandbox"):
            result = await box.run("print('too late')", owner="late")
        assert result == RunResult(OUTCOME_FAILED, "[not run: the sandbox is busy, try again]")
        assert 1 <= time.monotonic() - started < 3
        assert "sandbox busy: a run of late waits (1 of 1 runs going, 0 of them its owner's" in caplog.text
        assert "a run of late was not started after waiting 1 s for a turn" in caplog.text
    finally:
        await cancel([holder])


async def settled() -> None:
    """Let every task that is ready run until it waits (the admission's waiters take their place in line)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_turns_go_to_the_owner_with_the_fewest_runs_going_then_first_come() -> None:
    admission = Admission(total=2, per_owner=2)
    assert await admission.enter("x", 1) and await admission.enter("h", 1)
    order: list[str] = []

    async def wait(owner: str) -> None:
        assert await admission.enter(owner, 5)
        order.append(owner)

    x_again = asyncio.create_task(wait("x"))  # x has one going
    await settled()
    y = asyncio.create_task(wait("y"))  # y has none: it goes first, although it came later
    await settled()
    admission.leave("h")
    await settled()
    assert order == ["y"]
    admission.leave("y")
    await asyncio.gather(x_again, y)
    assert order == ["y", "x"]


async def test_an_owner_at_its_limit_does_not_hold_up_the_others() -> None:
    admission = Admission(total=3, per_owner=1)
    assert await admission.enter("a", 1)
    assert not await admission.enter("a", 0.1)  # its limit: it waits, here not long enough
    assert await admission.enter("b", 0.1) and await admission.enter(None, 0.1)  # no owner: only the total counts
    assert admission.going() == 3


async def test_a_cancelled_or_timed_out_waiter_leaves_the_line() -> None:
    admission = Admission(total=1, per_owner=1)
    assert await admission.enter("a", 1)
    cancelled = asyncio.create_task(admission.enter("b", 10))
    await settled()
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert not await admission.enter("c", 0.05)
    waiter = asyncio.create_task(admission.enter("d", 10))
    await settled()
    await asyncio.to_thread(admission.leave, "a")  # from another thread, as a run's end may be
    assert await waiter and admission.going() == 1
    admission.leave("d")
    assert admission.going() == 0
