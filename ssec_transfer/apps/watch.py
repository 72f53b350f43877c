"""Ingestion watch mode: upload each file that appears in a folder once it is complete.

    ssec-transfer watch DIR s3://BUCKET/PREFIX/ --key-file K [--settle 5] [--marker-suffix .done]

The folder is polled (recursively; portable and reliable on network file systems, where
inotify is not). A file is complete when its size and mtime have not changed for `settle`
seconds, or, with a marker suffix, when `NAME.done` exists. Complete files go through the one
engine, at most `max_files` at a time, so its scheduler still bounds requests and memory.

After a successful upload the file is recorded in a SQLite state file (`watch_state`), so a
restart never sends it again; a file that changes afterwards is sent again (a new version).
Local files are deleted or moved only after a HEAD with the key confirmed the object. A failed
upload is reported and retried on a later poll with exponential backoff; the others continue.
A path that can never be uploaded as it is (a FIFO, socket or device, a dangling symbolic link,
a link loop, an unreadable file or folder, a name that is not UTF-8, a link to a folder, which
is not followed) is reported once with its reason (`sources.REASONS`), not retried in a loop;
it is reported again if it changes, and uploaded once it becomes a readable regular file.
Setting `stop` ends polling at once (a poll sleep or a file's retry backoff does not hold
it), lets in-flight uploads finish for `drain_timeout` seconds, then cancels them (the engine
aborts their multipart uploads). Which signals set it is the command line's choice
(`cli.watch_command`). A `WatchObserver` hears every event (readiness, polls, uploads,
failures, aborts, the stop) for systemd, metrics and health (`apps.watch_observer`).
"""

from __future__ import annotations

import logging
import shutil
import stat
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import anyio
from anyio.abc import TaskGroup

from ssec_transfer.apps.bulk import folder_excluded, is_included
from ssec_transfer.apps.sources import (
    DefaultExcludes,
    SourceProblemError,
    check_source,
    key_problem,
    printable,
    walk_sources,
)
from ssec_transfer.apps.watch_config import DEFAULT_STATE_NAME as DEFAULT_STATE_NAME
from ssec_transfer.apps.watch_config import OnSuccess as OnSuccess
from ssec_transfer.apps.watch_config import WatchConfig as WatchConfig
from ssec_transfer.apps.watch_observer import WatchObserver
from ssec_transfer.apps.watch_upkeep import Upkeep
from ssec_transfer.core.errors import (
    ChecksumUnsupportedError,
    CredentialsError,
    InsecureEndpointError,
    IntegrityError,
    KeyFileError,
    LocalIOError,
    SSECTransferError,
)
from ssec_transfer.core.report import Status as ReportStatus
from ssec_transfer.core.report import mib_per_s, object_record
from ssec_transfer.core.results import ProgressCallback, TransferResult
from ssec_transfer.core.taskgroups import task_group
from ssec_transfer.engine import TransferEngine
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.state.watch_state import UploadRecord, WatchState, utc_now

log = logging.getLogger(__name__)

MAX_BACKOFF_FACTOR = 16  # retries slow down to at most 16 x retry_interval (8 min by default)
# Errors no retry can cure: the configuration is wrong, so the watcher stops and says why.
FATAL_ERRORS: tuple[type[SSECTransferError], ...] = (
    InsecureEndpointError,
    CredentialsError,
    ChecksumUnsupportedError,
    KeyFileError,
)

Status = Literal["uploaded", "failed", "skipped"]


@dataclass(frozen=True)
class WatchEvent:
    """One outcome, for progress displays and JSON lines."""

    path: str  # relative posix path inside the watched folder
    bucket: str
    object_key: str
    status: Status
    size: int | None = None
    etag: str | None = None
    version_id: str | None = None
    seconds: float = 0.0
    error: str | None = None
    reason: str | None = None  # a path that cannot be uploaded: why (`sources.REASONS`)
    local_path: str | None = None  # the file, as the watched folder was named
    key_fingerprint: str | None = None
    checksum: str | None = None  # the whole-object digest the client computed (`crc32c:...`)
    attempt: int = 1  # this file's attempt: 2 and more after failures
    retry_in: float | None = None  # a failed upload: seconds until its next attempt (None: none)
    timestamp: str = field(default_factory=lambda: utc_timestamp())  # when it happened
    # The failure itself where it was one of the tool's errors: its HTTP status, hint...
    problem: SSECTransferError | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON line (`core.report.object_record`): an upload, ok, skipped (sent by an
        earlier run) or failed; `relative_path` is the path inside the watched folder."""
        return object_record(
            "upload",
            _STATUS[self.status],
            source=self.local_path,
            destination=f"s3://{self.bucket}/{self.object_key}",
            bucket=self.bucket,
            key=self.object_key,
            path=self.local_path,
            size=self.size,
            seconds=self.seconds,
            etag=self.etag,
            version_id=self.version_id,
            key_fingerprint=self.key_fingerprint,
            checksum=self.checksum,
            reason=self.reason,
            error=self.problem or self.error,
            extra={
                "relative_path": self.path,
                "timestamp": self.timestamp,
                "attempt": self.attempt,
                "retry_in": self.retry_in,
            },
        )

    @property
    def retry_plan(self) -> str | None:
        """`retry in 30 s, attempt 3` for a failure that will be tried again."""
        if self.retry_in is None:
            return None
        return f"retry in {self.retry_in:.0f} s, attempt {self.attempt + 1}"


def utc_timestamp() -> str:
    """Now, ISO 8601 in UTC to the second (`2026-03-01T12:00:05Z`): what log readers sort."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_STATUS: dict[Status, ReportStatus] = {"uploaded": "ok", "skipped": "skipped", "failed": "failed"}


@dataclass
class WatchSummary:
    """Counts for the end of a run; `failing` lists what a restart will try again."""

    uploaded: int = 0
    failed: int = 0  # failed attempts (uploads cancelled at shutdown too) and paths not sendable
    skipped: int = 0  # already sent before (state file)
    cancelled: int = 0  # in flight when the drain timeout ran out
    excluded: int = 0  # paths left out by the rules or default excludes (once while present)
    bytes_uploaded: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # paths not sendable, by reason
    failing: list[str] = field(default_factory=list)  # files whose last attempt failed
    not_sendable: list[str] = field(default_factory=list)  # paths still not sendable at the end
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The fields of the JSON summary line (`core.report.summary_record`): `ok` and
        `bytes` are `uploaded` and `bytes_uploaded`, named as in every command's summary."""
        data = asdict(self)
        data["ok"] = data.pop("uploaded")
        data["bytes"] = data.pop("bytes_uploaded")
        data["seconds"] = round(self.seconds, 3)
        data["mib_per_s"] = mib_per_s(self.bytes_uploaded, self.seconds) or 0.0
        return data


EventCallback = Callable[[WatchEvent], None]
# A progress display for one file (its relative path, its size): a context manager giving the
# engine's progress callback, or None for no display (`cli.progress.ProgressBar` fits).
ProgressFactory = Callable[[str, int], AbstractContextManager[ProgressCallback | None]]
_Stat = tuple[int, int]  # (size, mtime_ns)


@dataclass
class _Seen:
    stat: _Stat
    since: float  # monotonic time this (size, mtime) was first observed


@dataclass
class _Backoff:
    attempts: int
    not_before: float


class _Retry(Exception):
    """The file changed or vanished under us: observe it again, without backoff."""


# -- scanning -----------------------------------------------------------------------------------


def _is_own_file(name: str) -> bool:
    """The tool's temporary download files and the default state database with its WAL."""
    return name.startswith(DEFAULT_STATE_NAME) or (
        name.startswith(".") and ".ssec-transfer-" in name
    )


def _scan(
    root: Path, default_excludes: bool, skip: frozenset[Path]
) -> tuple[dict[str, _Stat], dict[str, SourceProblemError], list[str]]:
    """Every regular file under `root` (links to files followed, links to folders reported,
    not followed), every path that cannot be uploaded, with its problem, and the paths the
    default excludes left out (a dot folder as one, not entered)."""
    found: dict[str, _Stat] = {}
    problems: dict[str, SourceProblemError] = {}
    defaults = DefaultExcludes()

    def prune(rel: str, path: Path) -> bool:
        if path in skip or _is_own_file(rel.rsplit("/", 1)[-1]):
            return True
        return default_excludes and defaults(rel, path)

    try:
        for entry in walk_sources(root, into_linked_folders=False, prune=prune):
            if entry.problem is None:
                found[entry.rel] = (entry.size, entry.mtime_ns)
            elif entry.problem.reason != "vanished":  # deleted between listing and stat
                problems[entry.rel] = entry.problem
    except OSError as exc:  # listing `root` itself
        raise LocalIOError(f"cannot list {root}: {exc.strerror}") from None
    return found, problems, defaults.left_out


def _paths_to_skip(cfg: WatchConfig) -> frozenset[Path]:
    """The state file and a move destination inside the watched folder are not input."""
    state = cfg.state_file.resolve()
    paths = {state} | {Path(f"{state}{s}") for s in ("-wal", "-shm", "-journal")}
    if cfg.move_to is not None:
        paths.add(cfg.move_to.resolve())
    root = cfg.directory.resolve()
    # _scan compares the paths it builds from the directory as given, so map them onto it.
    return frozenset(
        cfg.directory / p.relative_to(root) for p in paths if p.is_relative_to(root) and p != root
    )


def _stat_file(path: Path) -> _Stat | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None


def _strip_quotes(etag: str | None) -> str | None:
    return etag.strip('"') if etag else None


# -- the watcher --------------------------------------------------------------------------------


class _Watcher:
    def __init__(
        self,
        engine: TransferEngine,
        config: WatchConfig,
        sse_key: SSECustomerKey,
        state: WatchState,
        records: dict[str, UploadRecord],
        on_result: EventCallback | None,
        observer: WatchObserver | None = None,
        progress: ProgressFactory | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.key = sse_key
        self.state = state
        self.records = records  # by object key, mirrors the state file
        self.on_result = on_result
        self.observer = observer or WatchObserver()
        self.progress = progress
        self.summary = WatchSummary()
        self.root = config.directory
        self.seen: dict[str, _Seen] = {}
        self.busy: set[str] = set()  # queued or in flight
        self.backoff: dict[str, _Backoff] = {}
        self.announced: dict[str, _Stat] = {}  # files reported as skipped, with that stat
        # paths reported as not sendable: the reason, and the stat of a file that failed its
        # check at upload time (None: found by the scan), so each is reported once
        self.unsendable: dict[str, tuple[str, _Stat | None]] = {}
        self.excluded: set[str] = set()  # left out by a rule or default: reported once at -v
        self.upkeep = Upkeep(config)  # --forget-after, and what `watch --status` reads
        self.slots = anyio.CapacityLimiter(config.max_files)
        self.stopping = False
        self.active = 0
        self.idle = anyio.Event()
        self.idle.set()
        self.skip: frozenset[Path] = frozenset()

    # -- polling ---------------------------------------------------------------------------

    async def poll(self, tg: TaskGroup) -> None:
        cfg = self.config
        files, problems, left_out = await anyio.to_thread.run_sync(
            _scan, self.root, cfg.default_excludes, self.skip, abandon_on_cancel=True
        )
        for rel in left_out:
            self._excluded(rel, "dot file or partial file, see --no-default-excludes")
        now = time.monotonic()
        for gone in self.seen.keys() - files.keys():
            del self.seen[gone]
        for gone in self.backoff.keys() - files.keys():
            del self.backoff[gone]
        suffix = cfg.marker_suffix
        for rel in list(files):
            issue = key_problem(cfg.object_key(rel))
            if issue is not None:  # a name that is not UTF-8
                problems[rel] = issue
                del files[rel]
        self._forget_unsendable(files, problems)
        for rel, issue in sorted(problems.items()):
            if suffix is not None and rel.endswith(suffix):
                continue  # a marker, never uploaded itself
            if self._wanted(rel):
                self._not_sendable(rel, issue, st=None)
        for rel, st in sorted(files.items()):
            if rel in self.busy:
                continue
            if suffix is not None and rel.endswith(suffix):
                continue  # a marker, never uploaded itself
            if not self._wanted(rel):
                continue
            waiting = self.backoff.get(rel)
            if waiting is not None and now < waiting.not_before:
                continue
            record = self.records.get(cfg.object_key(rel))
            if record is not None and record.matches(rel, *st):
                if cfg.on_success != "keep":  # a run ended between upload and delete/move
                    self._start(tg, self._finish_earlier, rel, st, record)
                elif self.announced.get(rel) != st:
                    self.announced[rel] = st
                    self._emit(self._event(rel, "skipped", record=record))
                continue
            seen = self.seen.get(rel)
            if seen is None or seen.stat != st:
                seen = self.seen[rel] = _Seen(st, now)
            if suffix is not None:
                ready = f"{rel}{suffix}" in files
            else:
                ready = now - seen.since >= cfg.settle
            if ready:
                self._start(tg, self._upload, rel, st)
        await self.upkeep.after_poll(
            self.state, lambda: {*files, *problems, *left_out}, self.records, self.backoff,
            per_path=(self.announced, self.excluded),
        )  # fmt: skip
        settling = len(self.seen.keys() - self.busy)
        self.observer.queue(
            seen=len(files), settling=settling, in_flight=self.active, failing=len(self.backoff)
        )
        self.observer.alive()

    def _wanted(self, rel: str) -> bool:
        """The --include/--exclude rules, as put and sync apply them (`bulk.is_included`);
        a folder (an unreadable one, a link to one) is left out only when the rules leave out
        everything under it (`bulk.folder_excluded`)."""
        rules: Any = self.config.rules  # ("include" | "exclude", glob): `bulk.FilterRule`
        wanted = not folder_excluded(rel, rules) if rel.endswith("/") else is_included(rel, rules)
        if not wanted:
            self._excluded(rel, "by --include/--exclude")
        return wanted

    def _excluded(self, rel: str, why: str) -> None:
        """Counted and shown at -v once while the path stays, not at every poll."""
        if rel not in self.excluded:
            self.excluded.add(rel)
            self.summary.excluded += 1
            log.info("excluded (%s): %s", why, printable(rel))

    def _forget_unsendable(
        self, files: dict[str, _Stat], problems: dict[str, SourceProblemError]
    ) -> None:
        """Paths fixed or gone since they were reported: a new problem is reported again."""
        for rel, (_, st) in list(self.unsendable.items()):
            if (rel not in problems) if st is None else (rel not in files):
                del self.unsendable[rel]

    def _start(self, tg: TaskGroup, fn: Callable[..., Any], rel: str, *args: Any) -> None:
        self.busy.add(rel)
        tg.start_soon(self._guarded, fn, rel, *args, name=f"watch {rel}")

    async def _guarded(self, fn: Callable[..., Any], rel: str, *args: Any) -> None:
        """One slot per file; files still queued when `stop` comes are not started."""
        try:
            async with self.slots:
                if self.stopping:
                    return
                self.active += 1
                self.idle = anyio.Event() if self.active == 1 else self.idle
                try:
                    await fn(rel, *args)
                finally:
                    self.active -= 1
                    if self.active == 0:
                        self.idle.set()
        finally:
            self.busy.discard(rel)

    # -- one file --------------------------------------------------------------------------

    async def _upload(self, rel: str, settled: _Stat) -> None:
        cfg = self.config
        path = self.root / rel
        started = time.perf_counter()
        stored: UploadRecord | None = None
        previous = self.backoff.get(rel)
        attempt = previous.attempts + 1 if previous else 1
        try:
            if await anyio.to_thread.run_sync(_stat_file, path) != settled:
                raise _Retry  # changed since the poll: let it settle again
            if cfg.marker_suffix and not await anyio.to_thread.run_sync(
                _stat_file, self._marker(path)
            ):
                raise _Retry
            await anyio.to_thread.run_sync(check_source, path)  # unreadable? (never blocks)
            if previous is not None:
                self.observer.retried()
            display = self.progress(rel, settled[0]) if self.progress else nullcontext(None)
            with display as progress:
                shown = {"progress": progress} if progress is not None else {}
                result = await self.engine.upload(
                    path, cfg.bucket, cfg.object_key(rel), sse_key=self.key, **shown
                )
            with anyio.CancelScope(shield=True):  # the object exists: write that down
                stored = await self._store(rel, settled, result)
            if stored is None:
                # It changed while being sent, just before the engine took its own stat.
                # Not recorded, so it is sent again once it settles.
                event = self._event(rel, "uploaded", result=result, started=started)
                self._uploaded(rel, replace(event, attempt=attempt))
                return
            record = await self._verify(stored) if cfg.verifies else stored
            await self._apply_on_success(rel)
        except _Retry:
            self.seen.pop(rel, None)
            return
        except SourceProblemError as exc:  # checked again once it settles, reported once
            self.seen.pop(rel, None)
            if exc.reason != "vanished":
                self._not_sendable(rel, exc, st=settled)
            return
        except anyio.get_cancelled_exc_class():
            if stored is None:
                message = "cancelled: stopped before the upload finished"
            else:  # recorded: the next start verifies and deletes/moves without re-sending
                message = "cancelled after the upload, before its verification or delete/move"
            self.stopping = True  # only a stop (or the caller) cancels uploads
            self._fail(rel, message, started, st=settled)
            self.summary.cancelled += 1
            self.observer.aborted()
            raise
        except FATAL_ERRORS:
            raise
        except Exception as exc:  # one file's failure must never stop the others
            if await anyio.to_thread.run_sync(_stat_file, path) is None:
                log.info("%s vanished before it was uploaded", path)
                self.seen.pop(rel, None)
                return
            self._fail(rel, exc, started, st=settled)
            return
        self.backoff.pop(rel, None)
        self.unsendable.pop(rel, None)
        event = self._event(rel, "uploaded", record=record, started=started, attempt=attempt)
        self._uploaded(rel, replace(event, checksum=result.checksum))

    async def _store(self, rel: str, settled: _Stat, result: TransferResult) -> UploadRecord | None:
        """Record the upload, unless the file no longer is what was settled."""
        after = await anyio.to_thread.run_sync(_stat_file, self.root / rel)
        if after != settled or result.size != settled[0]:
            return None
        record = self._record(rel, settled, result)
        await self.state.put(record)
        self.records[record.object_key] = record
        self.announced[rel] = settled
        return record

    def _uploaded(self, rel: str, event: WatchEvent) -> None:
        self.seen.pop(rel, None)
        self.summary.uploaded += 1
        self.summary.bytes_uploaded += event.size or 0
        self.observer.uploaded(size=event.size or 0, seconds=event.seconds)
        self._emit(event)

    async def _finish_earlier(self, rel: str, st: _Stat, record: UploadRecord) -> None:
        """A file sent by an earlier run is still here: verify if needed, then delete/move."""
        started = time.perf_counter()
        try:
            if not record.verified:
                record = await self._verify(record)
            await self._apply_on_success(rel)
        except FATAL_ERRORS:
            raise
        except Exception as exc:
            self._fail(rel, exc, started, st=st)
            return
        self.backoff.pop(rel, None)
        self._emit(self._event(rel, "skipped", record=record, started=started))

    async def _verify(self, record: UploadRecord) -> UploadRecord:
        """HEAD with the key: the object must have the size sent and be under this key."""
        info = await self.engine.head(
            record.bucket, record.object_key, sse_key=self.key, version_id=record.version_id
        )
        problems = []
        if info.size != record.size:
            problems.append(f"size {info.size}, sent {record.size}")
        if info.key_fingerprint != self.key.fingerprint:
            problems.append(f"key fingerprint {info.key_fingerprint}, sent {self.key.fingerprint}")
        etag, sent = _strip_quotes(info.etag), _strip_quotes(record.etag)
        if etag and sent and etag != sent:
            problems.append(f"ETag {info.etag}, upload answered {record.etag}")
        if problems:
            with anyio.CancelScope(shield=True):
                await self.state.forget(record.bucket, record.object_key)
                self.records.pop(record.object_key, None)
            raise IntegrityError(
                "the uploaded object does not match what was sent: " + "; ".join(problems),
                hint="the local file is kept and will be sent again",
            )
        verified = UploadRecord(**{**asdict(record), "verified": True})
        with anyio.CancelScope(shield=True):
            await self.state.put(verified)
            self.records[record.object_key] = verified
        return verified

    async def _apply_on_success(self, rel: str) -> None:
        cfg = self.config
        if cfg.on_success == "keep":
            return
        path = self.root / rel
        marker = self._marker(path) if cfg.marker_suffix else None
        if cfg.on_success == "delete":
            await anyio.to_thread.run_sync(_delete, path, marker)
        else:
            assert cfg.move_to is not None  # validated
            await anyio.to_thread.run_sync(_move, path, marker, cfg.move_to / rel)

    def _marker(self, path: Path) -> Path:
        return path.with_name(path.name + (self.config.marker_suffix or ""))

    # -- bookkeeping -----------------------------------------------------------------------

    def _record(self, rel: str, st: _Stat, result: TransferResult) -> UploadRecord:
        return UploadRecord(
            bucket=result.bucket,
            object_key=result.key,
            path=rel,
            size=st[0],
            mtime_ns=st[1],
            key_fingerprint=self.key.fingerprint,
            etag=result.etag,
            version_id=result.version_id,
            uploaded_at=utc_now(),
        )

    def _fail(self, rel: str, error: Exception | str, started: float, *, st: _Stat) -> None:
        message = error if isinstance(error, str) else _describe(error)
        problem = error if isinstance(error, SSECTransferError) else None
        previous = self.backoff.get(rel)
        attempts = previous.attempts + 1 if previous else 1
        delay = self.config.retry_interval * min(2 ** (attempts - 1), MAX_BACKOFF_FACTOR)
        self.backoff[rel] = _Backoff(attempts, time.monotonic() + delay)
        self.upkeep.failed(rel, attempts, message, None if self.stopping else delay)
        self.summary.failed += 1
        if not isinstance(error, str):  # a cancellation at stop is counted as aborted instead
            self.observer.failed(kind=type(error).__name__)
        event = self._event(
            rel, "failed", size=st[0], error=message, problem=problem, started=started,
            attempt=attempts,
        )  # fmt: skip
        if not self.stopping:
            event = replace(event, retry_in=delay)
        self._emit(event)
        if self.on_result is None:  # the caller prints events; otherwise the log says it, once
            log.warning("%s", _noted(rel, error, event.retry_plan))

    def _not_sendable(self, rel: str, issue: SourceProblemError, *, st: _Stat | None) -> None:
        """Report a path that cannot be uploaded as it is, once per reason (and stat)."""
        if self.unsendable.get(rel) == (issue.reason, st):
            return
        self.unsendable[rel] = (issue.reason, st)
        self.summary.failed += 1
        self.summary.reasons[issue.reason] = self.summary.reasons.get(issue.reason, 0) + 1
        self.observer.failed(kind=type(issue).__name__)
        if self.on_result is None:  # the caller prints events; otherwise the log says it, once
            log.warning("%s", _noted(printable(rel), issue, NOT_RETRIED))
        self._emit(
            WatchEvent(
                path=printable(rel),
                bucket=self.config.bucket,
                object_key=printable(self.config.object_key(rel)),
                status="failed",
                size=st[0] if st else None,
                error=str(issue),
                reason=issue.reason,
                local_path=printable(self.root / rel),
                problem=issue,
            )
        )

    def _event(
        self,
        rel: str,
        status: Status,
        *,
        record: UploadRecord | None = None,
        result: TransferResult | None = None,
        size: int | None = None,
        error: str | None = None,
        problem: SSECTransferError | None = None,
        started: float | None = None,
        attempt: int = 1,
    ) -> WatchEvent:
        src: UploadRecord | TransferResult | None = record or result
        return WatchEvent(
            path=rel,
            bucket=self.config.bucket,
            object_key=self.config.object_key(rel),
            status=status,
            size=src.size if src else size,
            etag=src.etag if src else None,
            version_id=src.version_id if src else None,
            seconds=time.perf_counter() - started if started is not None else 0.0,
            error=error,
            local_path=printable(self.root / rel),
            key_fingerprint=src.key_fingerprint if src else None,
            checksum=src.checksum if isinstance(src, TransferResult) else None,
            attempt=attempt,
            problem=problem,
        )

    def _emit(self, event: WatchEvent) -> None:
        if event.status == "skipped":
            self.summary.skipped += 1
        if self.on_result is not None:
            self.on_result(event)


NOT_RETRIED = "reported once, not retried as it is"  # the note of a path that cannot be sent


def _noted(rel: str, error: Exception | str, note: str | None) -> str:
    """`rel: what happened (note)`, then the hint on a line of its own: the note belongs
    to the failure, not to the end of its hint."""
    if isinstance(error, SSECTransferError):
        text, hint = error.describe(), error.hint
    else:
        text, hint = error if isinstance(error, str) else f"{type(error).__name__}: {error}", None
    line = f"{rel}: {text}" + (f" ({note})" if note else "")
    return line + (f"\n  hint: {hint}" if hint else "")


def _describe(exc: Exception) -> str:
    if isinstance(exc, SSECTransferError):
        return str(exc)
    if not isinstance(exc, OSError):  # not an expected failure: keep the traceback in the log
        log.error("unexpected error", exc_info=exc)
    return f"{type(exc).__name__}: {exc}"


def _delete(path: Path, marker: Path | None) -> None:
    path.unlink(missing_ok=True)
    if marker is not None:
        marker.unlink(missing_ok=True)


def _move(path: Path, marker: Path | None, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(path, dest)
    if marker is not None and marker.exists():
        shutil.move(marker, dest.with_name(dest.name + marker.name[len(path.name) :]))


# -- the entry point ----------------------------------------------------------------------------


async def run_watch(
    engine: TransferEngine,
    config: WatchConfig,
    sse_key: SSECustomerKey,
    *,
    on_result: EventCallback | None = None,
    stop: anyio.Event | None = None,
    observer: WatchObserver | None = None,
    progress: ProgressFactory | None = None,
) -> WatchSummary:
    """Watch until `stop` is set (or the caller cancels), then drain and return the counts.

    `on_result` hears each file's outcome (without it, failures are logged as warnings),
    `observer` the service events, `progress` makes a display per upload."""
    started = time.perf_counter()
    await anyio.to_thread.run_sync(config.validate)
    skip = await anyio.to_thread.run_sync(_paths_to_skip, config)
    state = await WatchState.open(config.state_file)
    try:
        records = await state.records(config.bucket)
        watcher = _Watcher(engine, config, sse_key, state, records, on_result, observer, progress)
        watcher.skip = skip
        stop = stop or anyio.Event()
        async with task_group() as tg:
            first = True
            while not stop.is_set():
                await watcher.poll(tg)
                if first:
                    watcher.observer.ready()
                    first = False
                with anyio.move_on_after(config.interval):
                    await stop.wait()
            watcher.stopping = True
            watcher.observer.stopping()
            with anyio.move_on_after(config.drain_timeout):
                await watcher.idle.wait()
            tg.cancel_scope.cancel()
    finally:
        await state.aclose()
    summary = watcher.summary
    summary.failing = sorted(watcher.backoff)
    summary.not_sendable = sorted(printable(rel) for rel in watcher.unsendable)
    summary.seconds = time.perf_counter() - started
    return summary
