"""Upload one file: a single PutObject when small, else a parallel multipart upload.

Multipart flow: a reader task cuts the file into the planned parts, reserving each part's bytes
in the byte budget *before* reading it, and hands (part, bytes) to N workers through a bounded
stream; each worker sends UploadPart with the one key pinned for this object and releases the
bytes. Any failure or cancellation aborts the multipart upload under a shielded cancel scope, so
nothing is left on the server and an existing object of the same name stays untouched.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from ssec_transfer.buffers import ByteBudget
from ssec_transfer.errors import ErrorContext, LocalIOError, UsageError
from ssec_transfer.keys import SSECustomerKey
from ssec_transfer.plan import MAX_SINGLE_PUT, Part, plan_upload
from ssec_transfer.results import TransferResult
from ssec_transfer.s3errors import translated
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


def _read_exact(fd: int, part: Part, path: Path) -> bytes:
    data = os.pread(fd, part.length, part.offset)
    if len(data) != part.length:
        raise LocalIOError(
            f"source file {path} shrank while it was being uploaded",
            hint="upload files only once they are complete",
        )
    return data


async def upload_file(
    client: Any,
    source: Path,
    bucket: str,
    key: str,
    *,
    ssec: SSECustomerKey,
    options: UploadOptions,
    budget: ByteBudget,
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
            etag, version_id = await _put_single(
                client, fd, source, size, common, content_type, budget, progress
            )
            n_parts = 1
        else:
            parts = plan_upload(
                size, part_size=options.part_size, preferred=options.preferred_part_size
            )
            etag, version_id = await _put_multipart(
                client, fd, source, parts, common, content_type, options, budget, progress
            )
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
    budget: ByteBudget,
    progress: ProgressCallback | None,
) -> tuple[str | None, str | None]:
    ctx = ErrorContext("PutObject", common["Bucket"], common["Key"])
    async with budget.reserve(size):
        data = await anyio.to_thread.run_sync(_read_exact, fd, Part(1, 0, size), source)
        with translated(ctx, key_sent=True, writing=True):
            resp = await client.put_object(Body=data, ContentType=content_type, **common)
    if progress:
        progress(size, size)
    return resp.get("ETag"), resp.get("VersionId")


async def _put_multipart(
    client: Any,
    fd: int,
    source: Path,
    parts: list[Part],
    common: dict[str, Any],
    content_type: str,
    options: UploadOptions,
    budget: ByteBudget,
    progress: ProgressCallback | None,
) -> tuple[str | None, str | None]:
    bucket, key = common["Bucket"], common["Key"]
    with translated(
        ErrorContext("CreateMultipartUpload", bucket, key), key_sent=True, writing=True
    ):
        created = await client.create_multipart_upload(ContentType=content_type, **common)
    upload_id: str = created["UploadId"]
    try:
        etags = await _send_parts(
            client, fd, source, parts, common, upload_id, options, budget, progress
        )
        completed = [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]
        with translated(
            ErrorContext("CompleteMultipartUpload", bucket, key), key_sent=True, writing=True
        ):
            done = await client.complete_multipart_upload(
                UploadId=upload_id, MultipartUpload={"Parts": completed}, **common
            )
    except BaseException:
        with anyio.move_on_after(ABORT_TIMEOUT, shield=True):
            await abort_quietly(client, bucket, key, upload_id)
        raise
    return done.get("ETag") or None, done.get("VersionId")


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
    budget: ByteBudget,
    progress: ProgressCallback | None,
) -> dict[int, str]:
    etags: dict[int, str] = {}
    total = parts[-1].end
    if progress:
        progress(0, total)
    held = 0  # bytes this upload holds in the shared budget; returned whatever happens
    workers = max(1, min(options.concurrency, len(parts)))
    send, receive = anyio.create_memory_object_stream[tuple[Part, bytes]](max_buffer_size=workers)

    async def read_parts(send: ObjectSendStream[tuple[Part, bytes]]) -> None:
        async with send:
            for part in parts:
                await budget.acquire(part.length)
                nonlocal held
                held += part.length
                data = await anyio.to_thread.run_sync(_read_exact, fd, part, source)
                await send.send((part, data))

    async def send_parts(receive: ObjectReceiveStream[tuple[Part, bytes]]) -> None:
        async with receive:
            async for part, data in receive:
                ctx = ErrorContext("UploadPart", common["Bucket"], common["Key"], part.number)
                nonlocal held
                try:
                    with translated(ctx, key_sent=True, writing=True):
                        resp = await client.upload_part(
                            Body=data, PartNumber=part.number, UploadId=upload_id, **common
                        )
                finally:
                    del data
                    held -= part.length
                    budget.release(part.length)
                etags[part.number] = resp["ETag"]
                if progress:
                    progress(part.length, total)

    try:
        async with task_group() as tg:
            tg.start_soon(read_parts, send)
            for _ in range(workers):
                tg.start_soon(send_parts, receive.clone())
            receive.close()
    finally:
        if held:  # parts read but never sent, left in the stream by a failure
            budget.release(held)
    return etags
