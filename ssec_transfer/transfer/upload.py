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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from ssec_transfer.core.checksums import ChecksumAlgorithm, ChecksumPolicy, encode
from ssec_transfer.core.crc import combine_parts, crc32c, digest_text
from ssec_transfer.core.errors import (
    ErrorContext,
    IntegrityError,
    LocalIOError,
    SSECTransferError,
    TransferFailedError,
    UsageError,
    WrongKeyError,
)
from ssec_transfer.core.plan import MAX_SINGLE_PUT, Part, plan_parts, plan_upload
from ssec_transfer.core.results import TransferResult
from ssec_transfer.core.retry import BODY_ERRORS, RetryPolicy, describe
from ssec_transfer.core.scheduler import Scheduler
from ssec_transfer.core.taskgroups import task_group
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.bodies import FILE_SLICE, FilePartBody, PartBody
from ssec_transfer.s3.errors import CORRUPTION_CODES, error_code, status_of, translate, translated
from ssec_transfer.s3.multipart import create_multipart_upload
from ssec_transfer.s3.sse import sse_params
from ssec_transfer.state.journal import Resumable, UploadEntry

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
    resumable: Resumable | None = None


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


def checksum_params(algorithm: ChecksumAlgorithm | None, value: str | None) -> dict[str, str]:
    return {algorithm.param: value} if algorithm and value else {}


def check_echo(
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
    st = await anyio.to_thread.run_sync(_stat_source, source)
    source = await anyio.to_thread.run_sync(source.absolute)  # the journal's identity of it
    size = st.st_size
    content_type = mimetypes.guess_type(source.name)[0] or "application/octet-stream"
    common: dict[str, Any] = {"Bucket": bucket, "Key": key, **sse_params(ssec)}
    fd = await anyio.to_thread.run_sync(_open_source, source)
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
            n_parts, resumed = 1, 0
        else:
            parts = plan_upload(
                size, part_size=options.part_size, preferred=options.preferred_part_size
            )
            try:
                etag, version_id, crc, resumed = await _put_multipart(
                    client, fd, source, st, parts, common, content_type, options, scheduler,
                    progress,
                )  # fmt: skip
            except SSECTransferError:
                # A file that changed explains the failure best.
                await anyio.to_thread.run_sync(_check_unchanged, source, st)
                raise
            n_parts = len(parts)
        await anyio.to_thread.run_sync(_check_unchanged, source, st)
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
        resumed_parts=resumed,
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
                    **checksum_params(algorithm, chunk.checksum),
                    **common,
                )
        check_echo(resp, algorithm, chunk.checksum, ctx)
    if progress:
        progress(size, size)
    return resp.get("ETag"), resp.get("VersionId"), chunk.crc


async def _put_multipart(
    client: Any,
    fd: int,
    source: Path,
    st: os.stat_result,
    parts: list[Part],
    common: dict[str, Any],
    content_type: str,
    options: UploadOptions,
    scheduler: Scheduler,
    progress: ProgressCallback | None,
) -> tuple[str | None, str | None, int, int]:
    """Returns ETag, VersionId, whole-object CRC32C and how many parts an earlier,
    interrupted run had already sent."""
    bucket, key = common["Bucket"], common["Key"]
    algorithm = options.checksum.algorithm
    resumable = options.resumable
    journal_id: int | None = None
    finished: dict[int, tuple[str, str | None, int]] = {}
    upload_id: str | None = None
    if resumable is not None:
        upload_id, journal_id, finished, parts = await _resume_point(
            client, source, st, parts, common, options, scheduler
        )
    if upload_id is None:
        create_extra = {"ChecksumAlgorithm": algorithm.name} if algorithm else {}
        upload_id = await create_multipart_upload(
            client, scheduler, {"ContentType": content_type, **create_extra, **common}
        )
    assert upload_id is not None

    async def on_part_done(number: int, etag: str, checksum: str | None, crc: int) -> None:
        if resumable is not None and journal_id is not None:
            await anyio.to_thread.run_sync(
                resumable.journal.part_done, journal_id, number, etag, checksum, crc
            )

    try:
        await anyio.lowlevel.checkpoint()  # a cancellation held back by the shield lands here
        if resumable is not None and journal_id is None:
            journal_id = await anyio.to_thread.run_sync(
                resumable.journal.start_upload,
                UploadEntry(
                    0, 0.0, resumable.endpoint, bucket, key, upload_id, str(source),
                    st.st_size, st.st_mtime_ns, parts[0].length if len(parts) > 1 else
                    max(parts[0].length, 1), common["SSECustomerKeyMD5"],
                    algorithm.name if algorithm else None,
                ),
            )  # fmt: skip
        todo = [part for part in parts if part.number not in finished]
        completed, crcs = await _send_parts(
            client, fd, source, todo, common, upload_id, options, scheduler, progress,
            on_part_done, already_done=sum(p.length for p in parts if p.number in finished),
            total=parts[-1].end,
        )  # fmt: skip
        for number, (part_etag, part_checksum, part_crc) in finished.items():
            completed[number] = {
                "PartNumber": number,
                "ETag": part_etag,
                **({algorithm.param: part_checksum} if algorithm and part_checksum else {}),
            }
            crcs[number] = part_crc
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
        if resumable is not None and resumable.resume:
            log.warning(
                "upload of s3://%s/%s interrupted; %s; run the same command with --resume to "
                "continue, or `ssec-transfer cleanup s3://%s/%s` to abandon it",
                bucket, key, "finished parts are kept", bucket, key,
            )  # fmt: skip
            raise
        with anyio.move_on_after(ABORT_TIMEOUT, shield=True):
            await abort_quietly(client, bucket, key, upload_id)
            if resumable is not None and journal_id is not None:
                await anyio.to_thread.run_sync(resumable.journal.forget_upload, journal_id)
        raise
    if resumable is not None and journal_id is not None:
        await anyio.to_thread.run_sync(resumable.journal.forget_upload, journal_id)
    etag, version_id = done.get("ETag") or None, done.get("VersionId")
    if etag is None:  # Ceph RGW answers CompleteMultipartUpload with an empty ETag
        with translated(ErrorContext("HeadObject", bucket, key), key_sent=True):
            head = await client.head_object(**common)
        etag, version_id = head.get("ETag"), head.get("VersionId", version_id)
    crc = combine_parts((crcs[part.number], part.length) for part in parts)
    return etag, version_id, crc, len(finished)


async def _resume_point(
    client: Any,
    source: Path,
    st: os.stat_result,
    parts: list[Part],
    common: dict[str, Any],
    options: UploadOptions,
    scheduler: Scheduler,
) -> tuple[str | None, int | None, dict[int, tuple[str, str | None, int]], list[Part]]:
    """Find an interrupted upload of this very file and reconcile it with the server.

    Returns its UploadId, journal row, the parts the server holds that the journal vouches
    for, and the plan (the interrupted upload's part size wins). Nothing is sent before the
    key is checked against the journal's fingerprint.
    """
    resumable = options.resumable
    assert resumable is not None
    bucket, key = common["Bucket"], common["Key"]
    entry = await anyio.to_thread.run_sync(
        resumable.journal.find_upload,
        resumable.endpoint, bucket, key, str(source), st.st_size, st.st_mtime_ns,
    )  # fmt: skip
    if entry is None:
        return None, None, {}, parts
    if not resumable.resume:
        log.warning(
            "an interrupted upload of %s to s3://%s/%s exists (UploadId %s); this run starts "
            "a new one; use --resume to continue it, or `ssec-transfer cleanup` to remove it",
            source, bucket, key, entry.upload_id,
        )  # fmt: skip
        return None, None, {}, parts
    ctx = ErrorContext("resume", bucket, key)
    if entry.key_fingerprint != common["SSECustomerKeyMD5"]:
        raise WrongKeyError(
            f"the interrupted upload was encrypted with key {entry.key_fingerprint}; resuming "
            "needs the same key (one object, one key)",
            hint="pass the key file used for the first run, or start over without --resume",
            context=ctx,
        )
    parts = plan_parts(st.st_size, entry.part_size)
    server: dict[int, tuple[str, int]] = {}
    try:
        paginator = client.get_paginator("list_parts")
        async for page in paginator.paginate(
            Bucket=bucket, Key=key, UploadId=entry.upload_id,
            SSECustomerAlgorithm=common["SSECustomerAlgorithm"],
            SSECustomerKey=common["SSECustomerKey"],
            SSECustomerKeyMD5=common["SSECustomerKeyMD5"],
        ):  # fmt: skip
            for p in page.get("Parts", []):
                server[int(p["PartNumber"])] = (str(p["ETag"]), int(p["Size"]))
    except Exception as exc:
        if error_code(exc) == "NoSuchUpload" or status_of(exc) == 404:
            log.warning("the interrupted upload %s is gone from the server; starting over",
                        entry.upload_id)  # fmt: skip
            await anyio.to_thread.run_sync(resumable.journal.forget_upload, entry.id)
            return None, None, {}, parts
        raise translate(exc, ErrorContext("ListParts", bucket, key), key_sent=True) from exc
    journaled = await anyio.to_thread.run_sync(resumable.journal.upload_parts, entry.id)
    sizes = {part.number: part.length for part in parts}
    finished = {
        number: record
        for number, record in journaled.items()
        if number in server
        and server[number][0].strip('"') == record[0].strip('"')
        and server[number][1] == sizes.get(number)
    }
    log.info("resuming upload %s: %d of %d parts already on the server",
             entry.upload_id, len(finished), len(parts))  # fmt: skip
    return entry.upload_id, entry.id, finished, parts


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
    on_part_done: Callable[[int, str, str | None, int], Awaitable[None]],
    *,
    already_done: int,
    total: int,
) -> tuple[dict[int, dict[str, Any]], dict[int, int]]:
    """Send these parts straight from the file; return CompleteMultipartUpload's part list
    and each part's CRC32C, both keyed by part number.

    Parts are never held in memory whole: each request streams its byte range slice by slice
    (`FilePartBody`), so memory per request in flight is about two slices, whatever the part
    size. With a checksum, the range is read once more beforehand, from the page cache.
    """
    completed: dict[int, dict[str, Any]] = {}
    crcs: dict[int, int] = {}
    algorithm = options.checksum.algorithm
    if progress:
        progress(already_done, total)
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
                await on_part_done(part.number, resp["ETag"], value, crcs[part.number])
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
            check_echo(resp, algorithm, checksum.get(algorithm.param) if algorithm else None, ctx)
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
