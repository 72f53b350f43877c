"""`watch --status DIR`: what a watcher has done and is waiting for, read from its state file
(read-only: WAL lets it read while the watcher writes) and a scan of the folder.

Each file found is classified as the watcher would: uploaded (its record matches), failed
(its last attempt failed: the error, attempts and next retry the watcher wrote down),
settling (written less than --settle seconds ago, or waiting for its marker) or pending
(complete, not sent yet). Paths that cannot be uploaded (FIFO, dangling link...) are listed
with their reason. The watcher's settings come from the state file (`watch_upkeep`), so the
rules and prefix are the running watcher's, not retyped.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ssec_transfer.apps.bulk import folder_excluded, is_included
from ssec_transfer.apps.sources import DefaultExcludes, printable, walk_sources
from ssec_transfer.apps.watch_config import DEFAULT_STATE_NAME
from ssec_transfer.core.errors import UsageError


@dataclass
class WatchStatus:
    """What `watch --status` reports (`to_dict` is the JSON summary's fields)."""

    directory: str
    state: str
    target: str | None = None  # s3://BUCKET/PREFIX, from the watcher's settings
    pid: int | None = None
    running: bool = False
    started_at: str | None = None
    last_poll_at: str | None = None
    last_upload_at: str | None = None
    last_upload_ago: float | None = None  # seconds
    remembered: int = 0  # upload records in the state file
    uploaded: int = 0  # files in the folder already sent
    pending: list[dict[str, Any]] = field(default_factory=list)
    settling: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    not_sendable: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "directory": self.directory,
            "state": self.state,
            "target": self.target,
            "running": self.running,
            "pid": self.pid,
            "started_at": self.started_at,
            "last_poll_at": self.last_poll_at,
            "last_upload_at": self.last_upload_at,
            "last_upload_ago": round(self.last_upload_ago, 1)
            if self.last_upload_ago is not None
            else None,
            "remembered": self.remembered,
            "uploaded": self.uploaded,
            "pending": len(self.pending),
            "settling": len(self.settling),
            "failed": len(self.failed),
            "not_sendable": len(self.not_sendable),
            "paths": {
                "pending": self.pending,
                "settling": self.settling,
                "failed": self.failed,
                "not_sendable": self.not_sendable,
            },
        }


def _connect_read_only(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise UsageError(
            f"no watch state file at {path}",
            hint="give the folder a watcher watches, or its --state PATH",
        )
    try:
        return sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise UsageError(f"cannot read the watch state file {path} ({exc})") from None


def _query(conn: sqlite3.Connection, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows, or none where the table does not exist (a state file of an older version)."""
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such" in str(exc):
            return []
        raise


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _epoch(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


def read_status(
    directory: Path, state_path: Path | None = None, *, now: float | None = None
) -> WatchStatus:
    """The status of the watcher of `directory` (blocking: reads SQLite and walks the folder)."""
    now = time.time() if now is None else now
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a folder", hint="give the folder watch watches")
    path = state_path or directory / DEFAULT_STATE_NAME
    conn = _connect_read_only(path)
    try:
        try:
            meta = dict(_query(conn, "SELECT name, value FROM meta"))
            settings = json.loads(meta.get("settings", "{}"))
            bucket = settings.get("bucket")
            # Without settings (an older watcher's file): every bucket's rows.
            uploads = _query(
                conn,
                "SELECT object_key, path, size, mtime_ns, uploaded_at FROM uploads "
                "WHERE ? IS NULL OR bucket = ?",
                bucket,
                bucket,
            )
            failures = _query(
                conn,
                "SELECT path, attempts, last_error, failed_at, retry_at FROM failures "
                "WHERE ? IS NULL OR bucket = ?",
                bucket,
                bucket,
            )
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"cannot read the watch state file {path} ({exc})") from None
    finally:
        conn.close()
    pid = int(meta["pid"]) if meta.get("pid", "").isdigit() else None
    last = meta.get("last_upload_at") or max((row[4] for row in uploads), default=None)
    last_epoch = _epoch(last)
    status = WatchStatus(
        directory=printable(directory),
        state=printable(path),
        target=f"s3://{bucket}/{settings.get('prefix', '')}" if bucket else None,
        pid=pid,
        running=_alive(pid),
        started_at=meta.get("started_at"),
        last_poll_at=meta.get("last_poll_at"),
        last_upload_at=last,
        last_upload_ago=now - last_epoch if last_epoch is not None else None,
        remembered=len(uploads),
    )
    by_path = {row[1]: (row[2], row[3]) for row in uploads}
    failed = {row[0]: row for row in failures}
    _classify(status, directory, path, settings, by_path, failed, now)
    return status


def _classify(
    status: WatchStatus,
    directory: Path,
    state_path: Path,
    settings: dict[str, Any],
    sent: dict[str, tuple[int, int]],
    failed: dict[str, tuple[Any, ...]],
    now: float,
) -> None:
    rules: Any = [tuple(rule) for rule in settings.get("rules", [])]
    settle = float(settings.get("settle", 5.0))
    suffix = settings.get("marker_suffix")
    state_names = {state_path.name + s for s in ("", "-wal", "-shm", "-journal")}
    defaults = DefaultExcludes() if settings.get("default_excludes", True) else None

    def prune(rel: str, entry: Path) -> bool:
        name = rel.rsplit("/", 1)[-1]
        if name in state_names or name.startswith(DEFAULT_STATE_NAME):
            return True
        if name.startswith(".") and ".ssec-transfer-" in name:
            return True
        return defaults is not None and defaults(rel, entry)

    found = list(walk_sources(directory, into_linked_folders=False, prune=prune))
    names = {entry.rel for entry in found}
    for entry in found:
        rel = entry.rel
        if suffix and rel.endswith(suffix):
            continue
        if folder_excluded(rel, rules) if rel.endswith("/") else not is_included(rel, rules):
            continue
        if entry.problem is not None:
            if entry.problem.reason != "vanished":
                status.not_sendable.append(
                    {"path": printable(rel), "reason": entry.problem.reason,
                     "error": str(entry.problem)}
                )  # fmt: skip
            continue
        if sent.get(rel) == (entry.size, entry.mtime_ns):
            status.uploaded += 1
            continue
        item: dict[str, Any] = {"path": printable(rel), "size": entry.size}
        if rel in failed:
            _, attempts, error, failed_at, retry_at = failed[rel]
            item |= {"attempts": attempts, "error": error, "failed_at": failed_at,
                     "retry_at": retry_at}  # fmt: skip
            status.failed.append(item)
        elif suffix:
            (status.pending if f"{rel}{suffix}" in names else status.settling).append(item)
        else:
            age = max(0.0, now - entry.mtime_ns / 1e9)
            item["age"] = round(age, 1)
            (status.settling if age < settle else status.pending).append(item)


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit} ago"
    return f"{seconds:.0f} s ago"


def describe(status: WatchStatus, *, now: float | None = None, limit: int = 20) -> list[str]:
    """The human report, a line each (lists cut at `limit` paths)."""
    now = time.time() if now is None else now
    lines = [f"watch status of {status.directory}" + (f" -> {status.target}" if status.target
             else "") + f" (state {status.state})"]  # fmt: skip
    if status.running:
        poll = _epoch(status.last_poll_at)
        lines.append(f"watcher: running, pid {status.pid}" + (
            f", last poll written {_ago(now - poll)}" if poll else ""))  # fmt: skip
    else:
        lines.append("watcher: not running" + (
            f" (last poll {status.last_poll_at})" if status.last_poll_at else ""))  # fmt: skip
    if status.last_upload_at and status.last_upload_ago is not None:
        lines.append(
            f"last upload: {status.last_upload_at} ({_ago(status.last_upload_ago)}); "
            f"{status.remembered} uploads remembered, {status.uploaded} of them still here"
        )
    else:
        lines.append("last upload: none yet")
    for title, items in (
        ("pending (complete, not sent yet)", status.pending),
        ("settling (still being written, or waiting for its marker)", status.settling),
        ("failed (retried later)", status.failed),
        ("not sendable (reported once; fix the path)", status.not_sendable),
    ):
        lines.append(f"{title}: {len(items)}")
        lines.extend("  " + _item(item, now) for item in items[:limit])
        if len(items) > limit:
            lines.append(f"  ... and {len(items) - limit} more")
    return lines


def _item(item: dict[str, Any], now: float) -> str:
    if "reason" in item:
        return f"{item['path']}: {item['error']}"
    if "attempts" in item:
        retry = item.get("retry_at")
        when = f", next retry in {max(0.0, retry - now):.0f} s" if retry else ""
        return f"{item['path']}: {item['attempts']} attempt(s){when}: {item['error']}"
    age = f", modified {_ago(item['age'])}" if "age" in item else ""
    return f"{item['path']} ({item['size']} bytes{age})"
