"""Upload one file: a single PutObject when small, else a parallel multipart upload.

Multipart flow: the planned parts go through a bounded stream to N workers; each worker
reserves its slice buffers in the engine's byte budget, takes a request slot from the
scheduler, and sends UploadPart with the one key pinned for this object, streaming the part's
byte range straight from the file (`FilePartBody`). Any failure or cancellation aborts the
multipart upload under a shielded cancel scope, so nothing is left on the server and an
existing object of the same name stays untouched.
"""

from __future__ import annotations

import base64
import logging
import mimetypes
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from ssec_transfer.bodies import FILE_SLICE, FilePartBody, PartBody
from ssec_transfer.checksums import ChecksumAlgorithm, ChecksumPolicy, encode
from ssec_transfer.crc import combine_parts, crc32c, digest_text
from ssec_transfer.errors import (
    ErrorContext,
    IntegrityError,
    LocalIOError,
    SSECTransferError,
    TransferFailedError,
    UsageError,
)
from ssec_transfer.keys import SSECustomerKey
from ssec_transfer.plan import MAX_SINGLE_PUT, Part, plan_upload
from ssec_transfer.results import TransferResult
from ssec_transfer.retry import BODY_ERRORS, RetryPolicy, describe
from ssec_transfer.s3errors import CORRUPTION_CODES, error_code, translate, translated
from ssec_transfer.scheduler import Scheduler
from ssec_transfer.taskgroups import task_group

log = logging.getLogger(__name__)
ProgressCallback = Callable[[int, int], None]  # (bytes just done, total bytes)
ABORT_TIMEOUT = 30.0


@dataclass(frozen=True)
class UploadOptions:
    concurrency: int
    multipart_threshold: int
    preferred_part_size: int
    part_size: int | None  # explicit --part-size, validated against the S3 limits
    checksum: ChecksumPolicy
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True, slots=True)
class _Chunk:
    """A part read into memory, with its checksum computed in the same worker thread."""

    part: Part
    data: bytes
    checksum: str | None  # the header value for the chosen algorithm, if any
    crc: int  # CRC32C of the data, for the whole-object digest


def _stat_source(path: Path) -> os.stat_result:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise UsageError(f"source file {path} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read source file {path}: {exc.strerror}") from None
    if not path.is_file():
        raise UsageError(f"source {path} is not a regular file")
    return st


def _open_source(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise UsageError(f"cannot read source file {path}: {exc.strerror}") from None


def _read_part(fd: int, part: Part, path: Path, algorithm: ChecksumAlgorithm | None) -> _Chunk:
    data = os.pread(fd, part.length, part.offset)
    if len(data) != part.length:
        raise LocalIOError(
            f"source file {path} shrank while it was being uploaded",
            hint="upload files only once they are complete",
        )
    return _Chunk(part, data, algorithm.of(data) if algorithm else None, crc32c(data))


def _checksum_params(algorithm: ChecksumAlgorithm | None, value: str | None) -> dict[str, str]:
    return {algorithm.param: value} if algorithm and value else {}


def _check_echo(
    resp: dict[str, Any], algorithm: ChecksumAlgorithm | None, sent: str | None, ctx: ErrorContext
) -> None:
    """Servers that verify checksums echo them; a different echo means different bytes."""
    if algorithm is None or sent is None:
        return
    echoed = resp.get(algorithm.param)
    if echoed is not None and echoed != sent:
        raise IntegrityError(
            f"the server computed {algorithm.name} {echoed}, the client sent {sent}",
            hint="the data was corrupted in transit; rerun the upload",
            context=ctx,
        )


async def upload_file(
    client: Any,
    source: Path,
    bucket: str,
    key: str,
    *,
    ssec: SSECustomerKey,
    options: UploadOptions,
    scheduler: Scheduler,
    progress: ProgressCallback | None = None,
) -> TransferResult:
    started = time.perf_counter()
    st = _stat_source(source)
    size = st.st_size
    content_type = mimetypes.guess_type(source.name)[0] or "application/octet-stream"
    common: dict[str, Any] = {"Bucket": bucket, "Key": key, **ssec.request_params()}
    fd = _open_source(source)
    try:
        if size < options.multipart_threshold and size <= MAX_SINGLE_PUT:
            etag, version_id, crc = await _put_single(
                client,
                fd,
                source,
                size,
                common,
                content_type,
                options.checksum,
                scheduler,
                progress,
            )
            n_parts = 1
        else:
            parts = plan_upload(
                size, part_size=options.part_size, preferred=options.preferred_part_size
            )
            try:
                etag, version_id, crc = await _put_multipart(
                    client, fd, source, parts, common, content_type, options, scheduler, progress
                )
            except SSECTransferError:
                _check_unchanged(source, st)  # a file that changed explains the failure best
                raise
            n_parts = len(parts)
        _check_unchanged(source, st)
    finally:
        os.close(fd)
    return TransferResult(
        operation="upload",
        bucket=bucket,
        key=key,
        path=str(source),
        size=size,
        etag=etag,
        version_id=version_id,
        key_fingerprint=ssec.fingerprint,
        parts=n_parts,
        seconds=time.perf_counter() - started,
        checksum=digest_text(crc),
    )


def _check_unchanged(path: Path, before: os.stat_result) -> None:
    after = path.stat()
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise LocalIOError(
            f"source file {path} changed while it was being uploaded",
            hint="upload files only once they are complete",
        )


async def _put_single(
    client: Any,
    fd: int,
    source: Path,
    size: int,
    common: dict[str, Any],
    content_type: str,
    checksum: ChecksumPolicy,
    scheduler: Scheduler,
    progress: ProgressCallback | None,
) -> tuple[str | None, str | None, int]:
    ctx = ErrorContext("PutObject", common["Bucket"], common["Key"])
    algorithm = checksum.algorithm
    async with scheduler.budget.reserve(size):
        chunk = await anyio.to_thread.run_sync(_read_part, fd, Part(1, 0, size), source, algorithm)
        with translated(ctx, key_sent=True, writing=True):
            async with scheduler.request():
                resp = await client.put_object(
                    Body=PartBody(chunk.data),
                    ContentType=content_type,
                    **_checksum_params(algorithm, chunk.checksum),
                    **common,
                )
        _check_echo(resp, algorithm, chunk.checksum, ctx)
    if progress:
        progress(size, size)
    return resp.get("ETag"), resp.get("VersionId"), chunk.crc


async def _put_multipart(
    client: Any,
    fd: int,
    source: Path,
    parts: list[Part],
    common: dict[str, Any],
    content_type: str,
    options: UploadOptions,
    scheduler: Scheduler,
    progress: ProgressCallback | None,
) -> tuple[str | None, str | None, int]:
    bucket, key = common["Bucket"], common["Key"]
    algorithm = options.checksum.algorithm
    create_extra = {"ChecksumAlgorithm": algorithm.name} if algorithm else {}
    with translated(
        ErrorContext("CreateMultipartUpload", bucket, key), key_sent=True, writing=True
    ):
        async with scheduler.request():
            created = await client.create_multipart_upload(
                ContentType=content_type, **create_extra, **common
            )
    upload_id: str = created["UploadId"]
    try:
        completed, crcs = await _send_parts(
            client, fd, source, parts, common, upload_id, options, scheduler, progress
        )
        with translated(
            ErrorContext("CompleteMultipartUpload", bucket, key), key_sent=True, writing=True
        ):
            async with scheduler.request():
                done = await client.complete_multipart_upload(
                    UploadId=upload_id,
                    MultipartUpload={"Parts": [completed[n] for n in sorted(completed)]},
                    **common,
                )
    except BaseException:
        with anyio.move_on_after(ABORT_TIMEOUT, shield=True):
            await abort_quietly(client, bucket, key, upload_id)
        raise
    etag, version_id = done.get("ETag") or None, done.get("VersionId")
    if etag is None:  # Ceph RGW answers CompleteMultipartUpload with an empty ETag
        with translated(ErrorContext("HeadObject", bucket, key), key_sent=True):
            head = await client.head_object(**common)
        etag, version_id = head.get("ETag"), head.get("VersionId", version_id)
    crc = combine_parts((crcs[part.number], part.length) for part in parts)
    return etag, version_id, crc


async def abort_quietly(client: Any, bucket: str, key: str, upload_id: str) -> None:
    """Best-effort AbortMultipartUpload; the original error is what the user needs to see."""
    try:
        await client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except Exception as exc:
        log.warning(
            "could not abort multipart upload %s of s3://%s/%s (%s); remove it with "
            "`aws s3api abort-multipart-upload`",
            upload_id,
            bucket,
            key,
            type(exc).__name__,
        )


async def _send_parts(
    client: Any,
    fd: int,
    source: Path,
    parts: list[Part],
    common: dict[str, Any],
    upload_id: str,
    options: UploadOptions,
    scheduler: Scheduler,
    progress: ProgressCallback | None,
) -> tuple[dict[int, dict[str, Any]], dict[int, int]]:
    """Send every part straight from the file; return CompleteMultipartUpload's part list
    and each part's CRC32C, both keyed by part number.

    Parts are never held in memory whole: each request streams its byte range slice by slice
    (`FilePartBody`), so memory per request in flight is about two slices, whatever the part
    size. With a checksum, the range is read once more beforehand, from the page cache.
    """
    completed: dict[int, dict[str, Any]] = {}
    crcs: dict[int, int] = {}
    algorithm = options.checksum.algorithm
    total = parts[-1].end
    if progress:
        progress(0, total)
    workers = max(1, min(options.concurrency, len(parts)))
    send, receive = anyio.create_memory_object_stream[Part](max_buffer_size=workers)

    async def queue_parts(send: ObjectSendStream[Part]) -> None:
        async with send:
            for part in parts:
                await send.send(part)

    async def send_parts(receive: ObjectReceiveStream[Part]) -> None:
        async with receive:
            async for part in receive:
                async with scheduler.budget.reserve(2 * FILE_SLICE):
                    value, crcs[part.number] = await anyio.to_thread.run_sync(
                        _checksum_of_range, fd, part, source, algorithm
                    )
                    checksum = {algorithm.param: value} if algorithm and value else {}
                    resp = await _send_part(
                        client, fd, part, common, upload_id, checksum, algorithm, options,
                        scheduler,
                    )  # fmt: skip
                completed[part.number] = {
                    "PartNumber": part.number,
                    "ETag": resp["ETag"],
                    **checksum,
                }
                if progress:
                    progress(part.length, total)

    async with task_group() as tg:
        tg.start_soon(queue_parts, send)
        for _ in range(workers):
            tg.start_soon(send_parts, receive.clone())
        receive.close()
    return completed, crcs


async def _send_part(
    client: Any,
    fd: int,
    part: Part,
    common: dict[str, Any],
    upload_id: str,
    checksum: dict[str, str],
    algorithm: ChecksumAlgorithm | None,
    options: UploadOptions,
    scheduler: Scheduler,
) -> dict[str, Any]:
    """UploadPart, sent again (this part only) when the server says the bytes arrived
    corrupted or the connection broke after botocore's own retries."""
    ctx = ErrorContext("UploadPart", common["Bucket"], common["Key"], part.number)
    attempt = 1
    while True:
        try:
            async with scheduler.request():
                resp: dict[str, Any] = await client.upload_part(
                    Body=FilePartBody(fd, part.offset, part.length),
                    PartNumber=part.number,
                    UploadId=upload_id,
                    **checksum,
                    **common,
                )
            _check_echo(resp, algorithm, checksum.get(algorithm.param) if algorithm else None, ctx)
            return resp
        except Exception as exc:
            corrupted = isinstance(exc, IntegrityError) or error_code(exc) in CORRUPTION_CODES
            if not (corrupted or isinstance(exc, BODY_ERRORS)):
                raise translate(exc, ctx, key_sent=True, writing=True) from exc
            if attempt >= options.retry.max_attempts:
                raise TransferFailedError(
                    f"the part failed {attempt} times; last: {describe(exc)}",
                    hint="check the network; rerun the upload",
                    context=ctx,
                ) from exc
            log.info("%s part %d: %s; sending it again", ctx.url, part.number, describe(exc))
            await anyio.sleep(options.retry.delay(attempt))
            attempt += 1


def _checksum_of_range(
    fd: int, part: Part, path: Path, algorithm: ChecksumAlgorithm | None
) -> tuple[str | None, int]:
    """The header checksum (if any) and the CRC32C of one part, in one pass over it."""
    hasher = algorithm.hasher() if algorithm and algorithm.name != "CRC32C" else None
    crc = 0
    position, end = part.offset, part.end
    while position < end:
        data = os.pread(fd, min(FILE_SLICE, end - position), position)
        if not data:
            raise LocalIOError(
                f"source file {path} shrank while it was being uploaded",
                hint="upload files only once they are complete",
            )
        crc = crc32c(data, crc)
        if hasher:
            hasher.update(data)
        position += len(data)
    if algorithm is None:
        return None, crc
    if hasher is None:  # the chosen algorithm is CRC32C itself
        return base64.b64encode(crc.to_bytes(4, "big")).decode("ascii"), crc
    return encode(hasher), crc
