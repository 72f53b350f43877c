"""The request layer: the S3 requests every transfer is made of, each written once.

HEAD, GET of one range (resumed from the byte where a body broke), PutObject, UploadPart
(sent again when the server saw corrupted bytes or the connection broke) and a quiet abort.
Each request carries its object's SSE-C key as built by `s3.sse`, and every failure leaves here
translated into the tool's errors with the operation and the object named. GetObject,
PutObject and UploadPart reach the server through the data plane (`s3.dataplane`, behind the
client `s3.client.open_client` makes), which answers and fails exactly as aiobotocore does.
Request slots (`Scheduler.request`) and memory reservations stay with the callers, who know
what a request holds while it waits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import botocore.exceptions as bx

from ssec_transfer.core.checksums import ChecksumAlgorithm
from ssec_transfer.core.crc import crc32c
from ssec_transfer.core.errors import (
    ErrorContext,
    IntegrityError,
    NoSuchBucketError,
    NoSuchVersionError,
    ObjectExistsError,
    SSECTransferError,
    TransferFailedError,
    UnexpectedKeyError,
)
from ssec_transfer.core.plan import Part
from ssec_transfer.core.results import ObjectInfo
from ssec_transfer.core.retry import ProgressClock, RetryPolicy, describe
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.keys.seal import facts_in
from ssec_transfer.s3.errors import (
    BODY_ERRORS,
    CORRUPTION_CODES,
    S3_FAILURES,
    diagnose_key_failure,
    error_code,
    no_answer,
    status_of,
    translate,
    translated,
)
from ssec_transfer.s3.sse import sse_params
from ssec_transfer.s3.timeouts import part_attempts, say_part_retry, timed_out

log = logging.getLogger(__name__)

# What a GET range delivers: one chunk as the pieces the connection gave (never joined, so
# no copy is made here) and the chunk's offset within the range.
ChunkSink = Callable[[list[bytes], int], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One object and the key it is (or will be) encrypted with: what every request names."""

    bucket: str
    key: str
    sse: SSECustomerKey | None = None

    def params(self) -> dict[str, Any]:
        """Bucket, Key and the SSE-C parameters: the common part of every request on it."""
        return {"Bucket": self.bucket, "Key": self.key, **sse_params(self.sse)}

    def context(self, operation: str, part: int | None = None) -> ErrorContext:
        return ErrorContext(operation, self.bucket, self.key, part)

    @property
    def key_sent(self) -> bool:
        return self.sse is not None


# -- reading -----------------------------------------------------------------------------------


def first_fingerprint(value: str | None) -> str | None:
    """SeaweedFS repeats the key-MD5 header (`x, x`); take the value once."""
    if not value:
        return None
    return value.split(",")[0].strip() or None


async def head_object(
    client: Any,
    obj: ObjectRef,
    *,
    version_id: str | None,
    checksums: bool = False,
) -> tuple[ObjectInfo, dict[str, Any]]:
    """HeadObject with the key; `checksums=True` also asks for the stored checksum."""
    ctx = obj.context("HeadObject")
    params = obj.params()
    if checksums:
        params["ChecksumMode"] = "ENABLED"
    if version_id:
        params["VersionId"] = version_id
    try:
        head = await client.head_object(**params)
    except Exception as exc:
        raise await _head_failure(client, exc, obj, ctx, version_id) from exc
    return object_info(obj, head, ctx), head


def object_info(obj: ObjectRef, answer: dict[str, Any], ctx: ErrorContext) -> ObjectInfo:
    """The object a HEAD or a whole-object GET answered about. A key given for an object that
    is not SSE-C is refused: some servers serve it anyway."""
    algorithm = answer.get("SSECustomerAlgorithm")
    if obj.sse and not algorithm:
        raise UnexpectedKeyError(
            "a key was given but the object is not SSE-C encrypted",
            hint="read it without --key-file",
            context=ctx,
        )
    modified = answer.get("LastModified")
    return ObjectInfo(
        bucket=obj.bucket,
        key=obj.key,
        size=int(answer["ContentLength"]),
        etag=answer.get("ETag"),
        version_id=answer.get("VersionId"),
        last_modified=modified.isoformat() if modified else None,
        content_type=answer.get("ContentType"),
        sse_customer_algorithm=algorithm,
        key_fingerprint=first_fingerprint(answer.get("SSECustomerKeyMD5")),
        sealed=facts_in(answer.get("Metadata"), obj.sse, obj.bucket, obj.key),
    )


async def _head_failure(
    client: Any, exc: Exception, obj: ObjectRef, ctx: ErrorContext, version_id: str | None
) -> Exception:
    """A HEAD answer has no body: find out whether the key, the bucket or the version is wrong."""
    status = status_of(exc)
    if status in (400, 403):
        diagnosed = await diagnose_key_failure(
            client, ctx, key_sent=obj.key_sent, version_id=version_id, failure=exc
        )
        if diagnosed:
            return diagnosed
    if status == 404 and not await _bucket_exists(client, obj.bucket):
        return NoSuchBucketError(
            f"bucket {obj.bucket!r} does not exist",
            hint="check the bucket name and the endpoint",
            context=ctx,
        )
    if status == 404 and version_id:
        return NoSuchVersionError(
            f"no version {version_id} of this object exists",
            hint="list versions to find the right one",
            context=ctx,
        )
    return translate(exc, ctx, key_sent=obj.key_sent)


async def _bucket_exists(client: Any, bucket: str) -> bool:
    """A HEAD 404 has no body saying whether the bucket or the object is missing; ask."""
    try:
        await client.head_bucket(Bucket=bucket)
    except Exception as exc:
        return status_of(exc) != 404
    return True


async def get_object(
    client: Any, params: dict[str, Any], ctx: ErrorContext, *, key_sent: bool
) -> dict[str, Any]:
    """GetObject; a 400/403 is diagnosed (wrong, missing or unexpected key) the same way on
    every server, anything else translated into the tool's errors."""
    try:
        resp: dict[str, Any] = await client.get_object(**params)
    except Exception as exc:
        if status_of(exc) in (400, 403):
            diagnosed = await diagnose_key_failure(
                client, ctx, key_sent=key_sent, version_id=params.get("VersionId"), failure=exc
            )
            if diagnosed:
                raise diagnosed from None
        error = translate(exc, ctx, key_sent=key_sent)
        version = params.get("VersionId")
        if version and status_of(exc) == 404 and not isinstance(error, NoSuchBucketError):
            # Ceph answers NoSuchKey for a version that does not exist
            error = NoSuchVersionError(
                f"no version {version} of this object exists",
                hint="list versions to find the right one",
                context=ctx,
            )
        raise error from exc
    return resp


def real_version(version_id: str | None) -> str | None:
    """Unversioned objects report VersionId "null" (or nothing); never pin to that."""
    return version_id if version_id and version_id != "null" else None


def pinned_get(info: ObjectInfo, sse: SSECustomerKey | None) -> dict[str, Any]:
    """GetObject parameters that read exactly the object version a HEAD saw, or fail (412)."""
    pin = ObjectRef(info.bucket, info.key, sse).params()
    if version := real_version(info.version_id):
        pin["VersionId"] = version
    if info.etag:
        pin["IfMatch"] = info.etag
    return pin


class _BrokenBody(Exception):
    """The body ended before the range did; the rest of the range is fetched again."""


_RETRIED_BODY_ERRORS: tuple[type[BaseException], ...] = (_BrokenBody, *BODY_ERRORS)
# What an UploadPart can fail with that is the server's or the network's doing.
_PART_FAILURES: tuple[type[BaseException], ...] = (IntegrityError, *S3_FAILURES, *BODY_ERRORS)


@dataclass(frozen=True, slots=True)
class RangeRead:
    """How to read ranges of one pinned object version (see `pinned_get`)."""

    pin: dict[str, Any]
    key_sent: bool
    ranged: bool  # False: one GET of the whole object, without a Range header
    chunk_size: int
    retry: RetryPolicy
    operation: str = "GetObject"
    hint: str = "rerun; nothing partial was kept"
    # Set: the range (from offset 0) is read as the start of a GET of the whole object, which
    # must announce this many bytes, and the rest is dropped. Proves the server serves the
    # object whole, not only in ranges (copies verify what a server-side copy wrote this way).
    whole_size: int | None = None


async def get_range(read: RangeRead, client: Any, part: Part, sink: ChunkSink | None) -> int:
    """GET one range and hand it to `sink` in chunks of at most `chunk_size` bytes (each as the
    pieces the connection delivered); return the
    range's CRC32C. A body that breaks midway is fetched again from the byte where it broke
    (what the sink received is kept), up to `retry.max_attempts` times and only while the
    range has gone less than `retry.request_timeout` seconds without a byte (see
    `s3.timeouts`); a body longer than the range is an IntegrityError."""
    ctx = ErrorContext(
        read.operation, read.pin["Bucket"], read.pin["Key"], part.number if read.ranged else None
    )
    received = crc = 0
    attempt = 1
    clock = ProgressClock()  # the server's silence over all of this range's requests
    while True:
        params = dict(read.pin)
        whole = read.whole_size is not None and not received  # a resumed read is a range
        if part.length > 0 and (read.ranged or received) and not whole:
            params["Range"] = f"bytes={part.offset + received}-{part.end - 1}"
        with clock.active():
            resp = await get_object(client, params, ctx, key_sent=read.key_sent)
        try:
            async with resp["Body"] as body:
                if whole and resp.get("ContentLength") != read.whole_size:
                    raise IntegrityError(
                        f"a whole-object GET announced {resp.get('ContentLength')} bytes, "
                        f"not {read.whole_size}",
                        hint=read.hint,
                        context=ctx,
                    )
                while received < part.length:
                    want = min(read.chunk_size, part.length - received)
                    pieces, got = await _read_pieces(body, want, clock)
                    if got != want:  # what was read of this chunk is fetched again
                        raise _BrokenBody(
                            f"the body ended after {received + got} of {part.length} bytes"
                        )
                    for piece in pieces:
                        crc = crc32c(piece, crc)
                    if sink is not None:
                        await sink(pieces, received)
                        clock.moved()  # a slow disk or reader is not the server's silence
                    received += want
                if not whole and await body.read(1):
                    raise IntegrityError(
                        f"the server sent more than the {part.length} bytes asked for",
                        hint=read.hint,
                        context=ctx,
                    )
            return crc
        except _RETRIED_BODY_ERRORS as exc:
            silent = clock.silent_for()
            out_of_time = silent >= read.retry.request_timeout
            if attempt >= read.retry.max_attempts or out_of_time:
                if isinstance(exc, bx.ReadTimeoutError | bx.ConnectTimeoutError):
                    record = part_attempts(
                        client, exc, attempt, silent, read.retry.request_timeout,
                        out_of_time and attempt < read.retry.max_attempts,
                    )  # fmt: skip
                    raise no_answer(exc, ctx, record) from exc
                raise TransferFailedError(
                    f"the response body broke {attempt} times; last: {describe(exc)}",
                    hint=f"check the network; {read.hint}",
                    context=ctx,
                ) from exc
            where = f"{read.operation} {ctx.url}" + (f" part {ctx.part}" if ctx.part else "")
            say_part_retry(client, exc, where, attempt + 1, read.retry.max_attempts,
                           "fetching the rest again")  # fmt: skip
            await anyio.sleep(read.retry.delay(attempt))
            attempt += 1


async def _read_pieces(
    body: Any, size: int, clock: ProgressClock | None = None
) -> tuple[list[bytes], int]:
    """Up to `size` bytes as the pieces read, and how many; fewer only if the body ends first.
    Each piece counts as progress on `clock`."""
    pieces: list[bytes] = []
    have = 0
    while have < size:
        piece: bytes = await body.read(size - have)
        if not piece:
            break
        if clock is not None:
            clock.moved()
        pieces.append(piece)
        have += len(piece)
    return pieces, have


# -- writing -----------------------------------------------------------------------------------


def checksum_params(algorithm: ChecksumAlgorithm | None, value: str | None) -> dict[str, str]:
    """The checksum header of one body, when a checksum was chosen."""
    return {algorithm.param: value} if algorithm and value else {}


def check_echo(resp: dict[str, Any], sent: dict[str, str], ctx: ErrorContext) -> None:
    """Servers that verify checksums echo them; a different echo means different bytes."""
    for param, value in sent.items():
        echoed = resp.get(param)
        if echoed is not None and echoed != value:
            raise IntegrityError(
                f"the server computed {param.removeprefix('Checksum')} {echoed}, "
                f"the client sent {value}",
                hint="the data was corrupted in transit; rerun the upload",
                context=ctx,
            )


# What a write sends to never replace an object (`--no-clobber`): PutObject and
# CompleteMultipartUpload then fail with 412 where the key exists, on servers that honour it.
NO_CLOBBER: dict[str, str] = {"IfNoneMatch": "*"}


def object_exists(obj: ObjectRef, operation: str) -> ObjectExistsError:
    """What `--no-clobber` reports for an object that exists: nothing was written."""
    return ObjectExistsError(
        "the object exists; --no-clobber leaves it untouched",
        hint="remove --no-clobber to replace it, or choose another key",
        context=obj.context(operation),
    )


async def require_absent(client: Any, obj: ObjectRef, operation: str = "HeadObject") -> None:
    """`--no-clobber`'s check: an object that exists raises ObjectExistsError (reported as
    `operation`). A HEAD without the key: 404 is absent, 200 or 400 (an SSE-C object asked
    without its key) is there. A 403 tells nothing (no read permission): the write goes ahead
    and If-None-Match has the last word, where the server honours it."""
    try:
        await client.head_object(Bucket=obj.bucket, Key=obj.key)
    except bx.ClientError as exc:
        status = status_of(exc)
        if status == 404:
            return
        if status == 403:
            log.warning(
                "HeadObject s3://%s/%s refused (403): cannot tell whether it exists; only "
                "If-None-Match keeps it from being replaced", obj.bucket, obj.key,
            )  # fmt: skip
            return
        if status != 400:
            raise translate(exc, obj.context("HeadObject"), key_sent=False) from exc
    except (bx.BotoCoreError, OSError) as exc:
        raise translate(exc, obj.context("HeadObject"), key_sent=False) from exc
    raise object_exists(obj, operation)


def refused_as_existing(exc: BaseException, params: dict[str, Any]) -> bool:
    """A 412 to a write that carried If-None-Match: * means the object exists (it appeared
    since the HEAD, or a racing writer finished first)."""
    return bool(params.get("IfNoneMatch")) and status_of(exc) == 412


@contextmanager
def naming_the_storage_class(params: dict[str, Any]) -> Iterator[None]:
    """A write that named a storage class and got a 400: servers refuse a class they lack
    with a bare InvalidArgument (Ceph RGW takes only its placement targets' classes), so the
    hint says which option to look at instead of the generic one."""
    try:
        yield
    except SSECTransferError as exc:
        name = params.get("StorageClass")
        if name and exc.context.status == 400:
            exc.hint = (
                f"the server may have no storage class {name!r} (Ceph RGW knows only the "
                "classes of its placement targets, STANDARD unless configured): run again "
                "without --storage-class, or ask the operator which classes exist"
            )
        raise


async def put_object(
    client: Any, obj: ObjectRef, body: Any, checksum: dict[str, str], extra: dict[str, Any]
) -> dict[str, Any]:
    """One PutObject of `body` (with `extra` parameters such as ContentType, or NO_CLOBBER)."""
    ctx = obj.context("PutObject")
    with naming_the_storage_class(extra), translated(ctx, key_sent=obj.key_sent, writing=True):
        try:
            resp: dict[str, Any] = await client.put_object(
                Body=body, **checksum, **extra, **obj.params()
            )
        except Exception as exc:
            if refused_as_existing(exc, extra):
                raise object_exists(obj, "PutObject") from None
            raise
    check_echo(resp, checksum, ctx)
    return resp


async def upload_part(
    client: Any,
    obj: ObjectRef,
    upload_id: str,
    number: int,
    body: Callable[[], Any],
    checksum: dict[str, str],
    retry: RetryPolicy,
    slot: Callable[[], Any],
) -> dict[str, Any]:
    """UploadPart of a fresh `body()` inside a fresh `slot()` (a request slot), sent again
    (this part only) when the server says the bytes arrived corrupted or the connection broke
    after botocore's own retries, as long as `retry.request_timeout` seconds have not gone
    by without progress (bytes of the body taken that no attempt got through before; time
    waiting for a slot does not count). What neither the server nor the network caused
    propagates unchanged."""
    ctx = obj.context("UploadPart", number)
    attempt = 1
    clock: ProgressClock | None = None
    while True:
        asked = time.monotonic()
        try:
            async with slot():
                if clock is None:
                    clock = ProgressClock()
                else:
                    clock.shift(time.monotonic() - asked)
                with clock.active():
                    resp: dict[str, Any] = await client.upload_part(
                        Body=body(), PartNumber=number, UploadId=upload_id, **checksum,
                        **obj.params(),
                    )  # fmt: skip
            check_echo(resp, checksum, ctx)
            return resp
        except _PART_FAILURES as exc:
            corrupted = isinstance(exc, IntegrityError) or error_code(exc) in CORRUPTION_CODES
            if not (corrupted or isinstance(exc, BODY_ERRORS)):
                raise translate(exc, ctx, key_sent=obj.key_sent, writing=True) from exc
            silent = clock.silent_for() if clock is not None else 0.0
            if timed_out(exc) and silent >= retry.request_timeout:
                raise translate(exc, ctx, key_sent=obj.key_sent, writing=True) from exc
            if attempt >= retry.max_attempts:
                if timed_out(exc):
                    raise translate(exc, ctx, key_sent=obj.key_sent, writing=True) from exc
                raise TransferFailedError(
                    f"the part failed {attempt} times; last: {describe(exc)}",
                    hint="check the network; rerun the upload",
                    context=ctx,
                ) from exc
            say_part_retry(client, exc, f"UploadPart {ctx.url} part {number}", attempt + 1,
                           retry.max_attempts, "sending it again")  # fmt: skip
            await anyio.sleep(retry.delay(attempt))
            attempt += 1


async def abort_quietly(client: Any, obj: ObjectRef, upload_id: str) -> None:
    """Best-effort AbortMultipartUpload; the original error is what the user needs to see."""
    try:
        await client.abort_multipart_upload(Bucket=obj.bucket, Key=obj.key, UploadId=upload_id)
    except Exception as exc:
        log.warning(
            "could not abort multipart upload %s of s3://%s/%s (%s); remove it with "
            "`ssec-transfer cleanup s3://%s/%s`",
            upload_id, obj.bucket, obj.key, type(exc).__name__, obj.bucket, obj.key,
        )  # fmt: skip
