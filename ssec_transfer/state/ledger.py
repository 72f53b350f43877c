"""A local record of every object this tool wrote or read: which key (by fingerprint) protects
which object version, its size, ETag and whole-object digest. Never the key itself.

With SSE-C the server keeps no key, so this answers "which key do I need for that object?" and
lets `--skip-existing` prove an object is the file it came from (the ETag is not an MD5 under
SSE-C). SQLite in WAL mode with a busy timeout, so several processes can write at once.

Besides transfers it holds two kinds of bookkeeping rows: `key-match` (a keyring key was found
to open an object the ledger did not know) and `derive` (the salt and master-key fingerprint of
a per-object derived key, written *before* the upload so no object can exist without them).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TextIO

from ssec_transfer.core.errors import UsageError
from ssec_transfer.core.protected import protect
from ssec_transfer.core.results import TransferResult
from ssec_transfer.state.sqlitedb import SharedConnection, write_locked, xdg_path

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

# Columns added after the first release, as (name, SQL type); added to older files on open.
ADDED_COLUMNS = (("salt", "TEXT"), ("derived_from", "TEXT"))

# Rows that are bookkeeping, not transfers: never the "latest transfer" of an object.
KEY_MATCH = "key-match"
DERIVE = "derive"
_NOT_TRANSFERS = (KEY_MATCH, DERIVE)

# What makes two rows the same event, for merging ledgers from several machines.
DEDUPE_COLUMNS = (
    "operation", "endpoint", "bucket", "key", "version_id", "etag", "recorded_at",
    "key_fingerprint",
)  # fmt: skip


def default_path() -> Path:
    """`$XDG_DATA_HOME/ssec-transfer/ledger.sqlite`: user data, needed to find keys again."""
    return xdg_path("XDG_DATA_HOME", ".local/share", "ledger.sqlite")


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
    salt: str | None = None  # base64 salt of a derived key (see keys.derive.derive_key)
    derived_from: str | None = None  # fingerprint of the master key it was derived from

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def salt_bytes(self) -> bytes | None:
        return base64.b64decode(self.salt) if self.salt else None


COLUMNS = tuple(f.name for f in fields(LedgerEntry))
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM transfers"  # noqa: S608 - constant column names
_INSERT = (
    f"INSERT INTO transfers ({', '.join(COLUMNS)}) "  # noqa: S608 - constant column names
    f"VALUES ({', '.join('?' for _ in COLUMNS)})"
)
_SAME_EVENT = " AND ".join(f"{c} IS ?" for c in DEDUPE_COLUMNS)
_EXISTS = f"SELECT 1 FROM transfers WHERE {_SAME_EVENT}"  # noqa: S608 - constant column names
_TRANSFERS_ONLY = f"operation NOT IN ({', '.join(repr(op) for op in _NOT_TRANSFERS)})"
# The newest real record of each object version, by time (merged ledgers interleave: row ids
# are local).
_RANKED = (
    "SELECT id, ROW_NUMBER() OVER (PARTITION BY endpoint, bucket, key, IFNULL(version_id, '') "
    "ORDER BY recorded_at DESC, id DESC) AS n FROM transfers WHERE operation != 'derive'"
)
_NEWEST_PER_VERSION = f"SELECT id FROM ({_RANKED}) WHERE n = 1"  # noqa: S608 - constant


class Ledger:
    """Blocking SQLite access; call it from a worker thread inside async code."""

    def __init__(self, path: Path) -> None:
        self.path = path
        for companion in ("", "-wal", "-shm", "-journal"):  # SQLite's files
            protect(f"{path}{companion}", "the ledger")
        # One connection for the ledger's life: a bulk run records a file many times a
        # second, and opening SQLite for each cost a fifth of its CPU.
        self._db = SharedConnection(path, schema=SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Add columns newer versions need. Several processes may open an old file at once:
        the check and the ALTER run under one write lock, and a lost race is harmless."""
        with self._db.transaction() as db:
            if not _missing_columns(db):
                return
        with write_locked(self.path) as db:
            for name, sql_type in _missing_columns(db):  # again: another process may have won
                db.execute(f"ALTER TABLE transfers ADD COLUMN {name} {sql_type}")

    def close(self) -> None:
        self._db.close()

    def record(self, endpoint: str, result: TransferResult) -> None:
        self.record_many([(endpoint, result)])

    def record_many(self, results: Sequence[tuple[str, TransferResult]]) -> None:
        """Record finished transfers (endpoint, result) in one transaction: a bulk run's
        files finish together, and a transaction (with its fsync) per file cost more than
        the rows (`core.groupcommit`)."""
        entries = []
        for endpoint, result in results:
            mtime: int | None = None
            with suppress(OSError):
                mtime = os.stat(result.path).st_mtime_ns
            entries.append(
                LedgerEntry(
                    time.time(), result.operation, endpoint, result.bucket, result.key,
                    result.version_id, result.etag, result.size, result.checksum,
                    result.key_fingerprint, result.path, mtime,
                )
            )  # fmt: skip
        with self._db.transaction() as db:
            db.executemany(_INSERT, [_values(entry) for entry in entries])

    def add(self, entry: LedgerEntry) -> None:
        """Append one row as given (bookkeeping rows, tests, imports)."""
        self.add_many([entry])

    def add_many(self, entries: Sequence[LedgerEntry]) -> None:
        """Append rows as given, in one transaction (a Dask client's rows of one poll)."""
        with self._db.transaction() as db:
            db.executemany(_INSERT, [_values(entry) for entry in entries])

    def record_key_match(
        self,
        endpoint: str,
        bucket: str,
        key: str,
        *,
        version_id: str | None,
        etag: str | None,
        size: int,
        key_fingerprint: str,
    ) -> None:
        """A keyring key was found to open this object version: remember it for next time."""
        self.add(
            LedgerEntry(
                time.time(), KEY_MATCH, endpoint, bucket, key, version_id, etag, size, None,
                key_fingerprint, None, None,
            )
        )  # fmt: skip

    def record_derivation(
        self,
        endpoint: str,
        bucket: str,
        key: str,
        *,
        salt: bytes,
        master_fingerprint: str,
        key_fingerprint: str,
    ) -> None:
        """Note the salt of a derived key before the object is written with it."""
        self.add(
            LedgerEntry(
                time.time(), DERIVE, endpoint, bucket, key, None, None, 0, None,
                key_fingerprint, None, None, base64.b64encode(salt).decode("ascii"),
                master_fingerprint,
            )
        )  # fmt: skip

    def latest(self, endpoint: str, bucket: str, key: str) -> LedgerEntry | None:
        """The most recent transfer of this object, whichever direction it moved."""
        with self._db.transaction() as db:
            row = db.execute(
                f"{_SELECT} WHERE endpoint = ? AND bucket = ? AND key = ? AND {_TRANSFERS_ONLY} "
                "ORDER BY id DESC LIMIT 1",
                (endpoint, bucket, key),
            ).fetchone()
        return LedgerEntry(*row) if row else None

    def show(self, endpoint: str | None, bucket: str, key: str) -> list[LedgerEntry]:
        """Every row about this object (every version, every endpoint when `endpoint` is
        None), newest first."""
        query = f"{_SELECT} WHERE bucket = ? AND key = ?"
        params: tuple[str, ...] = (bucket, key)
        if endpoint is not None:
            query += " AND endpoint = ?"
            params += (endpoint,)
        with self._db.transaction() as db:
            rows = db.execute(query + " ORDER BY recorded_at DESC, id DESC", params).fetchall()
        return [LedgerEntry(*row) for row in rows]

    def find_fingerprint(
        self, endpoint: str, bucket: str, key: str, version_id: str | None = None
    ) -> str | None:
        """The fingerprint of the key that last protected this object (this version, when
        given). Derivation rows are intentions, not objects, so they do not count."""
        query = (
            "SELECT key_fingerprint FROM transfers WHERE endpoint = ? AND bucket = ? AND key = ? "
            "AND key_fingerprint IS NOT NULL AND operation != ?"
        )
        params: tuple[str, ...] = (endpoint, bucket, key, DERIVE)
        if version_id is not None:
            query += " AND version_id = ?"
            params += (version_id,)
        with self._db.transaction() as db:
            row = db.execute(
                query + " ORDER BY recorded_at DESC, id DESC LIMIT 1", params
            ).fetchone()
        return str(row[0]) if row else None

    def find_derivation(
        self, endpoint: str, bucket: str, key: str, key_fingerprint: str
    ) -> tuple[bytes, str] | None:
        """(salt, master fingerprint) of the derived key with this fingerprint, if any."""
        with self._db.transaction() as db:
            row = db.execute(
                "SELECT salt, derived_from FROM transfers WHERE endpoint = ? AND bucket = ? "
                "AND key = ? AND key_fingerprint = ? AND salt IS NOT NULL "
                "AND derived_from IS NOT NULL ORDER BY id DESC LIMIT 1",
                (endpoint, bucket, key, key_fingerprint),
            ).fetchone()
        return (base64.b64decode(row[0]), str(row[1])) if row else None

    def recent_fingerprints(self, endpoint: str, bucket: str) -> list[str]:
        """Fingerprints seen in this bucket, most recently used first: good first guesses."""
        with self._db.transaction() as db:
            rows = db.execute(
                "SELECT key_fingerprint FROM transfers WHERE endpoint = ? AND bucket = ? "
                "AND key_fingerprint IS NOT NULL GROUP BY key_fingerprint ORDER BY MAX(id) DESC",
                (endpoint, bucket),
            ).fetchall()
        return [str(r[0]) for r in rows]

    def protected_by(self, fingerprint: str) -> list[LedgerEntry]:
        """Object versions whose newest record names this key, directly or as the master of
        a derived key: what would become unreadable without it."""
        with self._db.transaction() as db:
            derived = {
                str(r[0])
                for r in db.execute(
                    "SELECT DISTINCT key_fingerprint FROM transfers WHERE derived_from = ?",
                    (fingerprint,),
                )
            }
            wanted = sorted({fingerprint} | derived)
            marks = ", ".join("?" for _ in wanted)
            query = (
                f"{_SELECT} WHERE id IN ({_NEWEST_PER_VERSION}) "
                f"AND key_fingerprint IN ({marks}) ORDER BY endpoint, bucket, key, id"
            )
            rows = db.execute(query, wanted).fetchall()
        return [LedgerEntry(*row) for row in rows]

    def count(self) -> int:
        with self._db.transaction() as db:
            return int(db.execute("SELECT COUNT(*) FROM transfers").fetchone()[0])

    def export(self, out: TextIO) -> int:
        """Write every row as one JSON object per line (all columns but the local row id),
        oldest first. There is no key column: a ledger never holds a key."""
        written = 0
        with self._db.transaction() as db:
            for row in db.execute(f"{_SELECT} ORDER BY id"):
                out.write(json.dumps(dict(zip(COLUMNS, row, strict=True)), sort_keys=True))
                out.write("\n")
                written += 1
        return written

    def import_(self, lines: Iterable[str]) -> int:
        """Merge rows exported elsewhere; rows already present (same event) are skipped, so
        importing twice adds nothing. All or nothing: a bad line imports no row. Returns the
        number of rows added."""
        entries = [_parse_line(n, line) for n, line in enumerate(lines, 1) if line.strip()]
        added = 0
        with write_locked(self.path) as db:  # no other writer between the check and the insert
            for entry in entries:
                same = tuple(getattr(entry, c) for c in DEDUPE_COLUMNS)
                if db.execute(_EXISTS, same).fetchone():
                    continue
                db.execute(_INSERT, _values(entry))
                added += 1
        return added


def _missing_columns(db: sqlite3.Connection) -> list[tuple[str, str]]:
    present = {row[1] for row in db.execute("PRAGMA table_info(transfers)")}
    return [(name, sql_type) for name, sql_type in ADDED_COLUMNS if name not in present]


def _values(entry: LedgerEntry) -> tuple[Any, ...]:
    return tuple(getattr(entry, c) for c in COLUMNS)


_TEXT = {"operation", "endpoint", "bucket", "key"}
_OPTIONAL_TEXT = {
    "version_id", "etag", "checksum", "key_fingerprint", "local_path", "salt", "derived_from",
}  # fmt: skip


def _parse_line(number: int, line: str) -> LedgerEntry:
    """One exported row, checked field by field: an import must not smuggle in garbage."""

    def bad(why: str) -> UsageError:
        return UsageError(
            f"ledger import: line {number}: {why}",
            hint="import files are what `ssec-transfer ledger export` writes: one JSON "
            "object per line; nothing was imported",
        )

    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise bad(f"not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise bad("not a JSON object")
    values: dict[str, Any] = {}
    for name in COLUMNS:
        value = data.get(name)
        if name in _TEXT:
            if not isinstance(value, str) or not value:
                raise bad(f"{name!r} must be a non-empty string")
        elif name in _OPTIONAL_TEXT:
            if value is not None and not isinstance(value, str):
                raise bad(f"{name!r} must be a string or null")
        elif name == "recorded_at":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise bad("'recorded_at' must be a number (seconds since 1970)")
            if not math.isfinite(value):
                raise bad("'recorded_at' must be finite")
            value = float(value)
        elif name == "size":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise bad("'size' must be a whole number of bytes")
        elif name == "local_mtime_ns" and (
            value is not None and (isinstance(value, bool) or not isinstance(value, int))
        ):
            raise bad("'local_mtime_ns' must be a whole number or null")
        values[name] = value
    if values["salt"] is not None:
        try:
            base64.b64decode(values["salt"], validate=True)
        except (binascii.Error, ValueError):
            raise bad("'salt' must be base64") from None
    return LedgerEntry(**values)
