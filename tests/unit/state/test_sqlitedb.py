"""The SQLite helper the ledger, journal and watch state share: default paths, one reused
connection, locked write transactions, and clean failure on a file that is not a database."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import anyio
import pytest

from ssec_transfer.core.errors import UsageError
from ssec_transfer.state import journal, ledger
from ssec_transfer.state.sqlitedb import SharedConnection, connect_wal, write_locked, xdg_path
from ssec_transfer.state.watch_state import WatchState

SCHEMA = "CREATE TABLE IF NOT EXISTS t (n INTEGER);"


def test_default_paths_follow_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_STATE_HOME", "")  # empty counts as unset
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert ledger.default_path() == tmp_path / "data" / "ssec-transfer" / "ledger.sqlite"
    assert journal.default_path() == (
        tmp_path / "home" / ".local" / "state" / "ssec-transfer" / "journal.sqlite"
    )
    assert xdg_path("XDG_CACHE_HOME", ".cache", "x") == tmp_path / "home/.cache/ssec-transfer/x"


def test_one_connection_shared_by_threads_and_reopened_after_close(tmp_path: Path) -> None:
    shared = SharedConnection(tmp_path / "deep" / "db.sqlite", schema=SCHEMA)
    assert (tmp_path / "deep").stat().st_mode & 0o777 == 0o700
    seen: set[int] = set()

    def insert(n: int) -> None:
        with shared.transaction() as db:
            db.execute("INSERT INTO t VALUES (?)", (n,))
            seen.add(id(db))

    threads = [threading.Thread(target=insert, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 1
    shared.close()
    with shared.transaction() as db:
        assert db.execute("SELECT COUNT(*) FROM t").fetchone() == (20,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    shared.close()


def test_a_failed_transaction_is_rolled_back(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    shared = SharedConnection(path, schema=SCHEMA, foreign_keys=True)

    def fail_in_shared() -> None:
        with shared.transaction() as db:
            db.execute("INSERT INTO t VALUES (1)")
            raise RuntimeError

    def fail_in_locked() -> None:
        with write_locked(path) as db:
            db.execute("INSERT INTO t VALUES (2)")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fail_in_shared()
    with pytest.raises(RuntimeError):
        fail_in_locked()
    with write_locked(path) as db:
        db.execute("INSERT INTO t VALUES (3)")
    with shared.transaction() as db:
        assert db.execute("SELECT n FROM t").fetchall() == [(3,)]
        assert db.execute("PRAGMA foreign_keys").fetchone() == (1,)
    shared.close()


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not a database, not even close" * 100)
    with pytest.raises(sqlite3.DatabaseError):
        connect_wal(path)
    with pytest.raises(UsageError, match="not a usable SQLite database"):
        anyio.run(WatchState.open, path)


def test_watch_state_is_autocommit_wal(tmp_path: Path) -> None:
    async def main() -> None:
        state = await WatchState.open(tmp_path / "watch.sqlite")
        try:
            assert state._conn.isolation_level is None
            assert state._conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert state._conn.execute("PRAGMA busy_timeout").fetchone() == (5000,)
        finally:
            await state.aclose()

    anyio.run(main)
