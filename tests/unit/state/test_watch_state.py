"""The watch state across months: migration, forgetting files long gone, failures, status."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from ssec_transfer.apps.watch_config import WatchConfig
from ssec_transfer.apps.watch_status import describe, read_status
from ssec_transfer.apps.watch_upkeep import UPKEEP_EVERY, Upkeep
from ssec_transfer.state.watch_state import SCHEMA_VERSION, UploadRecord, WatchState

pytestmark = pytest.mark.anyio

V1 = """CREATE TABLE uploads (bucket TEXT NOT NULL, object_key TEXT NOT NULL, path TEXT NOT NULL,
size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, key_fingerprint TEXT NOT NULL, etag TEXT,
version_id TEXT, uploaded_at TEXT NOT NULL, verified INTEGER NOT NULL DEFAULT 0,
PRIMARY KEY (bucket, object_key))"""


def record(path: str, size: int = 1, mtime_ns: int = 5) -> UploadRecord:
    return UploadRecord(
        "b", path, path, size, mtime_ns, "fp", '"e"', None, "2024-01-01T00:00:00+00:00"
    )


async def test_a_schema_1_state_file_opens_with_its_records(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(V1)
        db.execute("INSERT INTO uploads VALUES ('b','k','k',3,7,'fp',NULL,NULL,'2024-01-01',1)")
        db.execute("PRAGMA user_version=1")
    db.close()
    state = await WatchState.open(path)
    try:
        records = await state.records("b")
        assert records["k"].matches("k", 3, 7)
        assert records["k"].gone_since is None
        await state.put(record("new"))
        assert set(await state.records("b")) == {"k", "new"}
    finally:
        await state.aclose()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    db.close()


async def test_records_of_files_gone_longer_than_forget_after_are_forgotten(
    tmp_path: Path,
) -> None:
    now = [1_000_000.0]
    config = WatchConfig(directory=tmp_path, bucket="b", forget_after=3600)
    upkeep = Upkeep(config, clock=lambda: now[0])
    state = await WatchState.open(tmp_path / "s.sqlite")
    try:
        for rel in ("kept", "gone", "back"):
            await state.put(record(rel))
        records = await state.records("b")
        present = {"kept", "back"}
        announced = {"kept": (1, 5), "gone": (1, 5)}
        await upkeep.after_poll(state, lambda: present, records, (), per_path=(announced,))
        assert records["gone"].gone_since == now[0]
        assert records["kept"].gone_since is None
        assert announced == {"kept": (1, 5)}  # memory for paths gone is dropped
        present = {"kept"}  # `back` leaves, then comes back before its time is up
        now[0] += UPKEEP_EVERY
        await upkeep.after_poll(state, lambda: present, records, ())
        present = {"kept", "back"}
        now[0] += 3000
        await upkeep.after_poll(state, lambda: present, records, ())
        assert records["back"].gone_since is None
        now[0] += 700  # `gone` has been gone for more than an hour now
        await upkeep.after_poll(state, lambda: present, records, ())
        assert set(records) == {"kept", "back"} == set(await state.records("b"))
        assert upkeep.forgotten == 1
    finally:
        await state.aclose()


async def test_failures_and_settings_are_there_for_watch_status(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    for rel in ("sent.nc", "bad.nc", "old.nc", "new.nc", ".hidden", "x.tmp"):
        (root / rel).write_bytes(b"data")
    os.utime(root / "old.nc", (1, 1))
    os.utime(root / "bad.nc", (1, 1))
    st = (root / "sent.nc").stat()
    config = WatchConfig(directory=root, bucket="b", prefix="p/", settle=60)
    upkeep = Upkeep(config)
    state = await WatchState.open(config.state_file)
    try:
        await state.put(UploadRecord("b", "p/sent.nc", "sent.nc", st.st_size, st.st_mtime_ns,
                                     "fp", None, None, "2024-01-01T00:00:00+00:00"))  # fmt: skip
        records = await state.records("b")
        upkeep.failed("bad.nc", 3, "access denied", 30.0)
        here = {p.name for p in root.iterdir()}
        await upkeep.after_poll(state, lambda: here, records, {"bad.nc"})
        status = read_status(root)  # read-only, while the watcher holds the file
    finally:
        await state.aclose()
    assert (status.target, status.uploaded, status.remembered) == ("s3://b/p/", 1, 1)
    assert [i["path"] for i in status.pending] == ["old.nc"]
    assert [i["path"] for i in status.settling] == ["new.nc"]
    assert [(i["path"], i["attempts"], i["error"]) for i in status.failed] == [
        ("bad.nc", 3, "access denied")
    ]
    assert status.running
    assert status.last_upload_at == "2024-01-01T00:00:00+00:00"
    text = "\n".join(describe(status))
    assert "bad.nc: 3 attempt(s), next retry in" in text
    assert "pending" in text
    # the next run has no failures yet: the table follows it
    await_state = await WatchState.open(config.state_file)
    try:
        await Upkeep(config).after_poll(await_state, lambda: here, records, ())
    finally:
        await await_state.aclose()
    assert read_status(root).failed == []
