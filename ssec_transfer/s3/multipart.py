"""Starting a multipart upload without ever leaving one behind.

CreateMultipartUpload is not idempotent: when its answer is lost (a reset, a 503 from a
proxy, a read timeout) and botocore retries, the server may hold an upload the client never
heard of. No one could abort it; it would cost storage silently. So the create is shielded
from cancellation (its id must always be learned), and when it needed retries, uploads of
the same key that the server started during that call are aborted.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from ssec_transfer.core.errors import ErrorContext
from ssec_transfer.core.retry import BODY_ERRORS
from ssec_transfer.core.scheduler import Scheduler
from ssec_transfer.s3.errors import translated

log = logging.getLogger(__name__)

# Clock skew tolerated between this machine and the server when matching `Initiated` times.
SKEW = timedelta(seconds=120)
SWEEP_TIMEOUT = 30.0


async def create_multipart_upload(client: Any, scheduler: Scheduler, params: dict[str, Any]) -> str:
    """CreateMultipartUpload with `params`; returns the UploadId."""
    bucket, key = params["Bucket"], params["Key"]
    ctx = ErrorContext("CreateMultipartUpload", bucket, key)
    started = datetime.now(UTC)
    key_sent = "SSECustomerKey" in params
    try:
        with translated(ctx, key_sent=key_sent, writing=True):
            async with scheduler.request():
                with anyio.CancelScope(shield=True):
                    created = await client.create_multipart_upload(**params)
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
