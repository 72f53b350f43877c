"""`sync`: list both sides, prove what is already equal (`sync_plan`), send the rest, then
delete what only the destination holds (`--delete`).

Local → S3, S3 → local and S3 → S3 share one flow and one engine (one scheduler bounds the
requests of the inspections, transfers and deletions alike):

1. Listing: a walk of the local folder (`sources.walk_sources`) or a listing of the prefix.
2. Inspection: a path on both sides with the same size gets a HEAD with the key (and the
   stored checksum), whose sealed facts usually settle it; where the verdict asks, the local
   file (or, with `--checksum`, the object) is read for its CRC32C.
3. Transfers run through the bulk runner (uploads, downloads) or as verified copies.
4. Deletions run only when every transfer succeeded, as rclone does: a failed run never
   leaves the destination with less than it had.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from ssec_transfer.apps.bulk import (
    FilterRule,
    JobOutcome,
    TransferJob,
    is_included,
    no_local_path,
    plan_sources,
    run_jobs,
    safe_relative,
)
from ssec_transfer.apps.remove import RemovalTarget, delete_many
from ssec_transfer.apps.sources import (
    DefaultExcludes,
    default_excluded,
    printable,
    walk_sources,
)
from ssec_transfer.apps.sync_plan import (
    Direction,
    Facts,
    Verdict,
    extra,
    needs_inspection,
    verdict,
)
from ssec_transfer.core.crc import file_digest
from ssec_transfer.core.errors import (
    ErrorContext,
    LocalIOError,
    NotFoundError,
    SSECTransferError,
    UsageError,
)
from ssec_transfer.core.taskgroups import for_each
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.listing import list_objects
from ssec_transfer.s3.urls import folder_prefix

if TYPE_CHECKING:
    from ssec_transfer.apps.distributed import DaskCluster
    from ssec_transfer.engine import TransferEngine


@dataclass(frozen=True)
class Folder:
    """A local side of a sync."""

    path: Path


@dataclass(frozen=True)
class Prefix:
    """An S3 side of a sync: every object under `prefix`, taken as a folder (`a/b` means
    `a/b/`), read or written under `sse_key`."""

    bucket: str
    prefix: str
    sse_key: SSECustomerKey | None

    def key_of(self, relative: str) -> str:
        return folder_prefix(self.prefix) + relative


Side = Folder | Prefix


@dataclass(frozen=True)
class SyncSpec:
    source: Side
    dest: Side
    rules: Sequence[FilterRule] = ()
    delete: bool = False
    dryrun: bool = False
    checksum: bool = False  # compare contents by CRC32C, reading what is not recorded
    follow_symlinks: bool = True
    # From a local folder: leave out dot files and partial files (`sources.default_excluded`)
    # on both sides, so --delete never removes an object the source only left out.
    default_excludes: bool = False

    @property
    def direction(self) -> Direction:
        if isinstance(self.source, Folder):
            return "upload"
        return "download" if isinstance(self.dest, Folder) else "copy"


@dataclass
class _Entry:
    """One relative path of one side: what the listing or walk said of it."""

    facts: Facts
    job: TransferJob | None = None  # the planned transfer of a source path
    etag: str | None = None
    path: Path | None = None  # a local file


@dataclass
class SyncReport:
    """What a run found and did; outcomes were given to `on_outcome` as they came."""

    sources: int = 0
    excluded: int = 0
    counts: dict[str, int] = field(
        default_factory=lambda: {"ok": 0, "skipped": 0, "failed": 0, "dryrun": 0}
    )
    deleted: int = 0
    would_delete: int = 0  # --dryrun
    moved: int = 0
    why: dict[str, int] = field(default_factory=dict)  # verdict reasons, for the summary
    failures: list[JobOutcome] = field(default_factory=list)
    deletions_held: int = 0  # --delete left undone because a transfer failed

    def add(self, outcome: JobOutcome) -> None:
        if outcome.job.operation == "delete" and outcome.status == "ok":
            self.deleted += 1
        if outcome.job.operation == "delete" and outcome.status == "dryrun":
            self.would_delete += 1
        if outcome.status in self.counts and outcome.job.operation != "delete":
            self.counts[outcome.status] += 1
        if outcome.status == "failed":
            if outcome.job.operation == "delete":
                self.counts["failed"] += 1
            self.failures.append(outcome)
        if outcome.result is not None:
            self.moved += outcome.result.size
        if outcome.why:
            self.why[outcome.why] = self.why.get(outcome.why, 0) + 1


# -- listing -------------------------------------------------------------------------------------


def _walk(root: Path, spec: SyncSpec, target: Prefix | None) -> tuple[dict[str, _Entry], int]:
    """A local folder's files, relative paths to entries; for a source, each with its upload
    job (paths that cannot be sent come with their problem). Blocking."""
    if not root.exists():
        return {}, 0
    if not root.is_dir():
        raise UsageError(f"{printable(root)} is not a directory", hint="sync works on folders")
    try:
        pruned = DefaultExcludes() if spec.default_excludes and target is not None else None
        found = list(walk_sources(root, follow_symlinks=spec.follow_symlinks, prune=pruned))
    except OSError as exc:
        raise UsageError(f"cannot list {printable(root)}: {exc.strerror or exc}") from None
    entries: dict[str, _Entry] = {}
    if target is None:  # the destination: what is there, for comparing and --delete
        for entry in found:
            if entry.problem is None and is_included(entry.rel, spec.rules):
                entries[entry.rel] = _Entry(Facts(entry.size, entry.mtime_ns), path=entry.path)
        return entries, 0
    plan = plan_sources(
        found, target.bucket, folder_prefix(target.prefix), sse_key=target.sse_key,
        rules=spec.rules,
    )  # fmt: skip
    mtimes = {e.path: e.mtime_ns for e in found}
    for job in plan.jobs:
        rel = job.key[len(folder_prefix(target.prefix)) :]
        facts = Facts(job.size or 0, mtimes.get(job.path))
        entries[rel if job.problem is None else f"\0{len(entries)}"] = _Entry(
            facts, job, path=job.path
        )
    return entries, len(plan.excluded) + (len(pruned.left_out) if pruned else 0)


def _ns(iso: str | None) -> int | None:
    return int(datetime.fromisoformat(iso).timestamp()) * 10**9 if iso else None


async def _list(
    engine: TransferEngine,
    side: Prefix,
    rules: Sequence[FilterRule],
    *,
    default_excludes: bool = False,
) -> dict[str, _Entry]:
    """The objects under a prefix, by relative key; keys without a relative path of their own
    (`..`, empty segments) are left to the planner of a download to refuse."""
    prefix = folder_prefix(side.prefix)
    entries: dict[str, _Entry] = {}
    async for obj in list_objects(engine.client, side.bucket, prefix):
        if obj.key.endswith("/") and obj.size == 0:
            continue  # a "folder" marker made by consoles
        rel = obj.key[len(prefix) :]
        if default_excludes and default_excluded(rel):
            continue
        if is_included(rel, rules):
            entries[rel] = _Entry(Facts(obj.size, _ns(obj.last_modified)), etag=obj.etag)
    return entries


# -- inspection ----------------------------------------------------------------------------------


async def _inspect(engine: TransferEngine, side: Prefix, rel: str, entry: _Entry) -> Facts:
    """The object's facts with what a HEAD adds: sealed facts and a recorded checksum."""
    key = side.key_of(rel)
    info, stored = await engine.inspect(side.bucket, key, sse_key=side.sse_key)
    recorded = (await engine.recorded_digest(side.bucket, key))(info)
    return replace(entry.facts, sealed=info.sealed, checksum=recorded or stored)


async def _object_crc(engine: TransferEngine, side: Prefix, rel: str) -> str | None:
    """`--checksum` with nothing recorded: read the object whole for its CRC32C."""
    sink = await anyio.to_thread.run_sync(Path(os.devnull).open, "wb")
    try:
        result = await engine.download_stream(
            side.bucket, side.key_of(rel), sink, sse_key=side.sse_key
        )
    finally:
        sink.close()
    return result.checksum


async def _settle(
    engine: TransferEngine, spec: SyncSpec, rel: str, said: Verdict, local: Path | None
) -> Verdict:
    """A provisional `same-checksum` skip made final by reading what it asks for."""
    if said.reason != "same-checksum" or local is None:
        return said
    expected = said.verify
    obj_side = spec.dest if spec.direction == "upload" else spec.source
    if said.read_object and isinstance(obj_side, Prefix):
        expected = await _object_crc(engine, obj_side, rel)
    actual = await anyio.to_thread.run_sync(file_digest, local)
    return said if actual == expected else Verdict("send", "checksum-differs")


# -- the run -------------------------------------------------------------------------------------


def _copy_job(spec: SyncSpec, rel: str, size: int) -> TransferJob:
    source, dest = spec.source, spec.dest
    assert isinstance(source, Prefix)
    assert isinstance(dest, Prefix)
    return TransferJob(
        "copy", Path(rel), dest.bucket, dest.key_of(rel), dest.sse_key, size=size,
        source_bucket=source.bucket, source_key=source.key_of(rel), source_sse_key=source.sse_key,
    )  # fmt: skip


def _download_job(spec: SyncSpec, rel: str, size: int) -> TransferJob:
    source, dest = spec.source, spec.dest
    assert isinstance(source, Prefix)
    assert isinstance(dest, Folder)
    key = source.key_of(rel)
    job = TransferJob(
        "download", dest.path.joinpath(*rel.split("/")), source.bucket, key, source.sse_key,
        size=size,
    )  # fmt: skip
    prefix = folder_prefix(source.prefix)
    if safe_relative(key, prefix) is None:
        job = replace(job, problem=no_local_path(key, prefix, dest.path))
    return job


def _delete_job(spec: SyncSpec, rel: str, entry: _Entry) -> TransferJob:
    dest = spec.dest
    if isinstance(dest, Folder):
        assert entry.path is not None
        return TransferJob("delete", entry.path, "", "", size=entry.facts.size)
    return TransferJob("delete", Path(rel), dest.bucket, dest.key_of(rel), size=entry.facts.size)


async def plan_sync(
    engine: TransferEngine, spec: SyncSpec
) -> tuple[list[tuple[TransferJob, Verdict]], list[TransferJob], int]:
    """(each source path's job with its verdict, the deletions `--delete` asks for, the
    number of paths excluded on purpose). Nothing is written."""
    source, dest = spec.source, spec.dest
    excluded = 0
    if isinstance(source, Folder):
        assert isinstance(dest, Prefix)
        src, excluded = await anyio.to_thread.run_sync(_walk, source.path, spec, dest)
    else:
        src = await _list(engine, source, spec.rules)
    if isinstance(dest, Folder):
        dst, _ = await anyio.to_thread.run_sync(_walk, dest.path, spec, None)
    else:
        dst = await _list(
            engine, dest, spec.rules,
            default_excludes=spec.default_excludes and isinstance(source, Folder),
        )  # fmt: skip

    planned: dict[str, tuple[TransferJob, Verdict]] = {}
    to_inspect: list[str] = []
    for rel, entry in src.items():
        job = entry.job
        if job is None:
            size = entry.facts.size
            job = (
                _copy_job(spec, rel, size)
                if isinstance(dest, Prefix)
                else _download_job(spec, rel, size)
            )
        there = dst.get(rel)
        if job.problem is None and needs_inspection(entry.facts, there.facts if there else None):
            to_inspect.append(rel)
        planned[rel] = (job, verdict(entry.facts, there.facts if there else None,
                                     direction=spec.direction, checksum=spec.checksum))  # fmt: skip

    async def inspect(rel: str) -> None:
        job, _ = planned[rel]
        src_facts, dst_facts = src[rel].facts, dst[rel].facts
        try:
            if isinstance(source, Prefix):
                src_facts = await _inspect(engine, source, rel, src[rel])
            if isinstance(dest, Prefix):
                dst_facts = await _inspect(engine, dest, rel, dst[rel])
            said = verdict(src_facts, dst_facts, direction=spec.direction, checksum=spec.checksum)
            local = src[rel].path if isinstance(source, Folder) else dst[rel].path
            planned[rel] = (job, await _settle(engine, spec, rel, said, local))
        except NotFoundError:  # gone since the listing: nothing to compare with
            planned[rel] = (job, Verdict("send", "new"))
        except SSECTransferError as exc:
            planned[rel] = (replace(job, problem=exc), Verdict("send", "failed"))
        except OSError as exc:
            problem = LocalIOError(
                f"cannot read {printable(job.path)}: {exc.strerror or exc}",
                context=ErrorContext("sync", job.bucket, job.key),
            )
            planned[rel] = (replace(job, problem=problem), Verdict("send", "failed"))

    await for_each(to_inspect, inspect, engine.config.concurrency * 2)
    deletions: list[TransferJob] = []
    if spec.delete:
        deletions = [_delete_job(spec, rel, dst[rel]) for rel in extra(src, dst)]
    return list(planned.values()), deletions, excluded


async def _copy(
    engine: TransferEngine, job: TransferJob, on_bytes: Callable[[int], None] | None
) -> JobOutcome:
    started = time.perf_counter()
    if job.problem is not None:
        return JobOutcome(job, "failed", error=job.problem)
    try:
        result = await engine.copy(
            job.source_bucket, job.source_key, job.bucket, job.key,
            source_key=job.source_sse_key, target_key=job.sse_key,
            progress=(lambda done, total: on_bytes(done)) if on_bytes else None,
        )  # fmt: skip
    except SSECTransferError as exc:
        return JobOutcome(job, "failed", error=exc, seconds=time.perf_counter() - started)
    return JobOutcome(job, "ok", result=result, seconds=time.perf_counter() - started)


async def _delete(
    engine: TransferEngine, spec: SyncSpec, jobs: list[TransferJob]
) -> list[JobOutcome]:
    """--delete: local files unlinked one by one, objects with DeleteObjects batches."""
    if isinstance(spec.dest, Folder):
        outcomes = []
        for job in jobs:
            started = time.perf_counter()
            try:
                await anyio.to_thread.run_sync(os.unlink, job.path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                error = LocalIOError(
                    f"cannot delete {printable(job.path)}: {exc.strerror or exc}",
                    hint="check the folder's permissions; the rest of the sync is done",
                )
                outcomes.append(JobOutcome(job, "failed", error=error, why="not-in-source"))
                continue
            seconds = time.perf_counter() - started
            outcomes.append(JobOutcome(job, "ok", seconds=seconds, why="not-in-source"))
        return outcomes
    targets = [RemovalTarget(j.bucket, j.key, size=j.size) for j in jobs]
    by_key = {j.key: j for j in jobs}
    removed = await delete_many(
        engine.client, engine.scheduler, targets,
        concurrency=engine.config.concurrency,
    )  # fmt: skip
    return [
        JobOutcome(
            by_key[r.target.key],
            "ok" if r.status == "ok" else "failed",
            error=r.error,
            seconds=r.seconds,
            why="not-in-source",
        )
        for r in removed
    ]


async def run_sync(
    engine: TransferEngine,
    spec: SyncSpec,
    on_outcome: Callable[[JobOutcome], None],
    *,
    on_planned: Callable[[int, int], None] | None = None,
    on_bytes: Callable[[int], None] | None = None,
    fail_fast: bool = False,
    max_files: int | None = None,
    cluster: DaskCluster | None = None,
) -> SyncReport:
    """Plan, then run. `on_planned(files, bytes)` learns what will be sent once the plan is
    made (for a progress display); every outcome, skips included, goes to `on_outcome`.
    With `cluster` the transfers and copies run on Dask workers (`apps.distributed`); the
    listing, the inspection, the deletions and the ledger stay here."""
    report = SyncReport()

    def note(outcome: JobOutcome) -> None:
        report.add(outcome)
        on_outcome(outcome)

    planned, deletions, report.excluded = await plan_sync(engine, spec)
    report.sources = len(planned)
    sends = []
    for job, said in planned:
        if said.action == "skip":
            note(JobOutcome(job, "skipped", why=said.reason))
        elif spec.dryrun and job.problem is None:
            note(JobOutcome(job, "dryrun", why=said.reason))
        else:
            sends.append((job, said.reason))
    if spec.dryrun:
        for job in deletions:
            note(JobOutcome(job, "dryrun", why="not-in-source"))
        for job, _ in sends:  # only problems are left: they fail as they would for real
            note(JobOutcome(job, "failed", error=job.problem))
        return report
    if on_planned is not None:
        on_planned(len(sends), sum(job.size or 0 for job, _ in sends))
    why = {id(job): reason for job, reason in sends}
    copies = [job for job, _ in sends if job.operation == "copy"]
    transfers = [job for job, _ in sends if job.operation != "copy"]
    if cluster is not None and sends:
        from ssec_transfer.apps.distributed import run_jobs_distributed

        async with run_jobs_distributed(
            engine, [job for job, _ in sends], cluster=cluster, fail_fast=fail_fast,
            max_files=max_files, on_bytes=on_bytes,
        ) as found:  # fmt: skip
            async for outcome in found:
                note(replace(outcome, why=why.get(id(outcome.job))))
        copies = transfers = []
    if transfers:
        async with run_jobs(
            engine, transfers, fail_fast=fail_fast, max_files=max_files, on_bytes=on_bytes
        ) as outcomes:
            async for outcome in outcomes:
                note(replace(outcome, why=why.get(id(outcome.job))))
    if copies:
        limit = max_files or 2 * engine.config.concurrency

        async def copy(job: TransferJob) -> None:
            note(replace(await _copy(engine, job, on_bytes), why=why[id(job)]))

        await for_each(copies, copy, limit)
    if deletions:
        if report.failures:
            report.deletions_held = len(deletions)
        else:
            for outcome in await _delete(engine, spec, deletions):
                note(outcome)
    return report
