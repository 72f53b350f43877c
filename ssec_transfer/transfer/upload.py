"""Upload one file: a single PutObject when small, else a parallel multipart upload.

One `UploadJob` per file holds everything its requests need (client, source, target object
and its key, options, scheduler, progress), like aws-c-s3's meta-request. Multipart flow: N
workers take the planned parts in order; each reserves its slice buffers in the engine's byte
budget, takes a request slot from the scheduler, and sends UploadPart with the one key pinned
for this object, streaming the part's byte range straight from the file (`FilePartBody`). The
multipart lifecycle (`s3.multipart`) aborts the upload on any failure or cancellation, so
nothing is left on the server and an existing object of the same name stays untouched.
"""

from __future__ import annotations

import base64
import logging
import mimetypes
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from ssec_transfer.core.checksums import ChecksumAlgorithm, ChecksumPolicy, encode
from ssec_transfer.core.crc import combine_parts, crc32c, digest_text
from ssec_transfer.core.errors import (
    LocalIOError,
    ObjectExistsError,
    SSECTransferError,
    UsageError,
    WrongKeyError,
)
from ssec_transfer.core.plan import MAX_SINGLE_PUT, Part, plan_parts, plan_upload
from ssec_transfer.core.results import ProgressCallback, TransferResult
from ssec_transfer.core.retry import RetryPolicy
from ssec_transfer.core.scheduler import Scheduler
from ssec_transfer.core.taskgroups import for_each
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.keys.seal import SourceFacts, sealed_metadata
from ssec_transfer.s3.bodies import FILE_SLICE, FilePartBody, PartBody
from ssec_transfer.s3.errors import error_code, status_of, translate
from ssec_transfer.s3.multipart import MultipartUpload, multipart_upload
from ssec_transfer.s3.requests import (
    NO_CLOBBER,
    ObjectRef,
    checksum_params,
    put_object,
    upload_part,
)
from ssec_transfer.state.journal import Resumable, UploadEntry
from ssec_transfer.transfer.attributes import ObjectAttributes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadOptions:
    concurrency: int
    multipart_threshold: int
    preferred_part_size: int
    part_size: int | None  # explicit --part-size, validated against the S3 limits
    checksum: ChecksumPolicy
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    resumable: Resumable | None = None
    attributes: ObjectAttributes = field(default_factory=ObjectAttributes)
    # Never replace an existing object: If-None-Match: * on PutObject and on
    # CompleteMultipartUpload (the engine HEADs the key before the upload starts, too).
    no_clobber: bool = False


@dataclass(frozen=True, slots=True)
class _Written:
    etag: str | None
    version_id: str | None
    crc: int  # CRC32C of the whole object
    parts: int
    resumed: int = 0  # parts an earlier, interrupted run had already sent


@dataclass(frozen=True, slots=True)
class _ResumePoint:
    """An interrupted upload of this very file, reconciled with the server."""

    upload_id: str
    journal_id: int
    finished: dict[int, tuple[str, str | None, int]]  # number -> ETag, checksum, CRC32C
    parts: list[Part]  # the interrupted upload's plan: its part size wins


def check_source(path: Path) -> os.stat_result:
    """The source's stat, or the usage error that says why it cannot be uploaded."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise UsageError(f"source file {path} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read source file {path}: {exc.strerror}") from None
    if not path.is_file():
        raise UsageError(f"source {path} is not a regular file")
    return st


def _open_source(path: Path) -> tuple[Path, int, os.stat_result]:
    """The source's absolute path (the journal's identity of it), an open descriptor and its
    stat, in one worker-thread call."""
    st = check_source(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise UsageError(f"cannot read source file {path}: {exc.strerror}") from None
    if st.st_size == 0 and os.pread(fd, 1, 0):
        os.close(fd)
        raise UsageError(
            f"source file {path} says it holds 0 bytes but has content (a /proc or /sys "
            "file?); its size cannot be known before reading it",
            hint=f"upload it as a stream: ssec-transfer put - s3://BUCKET/KEY < {path}",
        )
    return path.absolute(), fd, st


def _shrank(path: Path) -> LocalIOError:
    return LocalIOError(
        f"source file {path} shrank while it was being uploaded",
        hint="upload files only once they are complete",
    )


def _check_unchanged(path: Path, before: os.stat_result, *, sent_to: str | None = None) -> None:
    """Refuse a source that changed since `before` (size, mtime or ctime; or gone).

    Checked before the commit point (CompleteMultipartUpload, or sending the one PutObject),
    the old object is still intact. `sent_to` names an object already replaced: then the
    message says what it now holds.
    """
    try:
        after = os.stat(path)
        changed = (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (
            before.st_size, before.st_mtime_ns, before.st_ctime_ns,
        )  # fmt: skip
    except FileNotFoundError:
        changed = True
    if not changed:
        return
    if sent_to is None:
        raise LocalIOError(
            f"source file {path} changed while it was being uploaded; the object was not replaced",
            hint="upload files only once they are complete",
        )
    raise LocalIOError(
        f"source file {path} changed after it was read: {sent_to} now holds the file as it was "
        f"read ({before.st_size} bytes, modified {_when(before)}), not its new content",
        hint="upload it again once it is complete",
    )


def _when(st: os.stat_result) -> str:
    return datetime.fromtimestamp(st.st_mtime, UTC).isoformat(timespec="seconds")


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
    """Upload `source` to s3://bucket/key under `ssec`."""
    started = time.perf_counter()
    source, fd, st = await anyio.to_thread.run_sync(_open_source, source)
    try:
        job = UploadJob(
            client, ObjectRef(bucket, key, ssec), source, fd, st, options, scheduler, progress
        )
        written = await job.run()
    finally:
        os.close(fd)
    return TransferResult(
        operation="upload",
        bucket=bucket,
        key=key,
        path=str(source),
        size=st.st_size,
        etag=written.etag,
        version_id=written.version_id,
        key_fingerprint=ssec.fingerprint,
        parts=written.parts,
        seconds=time.perf_counter() - started,
        checksum=digest_text(written.crc),
        resumed_parts=written.resumed,
    )


@dataclass
class UploadJob:
    """One file to one object: everything its requests need, instead of long parameter lists."""

    client: Any
    target: ObjectRef
    source: Path
    fd: int
    stat: os.stat_result
    options: UploadOptions
    scheduler: Scheduler
    progress: ProgressCallback | None

    @property
    def size(self) -> int:
        return self.stat.st_size

    @property
    def algorithm(self) -> ChecksumAlgorithm | None:
        return self.options.checksum.algorithm

    def object_params(self, crc: int | None) -> dict[str, Any]:
        """Content type, metadata and storage class, with the source's facts sealed in:
        size and mtime always, the CRC32C when the bytes were read before sending."""
        facts = SourceFacts(self.size, self.stat.st_mtime_ns, crc)
        target = self.target
        return self.options.attributes.params(
            default_type=mimetypes.guess_type(self.source.name)[0] or "application/octet-stream",
            sealed=sealed_metadata(facts, target.sse, target.bucket, target.key),
        )

    def put_params(self, crc: int) -> dict[str, Any]:
        """A single PutObject's parameters: `object_params`, and the no-clobber condition."""
        return {**self.object_params(crc), **(NO_CLOBBER if self.options.no_clobber else {})}

    async def run(self) -> _Written:
        options = self.options
        if self.size < options.multipart_threshold and self.size <= MAX_SINGLE_PUT:
            written = await self._put_single()
        else:
            parts = plan_upload(
                self.size, part_size=options.part_size, preferred=options.preferred_part_size
            )
            try:
                written = await self._put_multipart(parts)
            except SSECTransferError:
                # A file that changed explains the failure best.
                await anyio.to_thread.run_sync(_check_unchanged, self.source, self.stat)
                raise
        # After the commit point: the object holds one consistent read of the file (checked
        # before sending), but a change since then must not pass as a verified upload.
        sent_to = f"s3://{self.target.bucket}/{self.target.key}"
        await anyio.to_thread.run_sync(
            partial(_check_unchanged, self.source, self.stat, sent_to=sent_to)
        )
        return written

    # -- one PutObject ---------------------------------------------------------------------

    def _read_whole(self) -> tuple[bytes, dict[str, str], int]:
        """The file's bytes, their checksum header and CRC32C, in one worker thread."""
        data = os.pread(self.fd, self.size, 0)
        if len(data) != self.size:
            raise _shrank(self.source)
        # Unchanged since the first stat: the bytes in hand are one consistent read.
        _check_unchanged(self.source, self.stat)
        algorithm = self.algorithm
        return (
            data,
            checksum_params(algorithm, algorithm.of(data) if algorithm else None),
            crc32c(data),
        )

    async def _put_single(self) -> _Written:
        async with self.scheduler.budget.reserve(self.size):
            data, checksum, crc = await anyio.to_thread.run_sync(self._read_whole)
            async with self.scheduler.request():
                resp = await put_object(
                    self.client, self.target, PartBody(data), checksum, self.put_params(crc)
                )  # fmt: skip
        if self.progress:
            self.progress(self.size, self.size)
        return _Written(resp.get("ETag"), resp.get("VersionId"), crc, 1)

    # -- multipart -------------------------------------------------------------------------

    async def _put_multipart(self, parts: list[Part]) -> _Written:
        resumable = self.options.resumable
        point = await self._resume_point(parts) if resumable is not None else None
        if point is not None:
            parts = point.parts
        finished = point.finished if point else {}
        journal_id = point.journal_id if point else None

        async def forget() -> None:
            if resumable is not None and journal_id is not None:
                await anyio.to_thread.run_sync(resumable.journal.forget_upload, journal_id)

        # The whole file's CRC32C is not sealed: it would cost a second read of the file.
        create_extra = self.object_params(None)
        if self.algorithm:
            create_extra["ChecksumAlgorithm"] = self.algorithm.name
        keep = resumable is not None and resumable.resume
        crcs: dict[int, int] = {}
        try:
            async with multipart_upload(
                self.client, self.scheduler, self.target, create_extra=create_extra,
                upload_id=point.upload_id if point else None, keep_on_failure=keep,
                on_abort=forget,
            ) as upload:  # fmt: skip
                if resumable is not None and journal_id is None:
                    journal_id = await self._journal_start(resumable, upload.upload_id, parts)
                for number, (part_etag, checksum, crc) in finished.items():
                    upload.part_done(number, part_etag, checksum_params(self.algorithm, checksum))
                    crcs[number] = crc
                todo = [part for part in parts if part.number not in finished]
                if self.progress:
                    self.progress(sum(p.length for p in parts if p.number in finished), self.size)
                await self._send_parts(upload, todo, crcs, journal_id)
                # Before Complete, not after: a file rewritten mid-upload must not replace
                # the object with a mix of old and new bytes.
                await anyio.to_thread.run_sync(_check_unchanged, self.source, self.stat)
                etag, version_id = await upload.complete(no_clobber=self.options.no_clobber)
        except BaseException as exc:
            if keep and not isinstance(exc, ObjectExistsError):  # that one is aborted
                log.warning(
                    "upload of s3://%s/%s interrupted; finished parts are kept; run the same "
                    "command with --resume to continue, or `ssec-transfer cleanup s3://%s/%s` "
                    "to abandon it",
                    self.target.bucket, self.target.key, self.target.bucket, self.target.key,
                )  # fmt: skip
            raise
        await forget()
        crc = combine_parts((crcs[part.number], part.length) for part in parts)
        return _Written(etag, version_id, crc, len(parts), len(finished))

    async def _journal_start(self, resumable: Resumable, upload_id: str, parts: list[Part]) -> int:
        assert self.target.sse is not None
        part_size = parts[0].length if len(parts) > 1 else max(parts[0].length, 1)
        entry = UploadEntry(
            0, 0.0, resumable.endpoint, self.target.bucket, self.target.key, upload_id,
            str(self.source), self.size, self.stat.st_mtime_ns, part_size,
            self.target.sse.fingerprint, self.algorithm.name if self.algorithm else None,
        )  # fmt: skip
        journal_id: int = await anyio.to_thread.run_sync(resumable.journal.start_upload, entry)
        return journal_id

    async def _send_parts(
        self,
        upload: MultipartUpload,
        parts: list[Part],
        crcs: dict[int, int],
        journal_id: int | None,
    ) -> None:
        """Send these parts straight from the file, recording each in `upload` and `crcs`.

        Parts are never held in memory whole: each request streams its byte range slice by
        slice (`FilePartBody`), so memory per request in flight is about two slices, whatever
        the part size. With a checksum, the range is read once more beforehand, from the page
        cache.
        """
        resumable = self.options.resumable

        async def send(part: Part) -> None:
            async with self.scheduler.budget.reserve(2 * FILE_SLICE):
                value, crcs[part.number] = await anyio.to_thread.run_sync(self._checksum_of, part)
                checksum = checksum_params(self.algorithm, value)
                resp = await upload_part(
                    self.client, self.target, upload.upload_id, part.number,
                    lambda: FilePartBody(self.fd, part.offset, part.length), checksum,
                    self.options.retry, self.scheduler.request,
                )  # fmt: skip
            upload.part_done(part.number, resp["ETag"], checksum)
            if resumable is not None and journal_id is not None:
                await anyio.to_thread.run_sync(
                    resumable.journal.part_done,
                    journal_id, part.number, resp["ETag"], value, crcs[part.number],
                )  # fmt: skip
            if self.progress:
                self.progress(part.length, self.size)

        await for_each(parts, send, self.options.concurrency)

    def _checksum_of(self, part: Part) -> tuple[str | None, int]:
        """The header checksum (if any) and the CRC32C of one part, in one pass over it."""
        algorithm = self.algorithm
        hasher = algorithm.hasher() if algorithm and algorithm.name != "CRC32C" else None
        crc = 0
        position, end = part.offset, part.end
        while position < end:
            data = os.pread(self.fd, min(FILE_SLICE, end - position), position)
            if not data:
                raise _shrank(self.source)
            crc = crc32c(data, crc)
            if hasher:
                hasher.update(data)
            position += len(data)
        if algorithm is None:
            return None, crc
        if hasher is None:  # the chosen algorithm is CRC32C itself
            return base64.b64encode(crc.to_bytes(4, "big")).decode("ascii"), crc
        return encode(hasher), crc

    # -- resume ----------------------------------------------------------------------------

    async def _resume_point(self, parts: list[Part]) -> _ResumePoint | None:
        """Find an interrupted upload of this very file and reconcile it with the server.

        Only parts the server holds and the journal vouches for count as finished. Nothing
        is sent before the key is checked against the journal's fingerprint.
        """
        resumable = self.options.resumable
        assert resumable is not None
        assert self.target.sse is not None
        bucket, key = self.target.bucket, self.target.key
        entry = await anyio.to_thread.run_sync(
            resumable.journal.find_upload,
            resumable.endpoint, bucket, key, str(self.source), self.size, self.stat.st_mtime_ns,
        )  # fmt: skip
        if entry is None:
            return None
        if not resumable.resume:
            log.warning(
                "an interrupted upload of %s to s3://%s/%s exists (UploadId %s); this run "
                "starts a new one; use --resume to continue it, or `ssec-transfer cleanup` to "
                "remove it",
                self.source, bucket, key, entry.upload_id,
            )  # fmt: skip
            return None
        if entry.key_fingerprint != self.target.sse.fingerprint:
            raise WrongKeyError(
                f"the interrupted upload was encrypted with key {entry.key_fingerprint}; "
                "resuming needs the same key (one object, one key)",
                hint="pass the key file used for the first run, or start over without --resume",
                context=self.target.context("resume"),
            )
        parts = plan_parts(self.size, entry.part_size)
        server = await self._parts_on_server(entry.upload_id)
        if server is None:
            log.warning("the interrupted upload %s is gone from the server; starting over",
                        entry.upload_id)  # fmt: skip
            await anyio.to_thread.run_sync(resumable.journal.forget_upload, entry.id)
            return None
        journaled = await anyio.to_thread.run_sync(resumable.journal.upload_parts, entry.id)
        sizes = {part.number: part.length for part in parts}
        finished = {
            number: record
            for number, record in journaled.items()
            if number in server
            and server[number][0].strip('"') == record[0].strip('"')
            and server[number][1] == sizes.get(number)
        }
        unchanged = await anyio.to_thread.run_sync(self._unchanged_parts, parts, finished)
        if len(unchanged) < len(finished):
            log.warning(
                "%s: %d of the parts sent before hold other bytes now; sending them again",
                self.source, len(finished) - len(unchanged),
            )  # fmt: skip
        log.info("resuming upload %s: %d of %d parts already on the server",
                 entry.upload_id, len(unchanged), len(parts))  # fmt: skip
        return _ResumePoint(entry.upload_id, entry.id, unchanged, parts)

    def _unchanged_parts(
        self, parts: list[Part], finished: dict[int, tuple[str, str | None, int]]
    ) -> dict[int, tuple[str, str | None, int]]:
        """The finished parts whose bytes in the file still have the CRC32C the journal
        recorded when they were sent. Size and mtime alone do not prove it: `cp -p`, `rsync
        -t` or `tar x` give other bytes the same ones, and a resumed object would mix two
        files. Reading the sent parts once more costs a disk read, not a network transfer."""
        by_number = {part.number: part for part in parts}
        unchanged = {}
        for number, record in finished.items():
            part, crc, offset = by_number[number], 0, by_number[number].offset
            end = part.offset + part.length
            while offset < end:
                data = os.pread(self.fd, min(FILE_SLICE * 8, end - offset), offset)
                if not data:
                    break
                crc = crc32c(data, crc)
                offset += len(data)
            if offset == end and crc == record[2]:
                unchanged[number] = record
        return unchanged

    async def _parts_on_server(self, upload_id: str) -> dict[int, tuple[str, int]] | None:
        """ListParts: number -> (ETag, size); None when the upload is gone."""
        server: dict[int, tuple[str, int]] = {}
        try:
            paginator = self.client.get_paginator("list_parts")
            async for page in paginator.paginate(UploadId=upload_id, **self.target.params()):
                for p in page.get("Parts", []):
                    server[int(p["PartNumber"])] = (str(p["ETag"]), int(p["Size"]))
        except Exception as exc:
            if error_code(exc) == "NoSuchUpload" or status_of(exc) == 404:
                return None
            raise translate(exc, self.target.context("ListParts"), key_sent=True) from exc
        return server
