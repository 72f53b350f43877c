"""Many transfers in one run: what to move (directories, prefixes, manifests) and running it.

Planning is separate from running. The planners turn a directory or an S3 prefix into
`TransferJob`s, mapping paths and keys like `aws s3 cp --recursive` (a manifest's grammar and
planning are in `manifest`). `run_jobs` runs them on one engine, whose scheduler bounds
requests and memory for all of them together; a failing file is reported and the others go
on (unless `fail_fast`).
"""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import anyio
from anyio.abc import ObjectSendStream

from ssec_transfer.apps.sources import (
    DefaultExcludes,
    Found,
    SourceProblemError,
    check_source,
    key_problem,
    printable,
    walk_sources,
)
from ssec_transfer.core.crc import file_digest
from ssec_transfer.core.errors import (
    ErrorContext,
    KeyProblemError,
    LocalIOError,
    NotFoundError,
    ObjectExistsError,
    SSECTransferError,
    UsageError,
)
from ssec_transfer.core.report import object_record
from ssec_transfer.core.results import TransferResult
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.urls import folder_prefix

# copy: `sync` and `cp --recursive`; rotate: `rotate --recursive` (`apps.copy_jobs`); delete: `sync`
Operation = Literal["upload", "download", "copy", "rotate", "delete"]
FilterRule = tuple[Literal["include", "exclude"], str]


@dataclass(frozen=True)
class TransferJob:
    operation: Operation
    path: Path  # local side
    bucket: str
    key: str
    sse_key: SSECustomerKey | None = None
    version_id: str | None = None
    size: int | None = None  # known from planning, for progress totals
    problem: SSECTransferError | None = None  # found while planning (e.g. a bad key file)
    # A copy's source object (`sync` S3 to S3, `cp`), or a rotation's old key; the target is
    # bucket/key above.
    source_bucket: str = ""
    source_key: str = ""
    source_sse_key: SSECustomerKey | None = None

    @property
    def local(self) -> bool:
        """Whether `path` names a local file (a copy's and an object deletion's do not)."""
        return self.operation in ("upload", "download") or not self.bucket

    @property
    def source(self) -> str:
        """For display: a name's bytes that are not UTF-8 are shown as \\xNN. A deletion's
        source is what it deletes."""
        if self.operation in ("copy", "rotate"):
            return f"s3://{self.source_bucket}/{printable(self.source_key)}"
        if self.operation == "delete":
            return self._url if self.bucket else printable(self.path)
        return printable(self.path) if self.operation == "upload" else self._url

    @property
    def destination(self) -> str | None:
        if self.operation == "delete":
            return None
        if self.operation in ("upload", "copy", "rotate"):
            return self._url
        return printable(self.path)

    @property
    def _url(self) -> str:
        return f"s3://{self.bucket}/{printable(self.key)}"


@dataclass(frozen=True)
class JobOutcome:
    job: TransferJob
    status: Literal["ok", "skipped", "failed", "dryrun"]
    result: TransferResult | None = None
    error: SSECTransferError | None = None
    seconds: float = 0.0
    why: str | None = None  # `sync`'s verdict: why it was sent, skipped or deleted

    def to_dict(self) -> dict[str, Any]:
        """The JSON line (`core.report.object_record`)."""
        job, r = self.job, self.result
        return object_record(
            job.operation,
            self.status,
            source=job.source,
            destination=job.destination,
            bucket=job.bucket or None,
            key=printable(job.key) if job.key else None,
            path=printable(job.path) if job.local else None,
            size=r.size if r else job.size,
            seconds=self.seconds,
            result=r,
            version_id=r.version_id if r else job.version_id,
            reason=self.reason,
            error=self.error,
            extra={"resumed_parts": r.resumed_parts if r else 0},
        )

    @property
    def reason(self) -> str | None:
        """Why a source could not be sent (`sources.REASONS`), or why `sync` sent, skipped or
        deleted it (`sync_plan.REASONS`); None for other outcomes."""
        if isinstance(self.error, SourceProblemError):
            return self.error.reason
        return self.why


# -- filters -----------------------------------------------------------------------------------


def is_included(relative: str, rules: Sequence[FilterRule]) -> bool:
    """AWS CLI semantics: everything is included, then each rule in order may flip it."""
    included = True
    for kind, pattern in rules:
        if fnmatch.fnmatchcase(relative, pattern):
            included = kind == "include"
    return included


def leading_include(rules: Sequence[FilterRule]) -> str | None:
    """The pattern of an --include that comes before any --exclude, or None.

    In aws's ordered rules everything starts included, so such an include changes nothing:
    `--include '*.nc'` alone still sends every file. Whoever wrote it almost surely meant
    "only these", which is `--exclude '*' --include '*.nc'`."""
    for kind, pattern in rules:
        if kind == "exclude":
            return None
        return pattern
    return None


def only_these_hint(pattern: str) -> str:
    """The rules that mean "only paths matching `pattern`"."""
    return f"--exclude '*' --include '{pattern}'"


# -- planners ----------------------------------------------------------------------------------


def _join_key(prefix: str, relative: str) -> str:
    return folder_prefix(prefix) + relative


@dataclass(frozen=True)
class DirectoryPlan:
    """A folder to upload. `jobs` holds a job per file to send and, in walk order among them,
    a job per path that cannot be sent (its `problem` says why: it fails at once, and the run
    exits 1). `excluded` lists what was left out on purpose, as (relative path, "rule" or
    "symlink"): reported only at -v and as a count, since `--exclude` may match millions."""

    jobs: list[TransferJob]
    excluded: list[tuple[str, str]] = field(default_factory=list)


def folder_excluded(rel: str, rules: Sequence[FilterRule]) -> bool:
    """Whether a folder that could not be entered is left out by `rules` (see below)."""
    return _folder_excluded(rel, rules)


def _folder_excluded(rel: str, rules: Sequence[FilterRule]) -> bool:
    """Whether a folder that could not be entered (unreadable, a loop) holds only excluded
    paths. Unknowable in general, so true only when the last rule matching everything under it
    excludes and no include rule comes later: such a folder is reported rather than lost."""
    probe = rel + "\0"  # stands for any path under the folder
    matching = [i for i, (_, pattern) in enumerate(rules) if fnmatch.fnmatchcase(probe, pattern)]
    if not matching or rules[matching[-1]][0] == "include":
        return False
    return all(kind == "exclude" for kind, _ in rules[matching[-1] :])


def plan_sources(
    found: Iterable[Found],
    bucket: str,
    prefix: str,
    *,
    sse_key: SSECustomerKey | None,
    rules: Sequence[FilterRule] = (),
) -> DirectoryPlan:
    """The plan for what a walk of a folder found (`sources.walk_sources`): keys mapped like
    `aws s3 cp --recursive`, rules applied to the relative paths (to problems as well: an
    excluded dangling link is excluded), names that cannot be object keys made problems."""
    jobs: list[TransferJob] = []
    excluded: list[tuple[str, str]] = []
    for entry in found:
        if entry.rel.endswith("/"):
            wanted = not _folder_excluded(entry.rel, rules)
        else:
            wanted = is_included(entry.rel, rules)
        if not wanted:
            excluded.append((entry.rel, "rule"))
            continue
        issue = entry.problem
        if issue is not None and issue.reason == "symlink":  # --no-follow-symlinks
            excluded.append((entry.rel, "symlink"))
            continue
        key = _join_key(prefix, entry.rel)
        issue = issue or key_problem(key)
        jobs.append(
            TransferJob(
                "upload", entry.path, bucket, key, sse_key,
                size=None if issue else entry.size, problem=issue,
            )
        )  # fmt: skip
    return DirectoryPlan(jobs, excluded)


def plan_directory(
    root: Path,
    bucket: str,
    prefix: str,
    *,
    sse_key: SSECustomerKey | None,
    rules: Sequence[FilterRule] = (),
    follow_symlinks: bool = True,
    default_excludes: bool = False,
) -> DirectoryPlan:
    """Every path under `root`: regular files to send (symbolic links to files and folders
    followed unless `follow_symlinks` is False, loops detected), and whatever cannot be sent.
    `default_excludes` leaves out dot files and partial files (`sources.default_excluded`,
    listed in `excluded` as "default") before the rules are applied."""
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory", hint="--recursive uploads a directory")
    pruned = DefaultExcludes() if default_excludes else None
    try:
        plan = plan_sources(
            walk_sources(root, follow_symlinks=follow_symlinks, prune=pruned), bucket, prefix,
            sse_key=sse_key, rules=rules,
        )  # fmt: skip
    except OSError as exc:  # listing `root` itself
        raise UsageError(f"cannot list {printable(root)}: {exc.strerror or exc}") from None
    if pruned is not None:
        plan.excluded.extend((rel, "default") for rel in pruned.left_out)
    return plan


def plan_directory_upload(
    root: Path,
    bucket: str,
    prefix: str,
    *,
    sse_key: SSECustomerKey | None,
    rules: Sequence[FilterRule] = (),
    follow_symlinks: bool = True,
) -> list[TransferJob]:
    """`plan_directory`'s jobs: the files to send, and a failing job per path that cannot be."""
    return plan_directory(
        root, bucket, prefix, sse_key=sse_key, rules=rules, follow_symlinks=follow_symlinks
    ).jobs


def no_local_path(key: str, prefix: str, dest: Path) -> UsageError:
    """Why an object under `prefix` that `safe_relative` refuses is not downloaded into
    `dest` with the others."""
    if ".." in key[len(prefix) :].split("/"):
        what = f"object key {key!r} would be written outside {dest}"
    else:
        what = (
            f"object key {key!r} has no local path of its own under {dest} (an empty or '.' "
            "segment would land on another object's)"
        )
    return UsageError(what, hint="download it alone with `ssec-transfer get` and a file name")


def safe_relative(key: str, prefix: str) -> str | None:
    """The local relative path for `key` under `prefix`, or None if it has none of its own:
    `..` would leave DEST, and empty or `.` segments (`a//b`, `a/./b`) would land on another
    object's path (`a/b`)."""
    relative = key[len(prefix) :]
    parts = relative.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    return relative


def _refuse_collisions(planned: list[tuple[str, TransferJob]]) -> list[TransferJob]:
    """An object whose path another object's key uses as a folder (`a` beside `a/b`) has no
    file of its own to land in: refused, instead of one silently overwriting the other."""
    folders = {str(parent) for relative, _ in planned for parent in PurePosixPath(relative).parents}
    jobs = []
    for relative, job in planned:
        if relative in folders:
            job = replace(
                job,
                problem=UsageError(
                    f"object key {job.key!r} would be written where other objects' keys need "
                    f"a folder ({relative}/...)",
                    hint="download it alone with `ssec-transfer get` and a file name",
                ),
            )
        jobs.append(job)
    return jobs


def _prepare_download_path(job: TransferJob) -> None:
    """Create DEST's folders; a folder already where the file belongs is not a DEST folder
    here (that rule is for `get` of one object), it is a collision."""
    job.path.parent.mkdir(parents=True, exist_ok=True)
    if job.path.is_dir():
        raise UsageError(
            f"a folder {job.path} is where object {job.key!r} belongs",
            hint="download it alone with `ssec-transfer get` and a file name",
        )


async def plan_prefix_download(
    client: Any,
    bucket: str,
    prefix: str,
    dest: Path,
    *,
    sse_key: SSECustomerKey | None,
    rules: Sequence[FilterRule] = (),
) -> list[TransferJob]:
    """Every object under `prefix` (a folder-like prefix: `a/b` means `a/b/`)."""
    prefix = folder_prefix(prefix)
    refused: list[TransferJob] = []
    planned: list[tuple[str, TransferJob]] = []
    paginator = client.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.endswith("/") and obj.get("Size", 0) == 0:
                continue  # a "folder" marker made by consoles
            relative = safe_relative(key, prefix)
            if relative is None:
                refused.append(
                    TransferJob(
                        "download", dest / "?", bucket, key, sse_key, size=obj.get("Size"),
                        problem=no_local_path(key, prefix, dest),
                    )
                )  # fmt: skip
                continue
            if not is_included(relative, rules):
                continue
            job = TransferJob(
                "download", dest.joinpath(*relative.split("/")), bucket, key, sse_key,
                size=obj.get("Size"),
            )  # fmt: skip
            planned.append((relative, job))
    return refused + _refuse_collisions(planned)


# -- running -----------------------------------------------------------------------------------


class _Progress:
    """Per-job byte callbacks that feed one overall display."""

    def __init__(self, on_bytes: Callable[[int], None] | None) -> None:
        self.on_bytes = on_bytes

    def callback(self) -> Callable[[int, int], None] | None:
        if self.on_bytes is None:
            return None
        on_bytes = self.on_bytes
        return lambda done, total: on_bytes(done) if done else None


async def _already_there(engine: Any, job: TransferJob) -> bool:
    """True when the object and the local file provably hold the same bytes already."""
    ledger = engine.ledger
    if ledger is None:
        return False
    try:
        if job.operation == "upload":
            local = await anyio.to_thread.run_sync(os.stat, job.path)
        info = await engine.head(
            job.bucket, job.key, sse_key=job.sse_key, version_id=job.version_id
        )
        if job.operation == "download":
            local = await anyio.to_thread.run_sync(os.stat, job.path)
    except (NotFoundError, KeyProblemError, FileNotFoundError):
        return False
    if local.st_size != info.size:
        return False
    entry = await anyio.to_thread.run_sync(ledger.latest, engine.endpoint_url, job.bucket, job.key)
    if entry is None or entry.etag != info.etag or entry.size != info.size or not entry.checksum:
        return False
    here = await anyio.to_thread.run_sync(os.path.abspath, job.path)
    if entry.local_path in (str(job.path), here) and entry.local_mtime_ns == local.st_mtime_ns:
        return True
    return bool(await anyio.to_thread.run_sync(file_digest, job.path) == entry.checksum)


KeyResolver = Callable[[TransferJob], Awaitable[SSECustomerKey | None]]


def _check_upload_source(job: TransferJob) -> None:
    """Raise `SourceProblemError` for a source that cannot be sent, before any request and
    without blocking (a manifest may name a FIFO; a planned file may be gone by now)."""
    check_source(job.path)
    issue = key_problem(job.key)
    if issue is not None:
        raise issue


async def _run_one(
    engine: Any,
    job: TransferJob,
    *,
    skip_existing: bool,
    progress: _Progress,
    key_resolver: KeyResolver | None = None,
) -> JobOutcome:
    started = time.perf_counter()
    if job.problem is not None:
        return JobOutcome(job, "failed", error=job.problem)
    try:
        if job.operation == "upload":  # a FIFO, a dangling link, a file gone since planning...
            await anyio.to_thread.run_sync(_check_upload_source, job)
        if job.sse_key is None and key_resolver is not None and job.operation == "download":
            job = replace(job, sse_key=await key_resolver(job))
        if skip_existing and await _already_there(engine, job):
            if progress.on_bytes and job.size:
                progress.on_bytes(job.size)
            return JobOutcome(job, "skipped", seconds=time.perf_counter() - started)
        callback = progress.callback()
        if job.operation == "upload":
            if job.sse_key is None:
                raise UsageError("an upload needs a key", hint="give --key-file or key_file")
            result = await engine.upload(
                job.path, job.bucket, job.key, sse_key=job.sse_key, progress=callback
            )
        else:
            await anyio.to_thread.run_sync(_prepare_download_path, job)
            result = await engine.download(
                job.bucket, job.key, job.path, sse_key=job.sse_key,
                version_id=job.version_id, progress=callback, size_hint=job.size,
            )  # fmt: skip
    except ObjectExistsError:  # --no-clobber: left as it is, on purpose
        if progress.on_bytes and job.size:
            progress.on_bytes(job.size)
        return JobOutcome(job, "skipped", seconds=time.perf_counter() - started, why="exists")
    except SSECTransferError as exc:
        return JobOutcome(job, "failed", error=exc, seconds=time.perf_counter() - started)
    except OSError as exc:
        error = LocalIOError(
            f"{exc.strerror or exc}", context=ErrorContext(job.operation, job.bucket, job.key)
        )
        return JobOutcome(job, "failed", error=error, seconds=time.perf_counter() - started)
    return JobOutcome(job, "ok", result=result, seconds=time.perf_counter() - started)


@asynccontextmanager
async def run_jobs(
    engine: Any,
    jobs: Iterable[TransferJob],
    *,
    fail_fast: bool = False,
    skip_existing: bool = False,
    max_files: int | None = None,
    on_bytes: Callable[[int], None] | None = None,
    key_resolver: KeyResolver | None = None,
) -> AsyncIterator[AsyncIterator[JobOutcome]]:
    """Run `jobs` on `engine`; iterate the outcomes as they finish.

        async with run_jobs(engine, jobs) as outcomes:
            async for outcome in outcomes:
                ...

    At most `max_files` files are in progress at once (default: twice the request limit, so
    small files keep every request slot busy); requests and memory are bounded by the
    engine's scheduler whatever this number is.
    """
    limit = max_files or 2 * engine.config.concurrency
    send, receive = anyio.create_memory_object_stream[JobOutcome](max_buffer_size=limit)
    progress = _Progress(on_bytes)

    async def run_all(send: ObjectSendStream[JobOutcome]) -> None:
        slots = anyio.CapacityLimiter(limit)
        async with send, anyio.create_task_group() as files:

            async def one(job: TransferJob, token: object) -> None:
                try:
                    outcome = await _run_one(
                        engine,
                        job,
                        skip_existing=skip_existing,
                        progress=progress,
                        key_resolver=key_resolver,
                    )
                    await send.send(outcome)
                    if fail_fast and outcome.status == "failed":
                        files.cancel_scope.cancel()
                finally:
                    slots.release_on_behalf_of(token)

            for job in jobs:
                token = object()  # identical jobs must still hold separate slots
                await slots.acquire_on_behalf_of(token)
                files.start_soon(one, job, token)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_all, send)
        try:
            async with receive:
                yield receive
        finally:
            tg.cancel_scope.cancel()
