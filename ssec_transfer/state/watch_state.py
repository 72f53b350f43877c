"""The watch mode's memory across restarts: which file contents already reached which object.

A small SQLite database (WAL mode, so a crash never corrupts it and readers never block the
writer) with one row per destination object: the relative path, size and mtime_ns of the
local file that was sent, the fingerprint of the key it was sent under, the object's ETag and
version id, when it was uploaded and whether a HEAD confirmed it. Keys are never stored: the
fingerprint (base64 MD5 of the key, which servers echo back anyway) only names them.

An exclusive `flock` on the database file keeps two watchers from sharing one state file,
which would send every file twice. Every database call runs in a worker thread, one at a time.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from ssec_transfer.core.errors import UsageError
from ssec_transfer.state.sqlitedb import connect_wal

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    bucket          TEXT NOT NULL,
    object_key      TEXT NOT NULL,
    path            TEXT NOT NULL,     -- relative posix path inside the watched folder
    size            INTEGER NOT NULL,
    mtime_ns        INTEGER NOT NULL,
    key_fingerprint TEXT NOT NULL,     -- base64 MD5 of the SSE-C key, never the key
    etag            TEXT,
    version_id      TEXT,
    uploaded_at     TEXT NOT NULL,     -- ISO 8601, UTC
    verified        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, object_key)
)
"""
_COLUMNS = (
    "bucket, object_key, path, size, mtime_ns, key_fingerprint, etag, version_id, "
    "uploaded_at, verified"
)


@dataclass(frozen=True)
class UploadRecord:
    """One finished upload: this content of `path` is object `bucket/object_key`."""

    bucket: str
    object_key: str
    path: str
    size: int
    mtime_ns: int
    key_fingerprint: str
    etag: str | None
    version_id: str | None
    uploaded_at: str
    verified: bool = False

    def matches(self, path: str, size: int, mtime_ns: int) -> bool:
        return (self.path, self.size, self.mtime_ns) == (path, size, mtime_ns)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class WatchState:
    """The state store. Open with `await WatchState.open(path)`; close with `await aclose()`."""

    def __init__(self, path: Path, conn: sqlite3.Connection, lock_fd: int) -> None:
        self.path = path
        self._conn = conn
        self._lock_fd = lock_fd
        self._serial = anyio.CapacityLimiter(1)  # sqlite3 connections are not thread-safe

    @classmethod
    async def open(cls, path: str | os.PathLike[str]) -> WatchState:
        return await anyio.to_thread.run_sync(cls._open_sync, Path(path))

    @classmethod
    def _open_sync(cls, path: Path) -> WatchState:
        if not path.parent.is_dir():
            raise UsageError(f"folder {path.parent} of the state file does not exist")
        try:
            lock_fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise UsageError(f"cannot open state file {path}: {exc.strerror}") from None
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise UsageError(
                f"another `ssec-transfer watch` is using the state file {path}",
                hint="stop it first, or give this one its own --state PATH",
            ) from None
        try:
            # WAL with synchronous=NORMAL: a crash loses no commit. The flock keeps other
            # writers out, so a short busy timeout is enough.
            conn = connect_wal(path, synchronous="NORMAL", timeout=5.0, autocommit=True)
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise UsageError(
                        f"state file {path} was written by a newer ssec-transfer "
                        f"(schema {version})",
                        hint="upgrade ssec-transfer, or give --state a new file",
                    )
                conn.execute(_SCHEMA)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            except BaseException:
                conn.close()
                raise
        except sqlite3.DatabaseError as exc:
            os.close(lock_fd)
            raise UsageError(
                f"state file {path} is not a usable SQLite database ({exc})",
                hint="move it away; the watcher then starts afresh (and re-sends every file)",
            ) from None
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(path, conn, lock_fd)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._serial)

    async def records(self, bucket: str) -> dict[str, UploadRecord]:
        """Every finished upload into `bucket`, by object key."""
        rows: list[tuple[Any, ...]] = await self._run(
            lambda: self._conn.execute(
                f"SELECT {_COLUMNS} FROM uploads WHERE bucket = ?",  # noqa: S608 - constant
                (bucket,),
            ).fetchall()
        )
        return {row[1]: _record(row) for row in rows}

    async def put(self, record: UploadRecord) -> None:
        await self._run(
            lambda: self._conn.execute(
                f"INSERT OR REPLACE INTO uploads ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",  # noqa: S608 - constant
                (
                    record.bucket,
                    record.object_key,
                    record.path,
                    record.size,
                    record.mtime_ns,
                    record.key_fingerprint,
                    record.etag,
                    record.version_id,
                    record.uploaded_at,
                    int(record.verified),
                ),
            )
        )

    async def forget(self, bucket: str, object_key: str) -> None:
        await self._run(
            lambda: self._conn.execute(
                "DELETE FROM uploads WHERE bucket = ? AND object_key = ?", (bucket, object_key)
            )
        )

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._run(self._close_sync)

    def _close_sync(self) -> None:
        try:
            self._conn.close()
        finally:
            os.close(self._lock_fd)  # releases the flock


def _record(row: tuple[Any, ...]) -> UploadRecord:
    bucket, key, path, size, mtime_ns, fingerprint, etag, version_id, at, verified = row
    return UploadRecord(
        bucket=bucket,
        object_key=key,
        path=path,
        size=int(size),
        mtime_ns=int(mtime_ns),
        key_fingerprint=fingerprint,
        etag=etag,
        version_id=version_id,
        uploaded_at=at,
        verified=bool(verified),
    )
