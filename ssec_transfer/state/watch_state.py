"""The watch mode's memory across restarts: which file contents already reached which object.

A small SQLite database (WAL mode, so a crash never corrupts it and readers never block the
writer) with one row per destination object: the relative path, size and mtime_ns of the
local file that was sent, the fingerprint of the key it was sent under, the object's ETag and
version id, when it was uploaded and whether a HEAD confirmed it. Keys are never stored: the
fingerprint (base64 MD5 of the key, which servers echo back anyway) only names them.

Across months it stays bounded: a row whose file is gone from the folder gets `gone_since`,
and rows gone longer than `--forget-after` are deleted (`apps.watch_upkeep` decides when).
Beside the uploads, `failures` holds the files whose last attempt failed (with the error and
the next retry) and `meta` the watcher's settings, pid, last poll and last upload, so that
`watch --status` (`apps.watch_status`) can tell, read-only, what a running watcher is doing.

Schema 2 added `uploads.gone_since`, `failures` and `meta`; a schema-1 file is migrated in
place when a watcher opens it, keeping every record.

An exclusive `flock` on the database file keeps two watchers from sharing one state file,
which would send every file twice. Every database call runs in a worker thread, one at a time.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from ssec_transfer.core.errors import UsageError
from ssec_transfer.state.sqlitedb import connect_wal

SCHEMA_VERSION = 2
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
# Schema 2, after the uploads table exists (a schema-1 file gets the column added first).
_SCHEMA_2 = (
    "CREATE INDEX IF NOT EXISTS uploads_gone ON uploads (bucket, gone_since) "
    "WHERE gone_since IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS failures (
    bucket      TEXT NOT NULL,
    path        TEXT NOT NULL,       -- relative posix path inside the watched folder
    attempts    INTEGER NOT NULL,
    last_error  TEXT NOT NULL,
    failed_at   REAL NOT NULL,       -- seconds since the epoch
    retry_at    REAL,                -- the next attempt, seconds since the epoch
    PRIMARY KEY (bucket, path)
)""",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
_COLUMNS = (
    "bucket, object_key, path, size, mtime_ns, key_fingerprint, etag, version_id, "
    "uploaded_at, verified, gone_since"
)


@dataclass(frozen=True)
class Failure:
    """A file whose last upload attempt failed, as `watch --status` shows it."""

    path: str
    attempts: int
    last_error: str
    failed_at: float
    retry_at: float | None = None


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
    gone_since: float | None = None  # seconds since the epoch the file was found gone

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
                _migrate(conn)
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
        """Record an upload (again, once verified), and when the last one happened."""
        row = (
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
            record.gone_since,
        )

        def put() -> None:
            with _transaction(self._conn):
                self._conn.execute(
                    f"INSERT OR REPLACE INTO uploads ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",  # noqa: S608 - constant
                    row,
                )
                _set_meta(self._conn, {"last_upload_at": record.uploaded_at})

        await self._run(put)

    async def mark_gone(self, bucket: str, object_keys: list[str], since: float | None) -> None:
        """Set (or, with None, clear) `gone_since` of these records, in one transaction."""
        if not object_keys:
            return

        def mark() -> None:
            with _transaction(self._conn):
                self._conn.executemany(
                    "UPDATE uploads SET gone_since = ? WHERE bucket = ? AND object_key = ?",
                    [(since, bucket, key) for key in object_keys],
                )

        await self._run(mark)

    async def prune_gone(self, bucket: str, before: float) -> list[str]:
        """Delete the records of files gone since before `before`; their object keys."""

        def prune() -> list[str]:
            where = "bucket = ? AND gone_since IS NOT NULL AND gone_since < ?"
            with _transaction(self._conn):
                keys = [
                    row[0]
                    for row in self._conn.execute(
                        f"SELECT object_key FROM uploads WHERE {where}",  # noqa: S608 - constant
                        (bucket, before),
                    )
                ]
                if keys:
                    self._conn.execute(f"DELETE FROM uploads WHERE {where}", (bucket, before))  # noqa: S608 - constant
            return keys

        result: list[str] = await self._run(prune)
        return result

    async def save_failures(self, bucket: str, failures: list[Failure], cleared: list[str]) -> None:
        """Record these failures and drop those of the `cleared` paths, in one transaction."""
        if not failures and not cleared:
            return

        def save() -> None:
            with _transaction(self._conn):
                self._conn.executemany(
                    "INSERT OR REPLACE INTO failures VALUES (?,?,?,?,?,?)",
                    [
                        (bucket, f.path, f.attempts, f.last_error, f.failed_at, f.retry_at)
                        for f in failures
                    ],
                )
                self._conn.executemany(
                    "DELETE FROM failures WHERE bucket = ? AND path = ?",
                    [(bucket, path) for path in cleared],
                )

        await self._run(save)

    async def failure_paths(self, bucket: str) -> set[str]:
        rows = await self._run(
            lambda: self._conn.execute(
                "SELECT path FROM failures WHERE bucket = ?", (bucket,)
            ).fetchall()
        )
        return {row[0] for row in rows}

    async def set_meta(self, values: dict[str, str]) -> None:
        """Facts for `watch --status`: settings, pid, last poll (`meta` table)."""

        def write() -> None:
            with _transaction(self._conn):
                _set_meta(self._conn, values)

        await self._run(write)

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


def _migrate(conn: sqlite3.Connection) -> None:
    """Create the tables, or bring a schema-1 file to schema 2 without losing a record."""
    with _transaction(conn):
        conn.execute(_SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(uploads)")}
        if "gone_since" not in columns:
            conn.execute("ALTER TABLE uploads ADD COLUMN gone_since REAL")
        for statement in _SCHEMA_2:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction on an autocommit connection: all of it, or none."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _set_meta(conn: sqlite3.Connection, values: dict[str, str]) -> None:
    conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(values.items()))


def _record(row: tuple[Any, ...]) -> UploadRecord:
    bucket, key, path, size, mtime_ns, fingerprint, etag, version_id, at, verified, gone = row
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
        gone_since=gone,
    )
