"""Why a copy can be trusted: the new object, read back in full with the target key, has the
source's CRC32C. And what to do with a server-side result that fails that: remove it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ssec_transfer.core.crc import combine_parts, digest_text
from ssec_transfer.core.errors import IntegrityError
from ssec_transfer.core.plan import Part, plan_parts
from ssec_transfer.core.results import ObjectInfo
from ssec_transfer.core.taskgroups import for_each
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.errors import translated
from ssec_transfer.s3.requests import RangeRead, get_range, pinned_get, real_version
from ssec_transfer.transfer.copy_job import READ_CHUNK, CopyJob, Written, head


async def digest(
    job: CopyJob,
    info: ObjectInfo,
    sse: SSECustomerKey | None,
    *,
    operation: str = "GetObject",
    whole_first: bool = False,
) -> int:
    """CRC32C of an object version, read in parallel ranges pinned by VersionId and If-Match,
    holding at most READ_CHUNK bytes per range in flight.

    `whole_first` reads the first range as the start of a GET without Range, proving the
    server serves the object whole too: SeaweedFS answers 500 to a whole-object GET of an
    SSE-C object assembled by UploadPartCopy from a plain source, though every range reads.
    """
    options = job.options
    ranged = info.size > options.multipart_threshold
    parts = plan_parts(info.size, options.part_size) if ranged else [Part(1, 0, info.size)]
    read = RangeRead(
        pinned_get(info, sse), key_sent=sse is not None, ranged=ranged, chunk_size=READ_CHUNK,
        retry=options.retry, operation=operation, hint="rerun the copy",
    )  # fmt: skip
    first = replace(read, whole_size=info.size) if whole_first and ranged else read
    crcs: dict[int, int] = {}

    async def one(part: Part) -> None:
        async with (
            job.scheduler.budget.reserve(min(max(part.length, 1), READ_CHUNK)),
            job.scheduler.request(),
        ):
            crcs[part.number] = await get_range(
                first if part.number == 1 else read, job.client, part, None
            )

    await for_each(parts, one, options.concurrency)
    return combine_parts((crcs[p.number], p.length) for p in parts)


async def verify(job: CopyJob, written: Written, source_crc: int) -> ObjectInfo:
    """Read the new object once, in full, with the target key; it must be the source."""
    target, size = job.target, job.size
    version = real_version(written.version_id)
    info, _ = await head(job.client, job.scheduler, target, version)
    ctx = target.context("verify")
    if target.sse and info.key_fingerprint and info.key_fingerprint != target.sse.fingerprint:
        raise IntegrityError("the new object is under another key", context=ctx)
    if info.size != size:
        raise IntegrityError(
            f"the new object has {info.size} bytes, the source {size}", context=ctx
        )
    crc = await digest(job, info, target.sse, operation="verify", whole_first=True)
    if crc != source_crc:
        raise IntegrityError(
            f"the new object's CRC32C {digest_text(crc)} differs from the source's "
            f"{digest_text(source_crc)}",
            hint="the copy is wrong; it was not reported as done",
            context=ctx,
        )
    return info


async def delete_written(job: CopyJob, written: Written) -> None:
    """Remove a wrong server-side result before the next path writes the object again; never
    the source version itself."""
    target = job.target
    version = real_version(written.version_id)
    if job.in_place and not version:
        return  # never delete the only copy (callers refuse this case before)
    params: dict[str, Any] = {"Bucket": target.bucket, "Key": target.key}
    if version:
        if version == job.source.version_id:
            return
        params["VersionId"] = version
    with translated(target.context("DeleteObject"), key_sent=False):
        async with job.scheduler.request():
            await job.client.delete_object(**params)
