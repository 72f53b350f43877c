"""The three ways to write the new object of a copy; none of them is trusted until verified.

- `server-copy`: one CopyObject, target key in the normal SSE-C headers, source key in the
  copy-source ones, pinned by CopySourceIfMatch and VersionId.
- `server-part-copy`: parallel UploadPartCopy with CopySourceRange inside one multipart upload.
- `stream`: ranged GETs with the source key into memory reserved in the byte budget, UploadPart
  with the target key. CompleteMultipartUpload replaces the destination atomically; until then
  the old object is intact.

Both multipart paths run inside `s3.multipart.multipart_upload`, which aborts the upload
(shielded) on any failure or cancellation. A server that declines a server path (400/501)
raises `Refused`, so the caller can move on to the next path.
"""

from __future__ import annotations

import base64
from functools import partial
from typing import cast

import anyio

from ssec_transfer.core.checksums import ChecksumAlgorithm
from ssec_transfer.core.crc import combine_parts
from ssec_transfer.core.errors import ErrorContext, SSECTransferError
from ssec_transfer.core.plan import Part, plan_upload
from ssec_transfer.core.taskgroups import for_each
from ssec_transfer.s3.bodies import PartBody
from ssec_transfer.s3.errors import S3_FAILURES, status_of, translate
from ssec_transfer.s3.multipart import multipart_upload
from ssec_transfer.s3.requests import (
    RangeRead,
    checksum_params,
    get_range,
    put_object,
    upload_part,
)
from ssec_transfer.transfer.copy_job import READ_CHUNK, CopyJob, Written
from ssec_transfer.transfer.copy_plan import Method, answer

ONTO_ITSELF = "learned:copy onto itself"  # capability: the MetadataDirective that works


class Refused(Exception):
    """The server declined a server-side path (400/501): the next path may work."""

    def __init__(self, answer: str, error: SSECTransferError) -> None:
        super().__init__(answer)
        self.answer = answer
        self.error = error


def _refused_or_error(exc: BaseException, ctx: ErrorContext) -> Exception:
    """400/501 to a copy request: the server declines this path (the source key was already
    proven by a HEAD). Anything else is a real failure."""
    error = translate(exc, ctx, key_sent=True, writing=True)
    if status_of(exc) in (400, 501):
        return Refused(answer(exc), error)
    return error


async def write(job: CopyJob, method: Method) -> Written:
    """Write the target by `method`."""
    if method == "server-copy":
        return await server_copy(job)
    if method == "server-part-copy":
        return await server_part_copy(job)
    return await stream_copy(job)


# -- server-side paths -----------------------------------------------------------------------


async def server_copy(job: CopyJob) -> Written:
    """One CopyObject. Onto the same name, SeaweedFS wants the metadata "changed"
    (MetadataDirective=REPLACE, carrying the source's) even though the key changes; what
    worked is remembered so the next in-place copy goes straight to it."""
    ctx = job.target.context("CopyObject")
    params = {**job.target.params(), **job.source.copy_params()}
    directives = ["COPY", "REPLACE"] if job.in_place else ["COPY"]
    if job.in_place and job.caps.get(ONTO_ITSELF) == "REPLACE":
        directives = ["REPLACE"]
    if job.source.sealed:  # the seal must be made again for the target's key and name
        directives = ["REPLACE"]
    for directive in directives:
        extra = {"MetadataDirective": directive}
        if directive == "REPLACE":
            extra.update(job.source.carried(job.target))
        try:
            async with job.scheduler.request():
                resp = await job.client.copy_object(**params, **extra)
        except S3_FAILURES as exc:
            failure = _refused_or_error(exc, ctx)
            if isinstance(failure, Refused) and directive != directives[-1]:
                continue
            raise failure from exc
        if directive == "REPLACE" and job.in_place:
            job.caps[ONTO_ITSELF] = "REPLACE"
        etag = resp.get("CopyObjectResult", {}).get("ETag")
        return Written("server-copy", etag, resp.get("VersionId"), 1)
    raise AssertionError("unreachable")  # pragma: no cover


async def server_part_copy(job: CopyJob) -> Written:
    """Parallel UploadPartCopy. Part 1 goes alone first, so a server that refuses costs one
    request (and one abort)."""
    parts = plan_upload(job.size, part_size=None, preferred=job.options.part_size)
    async with multipart_upload(
        job.client, job.scheduler, job.target, create_extra=job.source.carried(job.target)
    ) as upload:
        params = {
            **job.target.params(),
            **job.source.copy_params(),
            "UploadId": upload.upload_id,
        }

        async def copy_part(part: Part) -> None:
            ctx = job.target.context("UploadPartCopy", part.number)
            try:
                async with job.scheduler.request():
                    resp = await job.client.upload_part_copy(
                        **params, PartNumber=part.number, CopySourceRange=part.http_range
                    )
            except S3_FAILURES as exc:
                raise _refused_or_error(exc, ctx) from exc
            upload.part_done(part.number, resp["CopyPartResult"]["ETag"], {})

        await copy_part(parts[0])
        await for_each(parts[1:], copy_part, job.options.concurrency)
        etag, version_id = await upload.complete()
    return Written("server-part-copy", etag, version_id, len(parts))


# -- streamed path -----------------------------------------------------------------------------


def _source_read(job: CopyJob, *, ranged: bool) -> RangeRead:
    return RangeRead(
        job.source.pinned_get(), key_sent=job.source.sse is not None, ranged=ranged,
        chunk_size=READ_CHUNK, retry=job.options.retry, hint="rerun; nothing was replaced",
    )  # fmt: skip


async def _fetch(job: CopyJob, read: RangeRead, part: Part) -> tuple[bytearray, int]:
    """One range of the source into memory (the caller reserved it); returns it and its CRC32C."""
    data = bytearray(part.length)

    async def keep(pieces: list[bytes], at: int) -> None:
        for piece in pieces:
            data[at : at + len(piece)] = piece
            at += len(piece)

    async with job.scheduler.request():
        crc = await get_range(read, job.client, part, keep)
    return data, crc


async def _checksum(
    algorithm: ChecksumAlgorithm | None, data: bytearray, crc: int
) -> dict[str, str]:
    """The body's checksum header: CRC32C is already known from the read; other algorithms
    cost one pass in a thread."""
    if algorithm is None:
        return {}
    if algorithm.name == "CRC32C":
        value = base64.b64encode(crc.to_bytes(4, "big")).decode("ascii")
    else:
        value = await anyio.to_thread.run_sync(algorithm.of, cast(bytes, data))
    return checksum_params(algorithm, value)


async def stream_copy(job: CopyJob) -> Written:
    """Re-encrypt through this machine: small objects with one GET and one PutObject, others
    as a multipart upload whose parts are ranged GETs held in the byte budget."""
    if job.single_put:
        return await _stream_single(job)
    parts = plan_upload(job.size, part_size=None, preferred=job.options.part_size)
    algorithm = job.options.checksum.algorithm
    create_extra = job.source.carried(job.target)
    if algorithm:
        create_extra["ChecksumAlgorithm"] = algorithm.name
    read = _source_read(job, ranged=True)
    crcs: dict[int, int] = {}
    job.report(0)
    async with multipart_upload(
        job.client, job.scheduler, job.target, create_extra=create_extra
    ) as upload:

        async def move(part: Part) -> None:
            async with job.scheduler.budget.reserve(part.length):
                data, crc = await _fetch(job, read, part)
                checksum = await _checksum(algorithm, data, crc)
                resp = await upload_part(
                    job.client, job.target, upload.upload_id, part.number,
                    partial(PartBody, cast(bytes, data)), checksum, job.options.retry,
                    job.scheduler.request,
                )  # fmt: skip
            crcs[part.number] = crc
            upload.part_done(part.number, resp["ETag"], checksum)
            job.report(part.length)

        await for_each(parts, move, job.options.concurrency)
        etag, version_id = await upload.complete()
    crc = combine_parts((crcs[p.number], p.length) for p in parts)
    return Written("stream", etag, version_id, len(parts), crc)


async def _stream_single(job: CopyJob) -> Written:
    size = job.size
    async with job.scheduler.budget.reserve(max(size, 1)):
        data, crc = await _fetch(job, _source_read(job, ranged=False), Part(1, 0, size))
        checksum = await _checksum(job.options.checksum.algorithm, data, crc)
        async with job.scheduler.request():
            resp = await put_object(
                job.client, job.target, PartBody(cast(bytes, data)), checksum,
                job.source.carried(job.target),
            )  # fmt: skip
    job.report(size)
    return Written("stream", resp.get("ETag"), resp.get("VersionId"), 1, crc)
