"""Download one object: a whole-object GET first, then ranged GETs in parallel if it is large.

The first GET (`download_small`) asks for the whole object with its stored checksum: its answer
says what a HEAD would (size, ETag, version, key MD5, checksum), and for an object up to the
multipart threshold its body is the download. A larger object's first answer is closed unread
and the object is fetched in ranges (`download_file`); a HEAD is sent only when no GET came
first. One `DownloadJob` per object holds what its requests need. Every ranged GET is pinned to
the object first seen (If-Match on its ETag, and its VersionId), so an object replaced mid-download
fails cleanly instead of mixing two versions; a body that breaks midway is fetched again from
the byte where it broke (`s3.requests.get_range`). Parts are written positionally
(`os.pwritev`), so no reorder buffer is needed. The temporary file lives beside DEST and is
renamed over it only after every byte arrived and was fsynced; on any failure it is removed and
DEST is left exactly as it was (`transfer.destination` decides what DEST may be).
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import anyio

from ssec_transfer.core.crc import combine_parts, crc32c, digest_text
from ssec_transfer.core.errors import (
    ErrorContext,
    IntegrityError,
    LocalIOError,
    SSECTransferError,
)
from ssec_transfer.core.plan import Part, plan_parts
from ssec_transfer.core.results import ObjectInfo, ProgressCallback, TransferResult
from ssec_transfer.core.retry import RetryPolicy
from ssec_transfer.core.scheduler import Scheduler
from ssec_transfer.core.taskgroups import for_each
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.errors import BODY_ERRORS
from ssec_transfer.s3.requests import (
    ObjectRef,
    RangeRead,
    get_object,
    get_range,
    head_object,
    object_info,
    pinned_get,
)
from ssec_transfer.s3.timeouts import say_part_retry
from ssec_transfer.state.journal import DownloadEntry, Resumable
from ssec_transfer.transfer.destination import Destination, TempFile

log = logging.getLogger(__name__)
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


def plan_reads(size: int, options: DownloadOptions) -> list[Part]:
    """One GET up to the threshold, else ranges of the configured size."""
    if size <= options.multipart_threshold:
        return [Part(1, 0, size)]
    return plan_parts(size, options.part_size)


def stored_digest(head: dict[str, Any]) -> str | None:
    """The server's full-object CRC32C, where it keeps one (composite `-N` values of
    multipart uploads are checksums of part checksums, not comparable)."""
    value = head.get("ChecksumCRC32C")
    if not value or "-" in value or head.get("ChecksumType") == "COMPOSITE":
        return None
    return f"crc32c:{value}"


@dataclass(frozen=True)
class Sighted:
    """What a whole-object GET said of an object too large to take in one piece: all a HEAD
    would have, so the ranged download needs none."""

    info: ObjectInfo
    stored_digest: str | None  # the server's full-object checksum, where it keeps one


async def download_file(
    client: Any,
    bucket: str,
    key: str,
    dest: Destination,
    *,
    ssec: SSECustomerKey | None,
    version_id: str | None,
    options: DownloadOptions,
    scheduler: Scheduler,
    progress: ProgressCallback | None = None,
    sighted: Sighted | None = None,
) -> TransferResult:
    """Download s3://bucket/key (that version, if given) to the regular file `dest` in ranges,
    pinned to the object `sighted` saw (without it, a HEAD looks first)."""
    started = time.perf_counter()
    if sighted is None:
        async with scheduler.request():
            info, head = await head_object(
                client, ObjectRef(bucket, key, ssec), version_id=version_id, checksums=True
            )
        sighted = Sighted(info, stored_digest(head))
    info = sighted.info
    job = DownloadJob(
        client, info, ssec, dest, plan_reads(info.size, options), options, scheduler, progress,
        expected=sighted.stored_digest or options.expected_digest(info),
    )  # fmt: skip
    crc, resumed = await job.run()
    return download_result(
        info, ssec, str(job.dest.path), parts=len(job.parts), started=started,
        checksum=digest_text(crc), resumed_parts=resumed,
    )  # fmt: skip


async def download_small(
    client: Any,
    bucket: str,
    key: str,
    dest: Destination,
    *,
    ssec: SSECustomerKey | None,
    version_id: str | None,
    size_hint: int | None,
    options: DownloadOptions,
    scheduler: Scheduler,
    progress: ProgressCallback | None = None,
) -> TransferResult | Sighted:
    """One GET, no HEAD: the answer's headers say what the HEAD would have (size, ETag,
    version, key MD5, stored checksum) and, for an object up to the multipart threshold, its
    body is the object. The file is written, fsynced and renamed in one worker-thread call.
    `size_hint` is the size a listing gave, if one did (memory is reserved for it).

    Sighted when the object is larger than the threshold (or than the listing said), its
    body then closed unread, or when its body broke: the caller fetches it in pinned ranges,
    which resume a broken body from where it broke.
    """
    started = time.perf_counter()
    obj = ObjectRef(bucket, key, ssec)
    ctx = obj.context("GetObject")
    params = {**obj.params(), "ChecksumMode": "ENABLED"}
    if version_id:
        params["VersionId"] = version_id
    limit = options.multipart_threshold if size_hint is None else size_hint
    async with scheduler.budget.reserve(max(limit, 1)), scheduler.request():
        answer = await get_object(client, params, ctx, key_sent=ssec is not None)
        async with answer["Body"] as body:
            info = object_info(obj, answer, ctx)
            if info.size > max(limit, 0) or info.size > options.multipart_threshold:
                return Sighted(info, stored_digest(answer))  # too large to hold whole
            try:
                data = await body.read()
            except BODY_ERRORS as exc:
                data = b""
                say_part_retry(client, exc, f"GetObject {ctx.url}", 2,
                               options.retry.max_attempts, "fetching it again")  # fmt: skip
    if len(data) != info.size:  # a broken body: the ranged path resumes where it breaks
        return Sighted(info, stored_digest(answer))
    crc = crc32c(data)
    expected = stored_digest(answer) or options.expected_digest(info)
    if expected is not None and digest_text(crc) != expected:
        raise IntegrityError(
            f"the data received has CRC32C {digest_text(crc)}, but the object's is {expected}: "
            "bytes were corrupted in transit",
            hint="rerun the download; nothing was written to DEST",
            context=ctx,
        )
    try:
        await anyio.to_thread.run_sync(_write_whole, dest, data, info.source_mtime_ns)
    except OSError as exc:
        raise _write_error(exc, dest.path) from None
    if progress:
        progress(info.size, info.size)
    return download_result(
        info, ssec, str(dest.path), parts=1, started=started, checksum=digest_text(crc)
    )


def _write_whole(dest: Destination, data: bytes, mtime_ns: int | None) -> None:
    """Temporary file, write, fsync, rename: a small download's whole life on disk, in one
    thread hop; on any failure the temporary file is removed and DEST left as it was."""
    temp = TempFile(dest, size=len(data))
    try:
        temp.write_at([data], 0)
        temp.commit(mtime_ns)
    except BaseException:
        temp.discard()
        raise


def download_result(
    info: ObjectInfo,
    ssec: SSECustomerKey | None,
    path: str,
    *,
    parts: int,
    started: float,
    checksum: str | None = None,
    resumed_parts: int = 0,
) -> TransferResult:
    """What a finished download of the object `info` describes reports (to a file or a stream)."""
    return TransferResult(
        operation="download",
        bucket=info.bucket,
        key=info.key,
        path=path,
        size=info.size,
        etag=info.etag,
        version_id=info.version_id,
        key_fingerprint=ssec.fingerprint if ssec else None,
        parts=parts,
        seconds=time.perf_counter() - started,
        checksum=checksum,
        resumed_parts=resumed_parts,
    )


@dataclass
class DownloadJob:
    """One object version to one file: everything its requests need."""

    client: Any
    info: ObjectInfo
    sse: SSECustomerKey | None
    dest: Destination
    parts: list[Part]
    options: DownloadOptions
    scheduler: Scheduler
    progress: ProgressCallback | None
    expected: str | None = None  # the whole object's digest, where one is known
    journal_id: int | None = None

    @property
    def resumable(self) -> Resumable | None:
        """Downloads journal their ranges only when asked to be resumable, and only ranged."""
        resumable = self.options.resumable
        if resumable is None or not resumable.resume or len(self.parts) < 2:
            return None
        return resumable

    async def run(self) -> tuple[int, int]:
        """Fetch into a temporary file and rename it over the target; returns the object's
        CRC32C and how many ranges an interrupted run had already fetched."""
        finished, reuse = await self._resume_point()
        # Shielded: a temporary file (and its journal row) created must be known, to be removed.
        with anyio.CancelScope(shield=True):
            temp = await anyio.to_thread.run_sync(TempFile, self.dest, reuse, self.info.size)
            if not temp.reused:
                finished = {}
                await self._journal_start(temp)
        try:
            await anyio.lowlevel.checkpoint()  # a cancellation held back by the shield lands here
            crc = await self._fetch(temp, finished)
            if self.expected is not None and digest_text(crc) != self.expected:
                raise IntegrityError(
                    f"the data received has CRC32C {digest_text(crc)}, but the object's is "
                    f"{self.expected}: bytes were corrupted in transit",
                    hint="rerun the download; nothing was written to DEST",
                    context=ErrorContext("GetObject", self.info.bucket, self.info.key),
                )
            await anyio.to_thread.run_sync(temp.commit, self.info.source_mtime_ns)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._keep_or_discard(temp)
            raise
        await self._journal_forget()
        return crc, len(finished)

    async def _resume_point(self) -> tuple[dict[int, int], Path | None]:
        """Ranges an interrupted download of this very object already fetched, and its file."""
        resumable = self.resumable
        if resumable is None:
            return {}, None
        info = self.info
        absolute = await anyio.to_thread.run_sync(self.dest.path.absolute)
        self.dest = replace(self.dest, path=absolute)
        entry = await anyio.to_thread.run_sync(
            resumable.journal.find_download,
            resumable.endpoint, info.bucket, info.key, str(self.dest.path),
        )  # fmt: skip
        if entry is None or (entry.etag, entry.size, entry.part_size, entry.version_id) != (
            info.etag, info.size, self.options.part_size, info.version_id,
        ):  # fmt: skip
            return {}, None
        self.journal_id = entry.id
        finished = await anyio.to_thread.run_sync(resumable.journal.download_parts, entry.id)
        return finished, Path(entry.temp)

    async def _journal_start(self, temp: TempFile) -> None:
        resumable, info = self.resumable, self.info
        if resumable is None:
            return
        entry = DownloadEntry(
            0, 0.0, resumable.endpoint, info.bucket, info.key, info.version_id, info.etag,
            info.size, self.options.part_size, str(self.dest.path), str(temp.path),
            self.sse.fingerprint if self.sse else None,
        )  # fmt: skip
        self.journal_id = await anyio.to_thread.run_sync(resumable.journal.start_download, entry)

    async def _journal_forget(self) -> None:
        if self.resumable is not None and self.journal_id is not None:
            await anyio.to_thread.run_sync(self.resumable.journal.forget_download, self.journal_id)

    async def _keep_or_discard(self, temp: TempFile) -> None:
        """After a failure: keep the finished ranges for --resume, else remove every trace."""
        if self.resumable is not None and self.journal_id is not None:
            await anyio.to_thread.run_sync(temp.close)
            log.warning(
                "download of s3://%s/%s interrupted; finished ranges are kept in %s; run the "
                "same command with --resume to continue",
                self.info.bucket, self.info.key, temp.path,
            )  # fmt: skip
            return
        await anyio.to_thread.run_sync(temp.discard)
        await self._journal_forget()

    async def _fetch(self, temp: TempFile, finished: dict[int, int]) -> int:
        """Fetch every range not yet `finished` (number -> CRC32C) into the file; return the
        CRC32C of the whole object."""
        parts, total = self.parts, self.info.size
        crcs: dict[int, int] = dict(finished)
        if self.progress:
            self.progress(sum(p.length for p in parts if p.number in finished), total)
        read = RangeRead(
            pinned_get(self.info, self.sse), key_sent=self.sse is not None,
            ranged=len(parts) > 1, chunk_size=WRITE_CHUNK, retry=self.options.retry,
            hint="rerun the download (nothing partial was kept)",
        )  # fmt: skip
        resumable = self.resumable

        async def fetch(part: Part) -> None:
            async def write(pieces: list[bytes], at: int) -> None:
                try:
                    await anyio.to_thread.run_sync(temp.write_at, pieces, part.offset + at)
                except OSError as exc:
                    raise _write_error(exc, temp.dest) from None
                if self.progress:
                    self.progress(sum(map(len, pieces)), total)

            async with (
                self.scheduler.budget.reserve(min(part.length, WRITE_CHUNK)),
                self.scheduler.request(),
            ):
                crcs[part.number] = await get_range(read, self.client, part, write)
            if resumable is not None and self.journal_id is not None:
                await anyio.to_thread.run_sync(
                    resumable.journal.range_done, self.journal_id, part.number, crcs[part.number]
                )

        todo = [part for part in parts if part.number not in finished]
        await for_each(todo, fetch, self.options.concurrency)
        return combine_parts((crcs[part.number], part.length) for part in parts)


def _write_error(exc: OSError, dest: Path) -> SSECTransferError:
    if exc.errno == errno.ENOSPC:
        return LocalIOError(
            f"disk full while writing {dest}",
            hint="free some space or choose another destination; nothing partial was kept",
        )
    return LocalIOError(f"cannot write {dest}: {exc.strerror}")
