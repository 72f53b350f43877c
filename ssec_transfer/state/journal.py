"""The resume journal: enough local state to finish an interrupted transfer later.

For a multipart upload: its UploadId, the plan (part size), the source file's identity
(path, size, mtime) and every finished part with its ETag and CRC32C. For a download: the
object's identity (ETag, VersionId, size), the temporary file and every finished range. Never
a key: only its fingerprint, which a resume must match before anything is sent.
SQLite in WAL mode, one short transaction per finished part.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ssec_transfer.core.protected import protect
from ssec_transfer.state.sqlitedb import SharedConnection, xdg_path

SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    id INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,
    endpoint TEXT NOT NULL, bucket TEXT NOT NULL, key TEXT NOT NULL,
    upload_id TEXT NOT NULL,
    source TEXT NOT NULL, source_size INTEGER NOT NULL, source_mtime_ns INTEGER NOT NULL,
    part_size INTEGER NOT NULL,
    key_fingerprint TEXT NOT NULL,
    checksum_algorithm TEXT
);
CREATE TABLE IF NOT EXISTS upload_parts (
    upload INTEGER NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,
    part_number INTEGER NOT NULL,
    etag TEXT NOT NULL,
    checksum TEXT,
    crc INTEGER NOT NULL,
    PRIMARY KEY (upload, part_number)
);
CREATE TABLE IF NOT EXISTS downloads (
    id INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,
    endpoint TEXT NOT NULL, bucket TEXT NOT NULL, key TEXT NOT NULL,
    version_id TEXT, etag TEXT, size INTEGER NOT NULL,
    part_size INTEGER NOT NULL,
    dest TEXT NOT NULL, temp TEXT NOT NULL,
    key_fingerprint TEXT
);
CREATE TABLE IF NOT EXISTS download_parts (
    download INTEGER NOT NULL REFERENCES downloads(id) ON DELETE CASCADE,
    part_number INTEGER NOT NULL,
    crc INTEGER NOT NULL,
    PRIMARY KEY (download, part_number)
);
"""


def default_path() -> Path:
    """`$XDG_STATE_HOME/ssec-transfer/journal.sqlite`: state worth keeping, not user data."""
    return xdg_path("XDG_STATE_HOME", ".local/state", "journal.sqlite")


@dataclass(frozen=True)
class UploadEntry:
    id: int
    created_at: float
    endpoint: str
    bucket: str
    key: str
    upload_id: str
    source: str
    source_size: int
    source_mtime_ns: int
    part_size: int
    key_fingerprint: str
    checksum_algorithm: str | None


@dataclass(frozen=True)
class DownloadEntry:
    id: int
    created_at: float
    endpoint: str
    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int
    part_size: int
    dest: str
    temp: str
    key_fingerprint: str | None


@dataclass(frozen=True)
class Resumable:
    """Where transfer progress is journaled, and whether this run resumes (`--resume`):
    continue a matching interrupted transfer, and keep what is finished if interrupted."""

    journal: Journal
    endpoint: str
    resume: bool


class Journal:
    """Blocking SQLite access; call it from a worker thread inside async code."""

    def __init__(self, path: Path) -> None:
        self.path = path
        for companion in ("", "-wal", "-shm", "-journal"):  # SQLite's files
            protect(f"{path}{companion}", "the resume journal")
        # No fsync per finished part: the journal must survive a killed process (it does in
        # WAL mode), not an OS crash, and ListParts is the final word anyway.
        self._db = SharedConnection(path, schema=SCHEMA, synchronous="NORMAL", foreign_keys=True)

    def close(self) -> None:
        self._db.close()

    # -- shared by both tables -----------------------------------------------------------------

    def _start(self, table: str, entry: UploadEntry | DownloadEntry) -> int:
        """Insert `entry` (its id is SQLite's to choose, its time is now); return the id."""
        columns = [f.name for f in fields(entry)][1:]
        values = [time.time(), *(getattr(entry, name) for name in columns[1:])]
        with self._db.transaction() as db:
            cursor = db.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 - constant names
                f"VALUES ({', '.join('?' for _ in columns)})",
                values,
            )
            return int(cursor.lastrowid or 0)

    def _rows(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with self._db.transaction() as db:
            return list(db.execute(sql, params).fetchall())

    def _execute(self, sql: str, params: tuple[object, ...]) -> None:
        with self._db.transaction() as db:
            db.execute(sql, params)

    # -- uploads ----------------------------------------------------------------------------

    def find_upload(
        self, endpoint: str, bucket: str, key: str, source: str, size: int, mtime_ns: int
    ) -> UploadEntry | None:
        rows = self._rows(
            "SELECT * FROM uploads WHERE endpoint=? AND bucket=? AND key=? AND source=? "
            "AND source_size=? AND source_mtime_ns=? ORDER BY id DESC LIMIT 1",
            (endpoint, bucket, key, source, size, mtime_ns),
        )
        return UploadEntry(*rows[0]) if rows else None

    def start_upload(self, entry: UploadEntry) -> int:
        return self._start("uploads", entry)

    def part_done(
        self, upload: int, part_number: int, etag: str, checksum: str | None, crc: int
    ) -> None:
        self._execute(
            "INSERT OR REPLACE INTO upload_parts VALUES (?, ?, ?, ?, ?)",
            (upload, part_number, etag, checksum, crc),
        )

    def upload_parts(self, upload: int) -> dict[int, tuple[str, str | None, int]]:
        rows = self._rows(
            "SELECT part_number, etag, checksum, crc FROM upload_parts WHERE upload=?", (upload,)
        )
        return {n: (etag, checksum, crc) for n, etag, checksum, crc in rows}

    def forget_upload(self, upload: int) -> None:
        self._execute("DELETE FROM uploads WHERE id=?", (upload,))

    def uploads(self) -> list[UploadEntry]:
        return [UploadEntry(*row) for row in self._rows("SELECT * FROM uploads ORDER BY id")]

    # -- downloads --------------------------------------------------------------------------

    def find_download(
        self, endpoint: str, bucket: str, key: str, dest: str
    ) -> DownloadEntry | None:
        rows = self._rows(
            "SELECT * FROM downloads WHERE endpoint=? AND bucket=? AND key=? AND dest=? "
            "ORDER BY id DESC LIMIT 1",
            (endpoint, bucket, key, dest),
        )
        return DownloadEntry(*rows[0]) if rows else None

    def start_download(self, entry: DownloadEntry) -> int:
        return self._start("downloads", entry)

    def range_done(self, download: int, part_number: int, crc: int) -> None:
        self._execute(
            "INSERT OR REPLACE INTO download_parts VALUES (?, ?, ?)",
            (download, part_number, crc),
        )

    def download_parts(self, download: int) -> dict[int, int]:
        rows = self._rows(
            "SELECT part_number, crc FROM download_parts WHERE download=?", (download,)
        )
        return dict(rows)

    def forget_download(self, download: int) -> None:
        self._execute("DELETE FROM downloads WHERE id=?", (download,))

    def downloads(self) -> list[DownloadEntry]:
        return [DownloadEntry(*row) for row in self._rows("SELECT * FROM downloads ORDER BY id")]
