"""Resumable session state in SQLite, for one server process.

SQLite runs in WAL mode and every save is committed before its handle is sent to the client, so a `kill -9` of the
server loses no state a client holds a handle for. Blocking database work runs off the event loop. The database and
its -wal and -shm files hold system instructions and conversations: they are 0600, and a directory the store creates
is 0700 (security finding F19). Handles expire on the store's `Clock` (its wall time, saved in the database, so
expiry survives a restart): the server gives it its own clock, tests a virtual one.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from localive.clock import SYSTEM_CLOCK, Clock
from localive.stores.base import DEFAULT_TTL_S

T = TypeVar("T")

PRIVATE_FILE = 0o600
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


class SqliteStore:
    KEEP_PER_SESSION = 4  # older snapshots of one session are deleted

    def __init__(self, path: Path | str, *, ttl_s: float = DEFAULT_TTL_S,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.path = str(path)
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="localive-store")
        if self.path != ":memory:":
            _create_private(Path(self.path))
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        if self.path != ":memory:":  # SQLite gives its -wal and -shm the database's mode; older ones may be open
            for suffix in SQLITE_SIDE_FILES:
                _make_private(Path(self.path + suffix))
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable against a process crash
        self._db.execute("""CREATE TABLE IF NOT EXISTS snapshots (
            handle TEXT PRIMARY KEY, session_key TEXT NOT NULL, principal TEXT NOT NULL,
            state TEXT NOT NULL, saved_at REAL NOT NULL, expires_at REAL NOT NULL)""")
        self._db.execute("CREATE INDEX IF NOT EXISTS by_session ON snapshots (session_key, saved_at)")

    async def save(self, handle: str, *, session_key: str, principal: str, state: str) -> None:
        await self._run(self._save, handle, session_key, principal, state)

    def _save(self, handle: str, session_key: str, principal: str, state: str) -> None:
        now = self._clock.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?)",
                                 (handle, session_key, principal, state, now, now + self.ttl_s))
                self._db.execute("""DELETE FROM snapshots WHERE session_key = ? AND handle NOT IN (
                    SELECT handle FROM snapshots WHERE session_key = ? ORDER BY saved_at DESC LIMIT ?)""",
                                 (session_key, session_key, self.KEEP_PER_SESSION))
                self._db.execute("DELETE FROM snapshots WHERE expires_at < ?", (now,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    async def load(self, handle: str, principal: str) -> str | None:
        return await self._run(self._load, handle, principal)

    def _load(self, handle: str, principal: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT principal, state, expires_at FROM snapshots WHERE handle = ?",
                                   (handle,)).fetchone()
        if row is None or row[2] < self._clock.time():
            return None
        if not hmac.compare_digest(str(row[0]).encode(), principal.encode()):
            return None
        return str(row[1])

    async def session_ended(self, session_key: str) -> None:
        await self._run(self._ended, session_key)

    def _ended(self, session_key: str) -> None:
        with self._lock:
            self._db.execute("UPDATE snapshots SET expires_at = ? WHERE session_key = ?",
                             (self._clock.time() + self.ttl_s, session_key))

    async def ping(self) -> None:
        await self._run(self._ping)

    def _ping(self) -> None:
        with self._lock:
            self._db.execute("SELECT 1").fetchone()

    async def _run(self, work: Callable[..., T], *args: object) -> T:
        """Database work on the store's own thread: not the default executor, which DNS look-ups and other
        blocking work share (security finding F4: a stalled default executor kept sessions from their setup)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            self._db.close()


def _create_private(path: Path) -> None:
    """The database file, created 0600 before SQLite opens it (in a 0700 directory if there was none)."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    except FileExistsError:
        _make_private(path)


def _make_private(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    if mode & 0o077:
        try:
            os.chmod(path, PRIVATE_FILE)
        except PermissionError:  # another user's file: SQLite reports whether it can use it
            logging.getLogger("localive.sessions").warning("%s is readable by other users and not ours to change",
                                                           path)
