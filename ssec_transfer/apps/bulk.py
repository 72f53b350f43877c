"""Many transfers in one run: what to move (directories, prefixes, manifests) and running it.

Planning is separate from running. The planners turn a directory, an S3 prefix or a manifest
into `TransferJob`s, mapping paths and keys like `aws s3 cp --recursive`. `run_jobs` runs them
on one engine, whose scheduler bounds requests and memory for all of them together; a failing
file is reported and the others go on (unless `fail_fast`).
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import anyio
from anyio.abc import ObjectSendStream

from ssec_transfer.core.crc import crc32c, digest_text
from ssec_transfer.core.errors import (
    ErrorContext,
    KeyProblemError,
    LocalIOError,
    NotFoundError,
    SSECTransferError,
    UsageError,
)
from ssec_transfer.core.results import TransferResult
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.urls import parse_s3_url

Operation = Literal["upload", "download"]
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

    @property
    def source(self) -> str:
        return str(self.path) if self.operation == "upload" else f"s3://{self.bucket}/{self.key}"

    @property
    def destination(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.operation == "upload" else str(self.path)


@dataclass(frozen=True)
class JobOutcome:
    job: TransferJob
    status: Literal["ok", "skipped", "failed"]
    result: TransferResult | None = None
    error: SSECTransferError | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        r = self.result
        return {
            "source": self.job.source,
            "destination": self.job.destination,
            "status": self.status,
            "version_id": r.version_id if r else None,
            "size": r.size if r else self.job.size,
            "etag": r.etag if r else None,
            "key_fingerprint": r.key_fingerprint if r else None,
            "checksum": r.checksum if r else None,
            "seconds": round(self.seconds, 4),
            "error": str(self.error) if self.error else None,
            "exit_code": self.error.exit_code if self.error else 0,
        }


# -- filters -----------------------------------------------------------------------------------


def is_included(relative: str, rules: Sequence[FilterRule]) -> bool:
    """AWS CLI semantics: everything is included, then each rule in order may flip it."""
    included = True
    for kind, pattern in rules:
        if fnmatch.fnmatchcase(relative, pattern):
            included = kind == "include"
    return included


# -- planners ----------------------------------------------------------------------------------


def _join_key(prefix: str, relative: str) -> str:
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return prefix + relative


def plan_directory_upload(
    root: Path,
    bucket: str,
    prefix: str,
    *,
    sse_key: SSECustomerKey | None,
    rules: Sequence[FilterRule] = (),
) -> list[TransferJob]:
    """Every regular file under `root` (symlinked files followed, directories not)."""
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory", hint="--recursive uploads a directory")
    jobs: list[TransferJob] = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            if not is_included(relative, rules) or not path.is_file():
                continue
            jobs.append(
                TransferJob(
                    "upload",
                    path,
                    bucket,
                    _join_key(prefix, relative),
                    sse_key,
                    size=path.stat().st_size,
                )
            )
    return jobs


def safe_relative(key: str, prefix: str) -> str | None:
    """The local relative path for `key` under `prefix`, or None if it would escape DEST."""
    relative = key[len(prefix) :].lstrip("/")
    parts = PurePosixPath(relative).parts
    if not relative or relative.endswith("/") or any(p in ("..", ".") for p in parts):
        return None
    return relative


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
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    jobs: list[TransferJob] = []
    paginator = client.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.endswith("/") and obj.get("Size", 0) == 0:
                continue  # a "folder" marker made by consoles
            relative = safe_relative(key, prefix)
            if relative is None:
                jobs.append(
                    TransferJob(
                        "download", dest / "?", bucket, key, sse_key, size=obj.get("Size"),
                        problem=UsageError(
                            f"object key {key!r} would be written outside {dest}",
                            hint="download it alone with `ssec-transfer get` and a file name",
                        ),
                    )
                )  # fmt: skip
                continue
            if not is_included(relative, rules):
                continue
            jobs.append(
                TransferJob(
                    "download",
                    dest.joinpath(*PurePosixPath(relative).parts),
                    bucket,
                    key,
                    sse_key,
                    size=obj.get("Size"),
                )
            )
    return jobs


@dataclass
class _KeyCache:
    """Load each per-entry key file once; remember failures as per-entry problems."""

    loaded: dict[str, SSECustomerKey | SSECTransferError] = field(default_factory=dict)

    def get(self, path: str) -> SSECustomerKey | SSECTransferError:
        if path not in self.loaded:
            try:
                self.loaded[path] = SSECustomerKey.from_file(path)
            except SSECTransferError as exc:
                self.loaded[path] = exc
        return self.loaded[path]


def read_manifest(
    path: Path, *, operation: Operation, default_key: SSECustomerKey | None
) -> list[TransferJob]:
    """JSON lines (`{"source": ..., "destination": ..., "key_file": ...}`) or CSV with a header
    row naming the same columns. `version_id` may be given for downloads."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read manifest {path}: {exc.strerror}") from None
    entries: list[tuple[int, dict[str, str]]] = []
    if text.lstrip().startswith("{"):
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError as exc:
                raise UsageError(f"manifest {path} line {number} is not JSON: {exc}") from None
            if not isinstance(entry, dict):
                raise UsageError(f"manifest {path} line {number} is not a JSON object")
            entries.append((number, {k: str(v) for k, v in entry.items() if v is not None}))
    else:
        reader = csv.DictReader(io.StringIO(text))
        entries = [(n + 2, {k: v for k, v in row.items() if v}) for n, row in enumerate(reader)]
    keys = _KeyCache()
    jobs = []
    for number, entry in entries:
        source, destination = entry.get("source"), entry.get("destination")
        if not source or not destination:
            raise UsageError(f"manifest {path} line {number} needs a source and a destination")
        remote, local = (destination, source) if operation == "upload" else (source, destination)
        if not remote.startswith("s3://") or local.startswith("s3://"):
            side = "destination" if operation == "upload" else "source"
            raise UsageError(
                f"manifest {path} line {number}: the {side} must be an s3:// URL and the other "
                f"side a local path for {'put' if operation == 'upload' else 'get'}"
            )
        url = parse_s3_url(remote)
        key_or_error: SSECustomerKey | SSECTransferError | None = default_key
        if "key_file" in entry:
            key_or_error = keys.get(entry["key_file"])
        object_key = url.key
        if operation == "upload" and (not object_key or object_key.endswith("/")):
            object_key += Path(local).name
        size = None
        if operation == "upload":
            try:
                size = os.stat(local).st_size
            except OSError:
                size = None
        jobs.append(
            TransferJob(
                operation,
                Path(local),
                url.bucket,
                object_key,
                key_or_error if isinstance(key_or_error, SSECustomerKey) else None,
                version_id=entry.get("version_id"),
                size=size,
                problem=key_or_error if isinstance(key_or_error, SSECTransferError) else None,
            )
        )
    return jobs


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


def _file_crc(path: Path) -> str:
    crc = 0
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            crc = crc32c(chunk, crc)
    return digest_text(crc)


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
    return bool(await anyio.to_thread.run_sync(_file_crc, job.path) == entry.checksum)


KeyResolver = Callable[[TransferJob], Awaitable[SSECustomerKey | None]]


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
            await anyio.to_thread.run_sync(
                lambda: job.path.parent.mkdir(parents=True, exist_ok=True)
            )
            result = await engine.download(
                job.bucket, job.key, job.path, sse_key=job.sse_key,
                version_id=job.version_id, progress=callback,
            )  # fmt: skip
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
