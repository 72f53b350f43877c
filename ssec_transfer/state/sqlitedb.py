"""The tool's SQLite files (ledger, journal, watch state): where they live by default, and
opening them for several threads and processes at once."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

BUSY_TIMEOUT = 30.0


def xdg_path(variable: str, fallback: str, name: str) -> Path:
    """`$variable/ssec-transfer/name`, or `~/fallback/ssec-transfer/name` when the variable
    is unset or empty, as the XDG base directory specification says."""
    base = os.environ.get(variable) or str(Path.home() / fallback)
    return Path(base) / "ssec-transfer" / name


def connect_wal(
    path: Path,
    *,
    synchronous: str | None = None,
    timeout: float = BUSY_TIMEOUT,
    autocommit: bool = False,
) -> sqlite3.Connection:
    """A connection in WAL mode with a busy timeout, usable from worker threads.

    Switching a brand-new file to WAL can answer "database is locked" at once, without
    waiting, while another process creates the same file; that switch is retried here.
    `autocommit` leaves transactions to the caller (sqlite3's `isolation_level=None`).
    """
    db = sqlite3.connect(path, timeout=timeout, check_same_thread=False)
    try:
        if autocommit:
            db.isolation_level = None
        deadline = time.monotonic() + timeout
        while True:
            try:
                db.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        if synchronous:
            db.execute(f"PRAGMA synchronous={synchronous}")
    except BaseException:
        db.close()
        raise
    return db


@contextmanager
def write_locked(path: Path) -> Iterator[sqlite3.Connection]:
    """One transaction that holds the file's write lock from its first statement (BEGIN
    IMMEDIATE), on a connection of its own: a check and the write it decides stay atomic
    against other processes. Commits on success, rolls back on any exception."""
    with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)) as db:
        db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


class SharedConnection:
    """One WAL connection to a SQLite file, opened on first use and shared by threads under a
    lock. Ledger and journal write many times a second (a bulk run, every finished part), and
    opening SQLite for each write cost more than the write."""

    def __init__(
        self, path: Path, *, schema: str, synchronous: str | None = None, foreign_keys: bool = False
    ) -> None:
        self.path = path
        self._synchronous = synchronous
        self._foreign_keys = foreign_keys
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self.transaction() as db:
            db.executescript(schema)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection, inside one transaction (committed on success, else rolled back)."""
        with self._lock:
            if self._db is None:
                self._db = connect_wal(self.path, synchronous=self._synchronous)
                if self._foreign_keys:
                    self._db.execute("PRAGMA foreign_keys=ON")
            with self._db:
                yield self._db

    def close(self) -> None:
        """Close the connection; the next transaction opens it again."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
