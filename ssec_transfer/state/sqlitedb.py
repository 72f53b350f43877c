"""Opening the tool's SQLite files (ledger, journal) for several processes at once."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

BUSY_TIMEOUT = 30.0


def connect_wal(path: Path, *, synchronous: str | None = None) -> sqlite3.Connection:
    """A connection in WAL mode with a busy timeout, usable from worker threads.

    Switching a brand-new file to WAL can answer "database is locked" at once, without
    waiting, while another process creates the same file; that switch is retried here.
    """
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT, check_same_thread=False)
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                db.close()
                raise
            time.sleep(0.01)
    db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
    if synchronous:
        db.execute(f"PRAGMA synchronous={synchronous}")
    return db
