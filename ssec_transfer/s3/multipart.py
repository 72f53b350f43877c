"""The multipart lifecycle, written once: create, parts, complete, and an abort on every
other way out.

`multipart_upload` is an async context manager that every multipart writer (upload, streams,
copies) runs its parts inside. On any failure or cancellation the upload is aborted under a
shielded scope, so nothing is left on the server and an existing object of the same name stays
untouched; `MultipartUpload.complete` also asks a HEAD for the ETag where Ceph RGW answers
CompleteMultipartUpload without one.

CreateMultipartUpload is not idempotent: when its answer is lost (a reset, a 503 from a
proxy, a read timeout) and botocore retries, the server may hold an upload the client never
heard of. No one could abort it; it would cost storage silently. So the create is shielded
from cancellation (its id must always be learned), and when it needed retries, uploads of
the same key that the server started during that call are aborted.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from ssec_transfer.core.errors import ObjectExistsError
from ssec_transfer.core.scheduler import Scheduler
from ssec_transfer.s3.errors import BODY_ERRORS, translated
from ssec_transfer.s3.requests import (
    NO_CLOBBER,
    ObjectRef,
    abort_quietly,
    naming_the_storage_class,
    object_exists,
    refused_as_existing,
    require_absent,
)

log = logging.getLogger(__name__)

# Clock skew tolerated between this machine and the server when matching `Initiated` times.
SKEW = timedelta(seconds=120)
SWEEP_TIMEOUT = 30.0
ABORT_TIMEOUT = 30.0


@dataclass
class MultipartUpload:
    """One multipart upload in progress: the parts the server has acknowledged so far."""

    client: Any
    scheduler: Scheduler
    obj: ObjectRef
    upload_id: str
    parts: dict[int, dict[str, Any]] = field(default_factory=dict)
    completed: bool = False

    def part_done(self, number: int, etag: str, checksum: dict[str, str]) -> None:
        """Record an acknowledged part (its ETag and checksum header, if one was sent)."""
        self.parts[number] = {"PartNumber": number, "ETag": etag, **checksum}

    async def complete(self, *, no_clobber: bool = False) -> tuple[str | None, str | None]:
        """CompleteMultipartUpload with every recorded part; returns (ETag, VersionId).
        `no_clobber` sends If-None-Match: *, and a 412 raises ObjectExistsError (the upload
        is then aborted, `keep_on_failure` or not)."""
        obj = self.obj
        condition = NO_CLOBBER if no_clobber else {}
        if no_clobber:
            # A HEAD just before the commit point: on a server that ignores If-None-Match on
            # CompleteMultipartUpload (Ceph RGW 16), the race with another writer narrows from
            # the whole upload to this instant.
            async with self.scheduler.request():
                await require_absent(self.client, obj, "CompleteMultipartUpload")
        # The commit point: once sent, a stop signal must not leave its outcome unknown (the
        # server may complete after the client gave up). The timeouts bound the wait.
        with (
            anyio.CancelScope(shield=True),
            translated(obj.context("CompleteMultipartUpload"), key_sent=True, writing=True),
        ):
            async with self.scheduler.request():
                try:
                    done = await self.client.complete_multipart_upload(
                        UploadId=self.upload_id,
                        MultipartUpload={"Parts": [self.parts[n] for n in sorted(self.parts)]},
                        **condition,
                        **obj.params(),
                    )
                except Exception as exc:
                    if refused_as_existing(exc, condition):
                        raise object_exists(obj, "CompleteMultipartUpload") from None
                    raise
        self.completed = True
        etag, version_id = done.get("ETag") or None, done.get("VersionId")
        if etag is None:  # Ceph RGW answers CompleteMultipartUpload with an empty ETag
            with translated(obj.context("HeadObject"), key_sent=obj.key_sent):
                async with self.scheduler.request():
                    head = await self.client.head_object(**obj.params())
            etag, version_id = head.get("ETag"), head.get("VersionId", version_id)
        return etag, version_id


@asynccontextmanager
async def multipart_upload(
    client: Any,
    scheduler: Scheduler,
    obj: ObjectRef,
    *,
    create_extra: dict[str, Any],
    upload_id: str | None = None,
    keep_on_failure: bool = False,
    on_abort: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[MultipartUpload]:
    """Create (or continue `upload_id`) a multipart upload of `obj` and yield it; the body
    sends parts and calls `complete()`. On any other way out the upload is aborted (shielded)
    and `on_abort` runs, unless `keep_on_failure` keeps it for a later resume."""
    if upload_id is None:
        upload_id = await _create(client, scheduler, obj, create_extra)
    upload = MultipartUpload(client, scheduler, obj, upload_id)
    try:
        await anyio.lowlevel.checkpoint()  # a cancellation held back by the shield lands here
        yield upload
        if not upload.completed:
            raise RuntimeError("a multipart upload was left without complete()")
    except BaseException as exc:
        # An object that exists (--no-clobber) will not stop existing: nothing to resume.
        if keep_on_failure and not isinstance(exc, ObjectExistsError):
            raise
        with anyio.move_on_after(ABORT_TIMEOUT, shield=True):
            await abort_quietly(client, obj, upload_id)
            if on_abort is not None:
                await on_abort()
        raise


async def _create(client: Any, scheduler: Scheduler, obj: ObjectRef, extra: dict[str, Any]) -> str:
    """CreateMultipartUpload of `obj` with `extra` parameters; returns the UploadId."""
    bucket, key = obj.bucket, obj.key
    ctx = obj.context("CreateMultipartUpload")
    started = datetime.now(UTC)
    try:
        with naming_the_storage_class(extra), translated(ctx, key_sent=obj.key_sent, writing=True):
            async with scheduler.request():
                with anyio.CancelScope(shield=True):
                    created = await client.create_multipart_upload(**extra, **obj.params())
    except BaseException as exc:
        if isinstance(exc.__cause__, BODY_ERRORS):  # the server may have created one anyway
            await _abort_orphans(client, bucket, key, None, started)
        raise
    upload_id: str = created["UploadId"]
    if created.get("ResponseMetadata", {}).get("RetryAttempts", 0):
        await _abort_orphans(client, bucket, key, upload_id, started)
    return upload_id


async def _abort_orphans(
    client: Any, bucket: str, key: str, keep: str | None, started: datetime
) -> None:
    """Abort uploads of `key` the server started while our create call was running."""
    window = (started - SKEW, datetime.now(UTC) + SKEW)
    with anyio.move_on_after(SWEEP_TIMEOUT, shield=True):
        try:
            paginator = client.get_paginator("list_multipart_uploads")
            async for page in paginator.paginate(Bucket=bucket, Prefix=key):
                for upload in page.get("Uploads", []):
                    initiated = upload.get("Initiated")
                    if upload["Key"] != key or upload["UploadId"] == keep:
                        continue
                    if initiated is not None and not window[0] <= initiated <= window[1]:
                        continue
                    await client.abort_multipart_upload(
                        Bucket=bucket, Key=key, UploadId=upload["UploadId"]
                    )
                    log.info(
                        "aborted multipart upload %s of s3://%s/%s, created by a retried "
                        "request whose answer was lost",
                        upload["UploadId"], bucket, key,
                    )  # fmt: skip
        except Exception as exc:
            log.warning(
                "could not check s3://%s/%s for uploads left by a retried create (%s); "
                "`ssec-transfer cleanup s3://%s/%s` lists them",
                bucket, key, type(exc).__name__, bucket, key,
            )  # fmt: skip
