"""Download one object: HEAD with the key, then ranged GETs in parallel into a temporary file.

Every GET is pinned to the object seen by the HEAD (If-Match on its ETag, and its VersionId),
so an object replaced mid-download fails cleanly instead of mixing two versions. Parts are
written positionally (`os.pwrite`), so no reorder buffer is needed. The temporary file lives
beside DEST and is renamed over it only after every byte arrived and was fsynced; on any
failure it is removed and DEST is left exactly as it was.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream

from ssec_transfer.core.crc import combine_parts, crc32c, digest_text
from ssec_transfer.core.errors import (
    ErrorContext,
    IntegrityError,
    LocalIOError,
    NoSuchBucketError,
    NoSuchVersionError,
    SSECTransferError,
    TransferFailedError,
    UnexpectedKeyError,
    UsageError,
)
from ssec_transfer.core.plan import Part, plan_parts
from ssec_transfer.core.results import ObjectInfo, TransferResult
from ssec_transfer.core.retry import BODY_ERRORS, RetryPolicy, describe
from ssec_transfer.core.scheduler import Scheduler
from ssec_transfer.core.taskgroups import task_group
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.errors import diagnose_key_failure, status_of, translate
from ssec_transfer.s3.sse import sse_params
from ssec_transfer.state.journal import DownloadEntry, Resumable

log = logging.getLogger(__name__)
ProgressCallback = Callable[[int, int], None]  # (bytes just done, total bytes)
# Bytes of a response body held in memory per request before they are written to disk.
WRITE_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class DownloadOptions:
    concurrency: int
    part_size: int  # size of each ranged GET
    multipart_threshold: int  # objects up to this size are fetched with one GET
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    resumable: Resumable | None = None
    # The digest this object should have, when something recorded one (the ledger, for
    # objects this machine wrote); the download is refused if the bytes differ.
    expected_digest: Callable[[ObjectInfo], str | None] = lambda info: None


def first_fingerprint(value: str | None) -> str | None:
    """SeaweedFS repeats the key-MD5 header (`x, x`); take the value once."""
    if not value:
        return None
    return value.split(",")[0].strip() or None


async def head_object(
    client: Any,
    bucket: str,
    key: str,
    *,
    ssec: SSECustomerKey | None,
    version_id: str | None,
    checksums: bool = False,
) -> tuple[ObjectInfo, dict[str, Any]]:
    """HeadObject with the key; `checksums=True` also asks for the stored checksum."""
    ctx = ErrorContext("HeadObject", bucket, key)
    params: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if checksums:
        params["ChecksumMode"] = "ENABLED"
    if version_id:
        params["VersionId"] = version_id
    if ssec:
        params.update(sse_params(ssec))
    try:
        head = await client.head_object(**params)
    except Exception as exc:
        if status_of(exc) in (400, 403):
            diagnosed = await diagnose_key_failure(
                client, ctx, key_sent=ssec is not None, version_id=version_id
            )
            if diagnosed:
                raise diagnosed from None
        if status_of(exc) == 404 and not await _bucket_exists(client, bucket):
            raise NoSuchBucketError(
                f"bucket {bucket!r} does not exist",
                hint="check the bucket name and the endpoint",
                context=ctx,
            ) from None
        if status_of(exc) == 404 and version_id:
            raise NoSuchVersionError(
                f"no version {version_id} of this object exists",
                hint="list versions to find the right one",
                context=ctx,
            ) from None
        raise translate(exc, ctx, key_sent=ssec is not None) from exc
    algorithm = head.get("SSECustomerAlgorithm")
    if ssec and not algorithm:
        raise UnexpectedKeyError(
            "a key was given but the object is not SSE-C encrypted",
            hint="read it without --key-file",
            context=ctx,
        )
    modified = head.get("LastModified")
    info = ObjectInfo(
        bucket=bucket,
        key=key,
        size=int(head["ContentLength"]),
        etag=head.get("ETag"),
        version_id=head.get("VersionId"),
        last_modified=modified.isoformat() if modified else None,
        content_type=head.get("ContentType"),
        sse_customer_algorithm=algorithm,
        key_fingerprint=first_fingerprint(head.get("SSECustomerKeyMD5")),
    )
    return info, head


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
                client, ctx, key_sent=key_sent, version_id=params.get("VersionId")
            )
            if diagnosed:
                raise diagnosed from None
        raise translate(exc, ctx, key_sent=key_sent) from exc
    return resp


def pinned_get(info: ObjectInfo, ssec: SSECustomerKey | None) -> dict[str, Any]:
    """GetObject parameters that read exactly the object version a HEAD saw, or fail (412)."""
    pin: dict[str, Any] = {"Bucket": info.bucket, "Key": info.key}
    if info.version_id and info.version_id != "null":
        pin["VersionId"] = info.version_id
    if info.etag:
        pin["IfMatch"] = info.etag
    if ssec:
        pin.update(sse_params(ssec))
    return pin


def plan_reads(size: int, options: DownloadOptions) -> list[Part]:
    """One GET up to the threshold, else ranges of the configured size."""
    if size <= options.multipart_threshold:
        return [Part(1, 0, size)]
    return plan_parts(size, options.part_size)


def _stored_digest(head: dict[str, Any]) -> str | None:
    """The server's full-object CRC32C, where it keeps one (composite `-N` values of
    multipart uploads are checksums of part checksums, not comparable)."""
    value = head.get("ChecksumCRC32C")
    if not value or "-" in value or head.get("ChecksumType") == "COMPOSITE":
        return None
    return f"crc32c:{value}"


def resolve_destination(dest: Path, key: str) -> Path:
    """Like `aws s3 cp`: an existing directory receives the object under its base name."""
    if dest.is_dir():
        name = key.rstrip("/").rsplit("/", 1)[-1]
        if not name:
            raise UsageError(f"cannot derive a file name from object key {key!r}")
        return dest / name
    if str(dest).endswith(os.sep):
        raise UsageError(f"destination directory {dest} does not exist")
    return dest


def _default_file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


class _TempFile:
    """A file beside DEST that becomes DEST only by an atomic rename."""

    def __init__(self, dest: Path, reuse: Path | None = None) -> None:
        """A new temporary file, or `reuse` (an interrupted download's) when it still exists."""
        self.dest = dest
        parent = dest.parent if str(dest.parent) else Path(".")
        if not parent.is_dir():
            raise UsageError(f"destination folder {parent} does not exist")
        self.reused = False
        if reuse is not None:
            try:
                self.fd = os.open(reuse, os.O_WRONLY)
            except OSError:
                pass
            else:
                self.path, self.reused = reuse, True
                return
        self.path = parent / f".{dest.name}.ssec-transfer-{os.getpid()}-{time.monotonic_ns()}"
        try:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise LocalIOError(
                f"cannot create a file in {parent}: {exc.strerror}",
                hint="check that the destination folder is writable",
            ) from None

    def allocate(self, size: int) -> None:
        if size <= 0:
            return
        try:
            os.posix_fallocate(self.fd, 0, size)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise LocalIOError(
                    f"not enough free space for {size} bytes in {self.path.parent}",
                    hint="free some space or choose another destination",
                ) from None
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            os.ftruncate(self.fd, size)

    def write_at(self, data: bytes, offset: int) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self.fd, view, offset)
            view, offset = view[written:], offset + written

    def commit(self) -> None:
        os.fsync(self.fd)
        os.fchmod(self.fd, _default_file_mode())
        os.close(self.fd)
        self.fd = -1
        os.replace(self.path, self.dest)
        dir_fd = os.open(self.dest.parent if str(self.dest.parent) else ".", os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def close(self) -> None:
        """Keep the file (for a later --resume) but release it."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def discard(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


async def download_file(
    client: Any,
    bucket: str,
    key: str,
    dest: Path,
    *,
    ssec: SSECustomerKey | None,
    version_id: str | None,
    options: DownloadOptions,
    scheduler: Scheduler,
    progress: ProgressCallback | None = None,
) -> TransferResult:
    started = time.perf_counter()
    target = resolve_destination(dest, key)
    async with scheduler.request():
        info, head = await head_object(
            client, bucket, key, ssec=ssec, version_id=version_id, checksums=True
        )
    expected = _stored_digest(head) or options.expected_digest(info)
    pin = pinned_get(info, ssec)
    parts = plan_reads(info.size, options)

    resumable = options.resumable
    journal_id: int | None = None
    finished: dict[int, int] = {}
    reuse: Path | None = None
    if resumable is not None and not resumable.resume:
        resumable = None  # downloads journal their ranges only when asked to be resumable
    if resumable is not None and len(parts) > 1:
        target = await anyio.to_thread.run_sync(target.absolute)
        entry = await anyio.to_thread.run_sync(
            resumable.journal.find_download, resumable.endpoint, bucket, key, str(target)
        )
        same_object = (
            entry is not None
            and (entry.etag, entry.size, entry.part_size)
            == (info.etag, info.size, options.part_size)
            and entry.version_id == info.version_id
        )
        if entry is not None and resumable.resume and same_object:
            reuse = Path(entry.temp)
            journal_id = entry.id
            finished = await anyio.to_thread.run_sync(resumable.journal.download_parts, entry.id)
    # Shielded: a temporary file (and its journal row) created must be known, to be removed.
    with anyio.CancelScope(shield=True):
        temp = await anyio.to_thread.run_sync(_TempFile, target, reuse)
        if resumable is not None and len(parts) > 1 and not temp.reused:
            finished = {}
            journal_id = await anyio.to_thread.run_sync(
                resumable.journal.start_download,
                DownloadEntry(
                    0, 0.0, resumable.endpoint, bucket, key, info.version_id, info.etag,
                    info.size, options.part_size, str(target), str(temp.path),
                    ssec.fingerprint if ssec else None,
                ),
            )  # fmt: skip

    async def on_range_done(number: int, crc: int) -> None:
        if resumable is not None and journal_id is not None:
            await anyio.to_thread.run_sync(resumable.journal.range_done, journal_id, number, crc)

    try:
        await anyio.lowlevel.checkpoint()  # a cancellation held back by the shield lands here
        if not temp.reused:
            await anyio.to_thread.run_sync(temp.allocate, info.size)
        crc = await _fetch_parts(
            client,
            temp,
            parts,
            pin,
            ssec,
            ranged=len(parts) > 1,
            options=options,
            scheduler=scheduler,
            progress=progress,
            finished=finished,
            on_range_done=on_range_done,
        )
        if expected is not None and digest_text(crc) != expected:
            raise IntegrityError(
                f"the data received has CRC32C {digest_text(crc)}, but the object's is "
                f"{expected}: bytes were corrupted in transit",
                hint="rerun the download; nothing was written to DEST",
                context=ErrorContext("GetObject", bucket, key),
            )
        await anyio.to_thread.run_sync(temp.commit)
    except BaseException:
        with anyio.CancelScope(shield=True):
            if resumable is not None and resumable.resume and journal_id is not None:
                await anyio.to_thread.run_sync(temp.close)
                log.warning(
                    "download of s3://%s/%s interrupted; finished ranges are kept in %s; run "
                    "the same command with --resume to continue",
                    bucket, key, temp.path,
                )  # fmt: skip
            else:
                await anyio.to_thread.run_sync(temp.discard)
                if resumable is not None and journal_id is not None:
                    await anyio.to_thread.run_sync(resumable.journal.forget_download, journal_id)
        raise
    if resumable is not None and journal_id is not None:
        await anyio.to_thread.run_sync(resumable.journal.forget_download, journal_id)
    return TransferResult(
        operation="download",
        bucket=bucket,
        key=key,
        path=str(target),
        size=info.size,
        etag=info.etag,
        version_id=info.version_id,
        key_fingerprint=ssec.fingerprint if ssec else None,
        parts=len(parts),
        seconds=time.perf_counter() - started,
        checksum=digest_text(crc),
        resumed_parts=len(finished),
    )


async def _fetch_parts(
    client: Any,
    temp: _TempFile,
    parts: list[Part],
    pin: dict[str, Any],
    ssec: SSECustomerKey | None,
    *,
    ranged: bool,
    options: DownloadOptions,
    scheduler: Scheduler,
    progress: ProgressCallback | None,
    finished: dict[int, int],
    on_range_done: Callable[[int, int], Awaitable[None]],
) -> int:
    """Fetch every range not yet `finished` (number -> CRC32C) into the file; return the
    CRC32C of the whole object."""
    crcs: dict[int, int] = dict(finished)
    total = parts[-1].end
    if progress:
        progress(sum(p.length for p in parts if p.number in finished), total)
    parts_left = [part for part in parts if part.number not in finished]
    workers = max(1, min(options.concurrency, len(parts_left)))
    send, receive = anyio.create_memory_object_stream[Part](max_buffer_size=len(parts_left))
    with send:
        for part in parts_left:
            send.send_nowait(part)

    async def fetch(receive: ObjectReceiveStream[Part]) -> None:
        async with receive:
            async for part in receive:
                async with (
                    scheduler.budget.reserve(min(part.length, WRITE_CHUNK)),
                    scheduler.request(),
                ):
                    crcs[part.number] = await _fetch_range(
                        client, temp, part, pin, ssec,
                        ranged=ranged, total=total, progress=progress, retry=options.retry,
                    )  # fmt: skip
                await on_range_done(part.number, crcs[part.number])

    async with task_group() as tg:
        for _ in range(workers):
            tg.start_soon(fetch, receive.clone())
        receive.close()
    return combine_parts((crcs[part.number], part.length) for part in parts)


def _write_error(exc: OSError, dest: Path) -> SSECTransferError:
    if exc.errno == errno.ENOSPC:
        return LocalIOError(
            f"disk full while writing {dest}",
            hint="free some space or choose another destination; nothing partial was kept",
        )
    return LocalIOError(f"cannot write {dest}: {exc.strerror}")


class _BrokenBody(Exception):
    """The body ended before the range did; the rest of the range is fetched again."""


RETRIED_BODY_ERRORS: tuple[type[BaseException], ...] = (_BrokenBody, *BODY_ERRORS)


async def _fetch_range(
    client: Any,
    temp: _TempFile,
    part: Part,
    pin: dict[str, Any],
    ssec: SSECustomerKey | None,
    *,
    ranged: bool,
    total: int,
    progress: ProgressCallback | None,
    retry: RetryPolicy,
) -> int:
    """GET one range and stream it to its place in the file, WRITE_CHUNK bytes at a time;
    return the range's CRC32C. A body that breaks midway is fetched again from where it broke
    (bytes already written are kept), up to `retry.max_attempts` times."""
    ctx = ErrorContext("GetObject", pin["Bucket"], pin["Key"], part.number if ranged else None)
    received = 0
    crc = 0
    attempt = 1
    while True:
        params = dict(pin)
        if part.length > 0 and (ranged or received):
            params["Range"] = f"bytes={part.offset + received}-{part.end - 1}"
        resp = await get_object(client, params, ctx, key_sent=ssec is not None)
        try:
            async with resp["Body"] as body:
                while received < part.length:
                    want = min(WRITE_CHUNK, part.length - received)
                    chunk = await _read_exactly(body, want)
                    if len(chunk) != want:
                        raise _BrokenBody(
                            f"the body ended after {received + len(chunk)} of {part.length} bytes"
                        )
                    try:
                        await anyio.to_thread.run_sync(temp.write_at, chunk, part.offset + received)
                    except OSError as exc:
                        raise _write_error(exc, temp.dest) from None
                    crc = crc32c(chunk, crc)
                    received += want
                    if progress:
                        progress(want, total)
                if await body.read(1):
                    raise IntegrityError(
                        f"the server sent more than the {part.length} bytes asked for",
                        hint="rerun the download; nothing partial was kept",
                        context=ctx,
                    )
            return crc
        except RETRIED_BODY_ERRORS as exc:
            if attempt >= retry.max_attempts:
                raise TransferFailedError(
                    f"the response body broke {attempt} times; last: {describe(exc)}",
                    hint="check the network; rerun the download (nothing partial was kept)",
                    context=ctx,
                ) from exc
            log.info("%s: body broke (%s); fetching the rest again", ctx.url, describe(exc))
            await anyio.sleep(retry.delay(attempt))
            attempt += 1


async def _read_exactly(body: Any, size: int) -> bytes:
    """Up to `size` bytes; fewer only if the body ends first."""
    pieces: list[bytes] = []
    have = 0
    while have < size:
        piece: bytes = await body.read(size - have)
        if not piece:
            break
        pieces.append(piece)
        have += len(piece)
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)
