"""`cp --recursive`, `rotate --recursive` and `sync`'s S3-to-S3 copies as bulk jobs, so the
Dask runner (`apps.distributed`) carries them as it carries uploads and downloads.

The client lists the prefix once and plans one `TransferJob` per object name (a rotation
with `--all-versions` keeps every version of a name in one job: they must be rotated oldest
first, by one hand); a worker runs each job with the ordinary engine (`run_copy_job`) and
the client turns what comes back into the same `CopyOutcome` lines a local run prints
(`copy_outcome`). Rotations are restartable: an object the new key opens already is skipped
(`transfer.copy.rotate_key`), so a batch lost with its worker, or a whole run, can be run
again safely.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ssec_transfer.apps.bulk import JobOutcome, TransferJob
from ssec_transfer.s3.urls import folder_prefix
from ssec_transfer.transfer.copy import (
    CopyOutcome,
    failed_rotation,
    object_url,
    rotated,
    skipped_rotation,
)
from ssec_transfer.transfer.copy_plan import Via

if TYPE_CHECKING:
    from ssec_transfer.core.results import TransferResult
    from ssec_transfer.engine import TransferEngine
    from ssec_transfer.keys.customer import SSECustomerKey
    from ssec_transfer.s3.listing import ListedObject
    from ssec_transfer.transfer.copy import CopyResult


@dataclass(frozen=True)
class CopySettings:
    """How a run's copies and rotations go (the same for every object of the run)."""

    via: Via = "auto"
    all_versions: bool = False  # rotate: every version of each name, oldest first
    delete_old_versions: bool = False  # rotate: delete each old version once its copy is verified


def _marker(obj: ListedObject) -> bool:
    """A console's empty `folder/` object, or a versioned delete (no data)."""
    return obj.delete_marker or (obj.key.endswith("/") and obj.size == 0)


async def plan_copies(
    listed: AsyncIterable[ListedObject],
    src_bucket: str,
    src_prefix: str,
    dst_bucket: str,
    dst_prefix: str,
    *,
    source_key: SSECustomerKey | None,
    target_key: SSECustomerKey | None,
) -> list[TransferJob]:
    """`cp --recursive`'s objects as jobs, mapped as `transfer.copy.copy_prefix` maps them
    (the same relative name under `dst_prefix`), with their sizes for balancing."""
    src_prefix, dst_prefix = folder_prefix(src_prefix), folder_prefix(dst_prefix)
    jobs = []
    async for obj in listed:
        if _marker(obj):
            continue
        target = dst_prefix + obj.key[len(src_prefix) :]
        jobs.append(
            TransferJob(
                "copy", Path(obj.key), dst_bucket, target, target_key, size=obj.size,
                source_bucket=src_bucket, source_key=obj.key, source_sse_key=source_key,
            )
        )  # fmt: skip
    return jobs


async def plan_rotations(
    listed: AsyncIterable[ListedObject],
    bucket: str,
    *,
    old_key: SSECustomerKey,
    new_key: SSECustomerKey,
) -> list[TransferJob]:
    """`rotate --recursive`'s objects as jobs: one per name, sized by all its listed
    versions (list with versions for `--all-versions`, else only the current ones)."""
    sizes: dict[str, int] = {}
    async for obj in listed:
        if _marker(obj):
            if obj.delete_marker:
                sizes.setdefault(obj.key, 0)  # --all-versions still looks at its versions
            continue
        sizes[obj.key] = sizes.get(obj.key, 0) + obj.size
    jobs = [
        TransferJob(
            "rotate", Path(name), bucket, name, new_key, size=size, source_bucket=bucket,
            source_key=name, source_sse_key=old_key,
        )
        for name, size in sizes.items()
    ]  # fmt: skip
    return jobs


async def run_copy_job(
    engine: TransferEngine,
    job: TransferJob,
    settings: CopySettings,
    progress: Callable[[int, int], None] | None = None,
) -> list[CopyOutcome]:
    """Run one copy or rotation job with `engine`; its outcomes (a rotation with every
    version gives one per version), failures included."""
    if job.operation == "rotate":
        if job.problem is not None or job.source_sse_key is None or job.sse_key is None:
            problem = job.problem
            assert problem is not None, "a rotation job carries both keys"
            return [failed_rotation(job.bucket, job.key, job.version_id, problem)]
        return await engine.rotate_key(
            job.bucket, job.key, old_key=job.source_sse_key, new_key=job.sse_key,
            all_versions=settings.all_versions, via=settings.via,
            delete_old_versions=settings.delete_old_versions, progress=progress,
        )  # fmt: skip
    if job.problem is not None:
        failed = CopyOutcome(
            object_url(job.source_bucket, job.source_key), object_url(job.bucket, job.key),
            None, "failed", error=job.problem, bucket=job.bucket, key=job.key,
        )  # fmt: skip
        return [failed]
    copied = await engine.copy_one(
        job.source_bucket, job.source_key, job.bucket, job.key,
        source_key=job.source_sse_key, target_key=job.sse_key, via=settings.via,
        progress=progress,
    )  # fmt: skip
    return [copied]


def copy_outcome(outcome: JobOutcome) -> CopyOutcome:
    """A copy or rotation that came back from a Dask worker (as a `JobOutcome` whose job
    names the source version), as the local run reports it."""
    job, result, error = outcome.job, outcome.result, outcome.error
    if job.operation == "rotate":
        if outcome.status == "skipped":
            return skipped_rotation(job.bucket, job.key, job.version_id)
        copied = _copied(result)
        if copied is not None:
            return rotated(job.bucket, job.key, job.version_id, copied)
        assert error is not None
        return failed_rotation(job.bucket, job.key, job.version_id, error)
    return CopyOutcome(
        object_url(job.source_bucket, job.source_key), object_url(job.bucket, job.key),
        job.version_id, "ok" if outcome.status == "ok" else "failed", _copied(result), error,
        bucket=job.bucket, key=job.key,
    )  # fmt: skip


def _copied(result: TransferResult | None) -> CopyResult | None:
    from ssec_transfer.transfer.copy import CopyResult

    assert result is None or isinstance(result, CopyResult)
    return result
