"""A local record of every object this tool wrote or read: which key (by fingerprint) protects
which object version, its size, ETag and whole-object digest. Never the key itself.

With SSE-C the server keeps no key, so this answers "which key do I need for that object?" and
lets `--skip-existing` prove an object is the file it came from (the ETag is not an MD5 under
SSE-C). SQLite in WAL mode with a busy timeout, so several processes can write at once.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from ssec_transfer.results import TransferResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS transfers (
    id INTEGER PRIMARY KEY,
    recorded_at REAL NOT NULL,
    operation TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    version_id TEXT,
    etag TEXT,
    size INTEGER NOT NULL,
    checksum TEXT,
    key_fingerprint TEXT,
    local_path TEXT,
    local_mtime_ns INTEGER
);
CREATE INDEX IF NOT EXISTS transfers_object ON transfers (endpoint, bucket, key);
"""


def default_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ssec-transfer" / "ledger.sqlite"


@dataclass(frozen=True)
class LedgerEntry:
    recorded_at: float
    operation: str
    endpoint: str
    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int
    checksum: str | None
    key_fingerprint: str | None
    local_path: str | None
    local_mtime_ns: int | None


class Ledger:
    """Blocking SQLite access; call it from a worker thread inside async code."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._connect() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30)) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=30000")
            with db:  # one transaction
                yield db

    def record(self, endpoint: str, result: TransferResult) -> None:
        mtime: int | None = None
        with suppress(OSError):
            mtime = os.stat(result.path).st_mtime_ns
        with self._connect() as db:
            db.execute(
                "INSERT INTO transfers (recorded_at, operation, endpoint, bucket, key, "
                "version_id, etag, size, checksum, key_fingerprint, local_path, local_mtime_ns) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time(), result.operation, endpoint, result.bucket, result.key,
                    result.version_id, result.etag, result.size, result.checksum,
                    result.key_fingerprint, result.path, mtime,
                ),
            )  # fmt: skip

    def latest(self, endpoint: str, bucket: str, key: str) -> LedgerEntry | None:
        """The most recent record of this object, whichever direction it moved."""
        with self._connect() as db:
            row = db.execute(
                "SELECT recorded_at, operation, endpoint, bucket, key, version_id, etag, size, "
                "checksum, key_fingerprint, local_path, local_mtime_ns FROM transfers "
                "WHERE endpoint = ? AND bucket = ? AND key = ? ORDER BY id DESC LIMIT 1",
                (endpoint, bucket, key),
            ).fetchone()
        return LedgerEntry(*row) if row else None
