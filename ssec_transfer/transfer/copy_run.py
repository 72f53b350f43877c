"""One copy, end to end: try the paths in order, verify what each wrote, learn from failures.

A refusal (400/501) moves on to the next path; so does a server-side result that fails
verification, once it is removed (unless it replaced the only copy of the source: then the
user must know). Both are remembered per endpoint and shape (`copy_plan.learn`).

The source's CRC32C is read once: from the bytes passing through on the stream path, else by a
separate read, before the copy when copying onto the same object (its old bytes are gone after).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import anyio

from ssec_transfer.core.crc import digest_text
from ssec_transfer.core.errors import IntegrityError, SSECTransferError, TransferFailedError
from ssec_transfer.core.results import ObjectInfo, TransferResult
from ssec_transfer.transfer.copy_job import CopyJob, Written
from ssec_transfer.transfer.copy_paths import Refused, write
from ssec_transfer.transfer.copy_plan import Method, Via, candidates, is_bad_result, learn
from ssec_transfer.transfer.copy_verify import delete_written, digest, verify

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CopyResult(TransferResult):
    """A TransferResult (so the ledger records it) plus where the bytes came from and how.

    `bucket`/`key`/`version_id`/`etag`/`key_fingerprint` describe the new object, `path` is
    the source URL, `checksum` the CRC32C both sides were verified to share.
    """

    via: str = "stream"  # server-copy, server-part-copy or stream
    source_bucket: str = ""
    source_key: str = ""
    source_version_id: str | None = None
    source_etag: str | None = None
    source_key_fingerprint: str | None = None
    verified: bool = False  # read back with the target key; digest equal to the source's
    old_key_refused: bool | None = None  # rotate: the old key no longer opens the object
    deleted_version_id: str | None = None  # rotate --delete-old-versions: the removed version
    attempts: tuple[str, ...] = ()  # paths tried before `via`, with the server's answer


async def run_copy(job: CopyJob, *, via: Via, operation: str) -> CopyResult:
    """Write the target by the first path that works and verifies; see the module doc."""
    started = time.perf_counter()
    methods, skipped = candidates(via, job.size, job.options, job.shape, job.caps)
    run = _Run(job, via, skipped)
    for method in methods:
        written = await run.write(method)
        if written is None:
            continue
        new = await run.verify(method, written)
        if new is not None:
            return run.result(operation, written, new, time.perf_counter() - started)
    raise run.all_refused()


@dataclass
class _Run:
    """What the paths tried so far for one copy established."""

    job: CopyJob
    via: Via
    attempts: list[str]  # paths skipped or tried, with why they failed
    source_crc: int | None = None
    refusal: SSECTransferError | None = None

    async def write(self, method: Method) -> Written | None:
        """Write by `method`; None when the server refused it."""
        job = self.job
        if method == "stream":
            written = await write(job, method)
            if self.source_crc is not None and written.crc != self.source_crc:
                raise IntegrityError(
                    "the source read differently twice under one ETag",
                    hint="rerun the copy",
                    context=job.source.ref.context("GetObject"),
                )
            self.source_crc = written.crc
            return written
        if job.in_place and self.source_crc is None:  # the old bytes are gone after the copy
            self.source_crc = await digest(job, job.source.info, job.source.sse)
        try:
            written = await write(job, method)
        except Refused as refused:
            self.attempts.append(f"{method}: {refused.answer}")
            learn(job.caps, method, job.shape, refused.answer)
            self.refusal = refused.error
            return None
        job.report(job.size)
        if self.source_crc is None:
            self.source_crc = await digest(job, job.source.info, job.source.sse)
        return written

    async def verify(self, method: Method, written: Written) -> ObjectInfo | None:
        """The new object as verified; None when a server path wrote a wrong one, which was
        removed so the next path can run."""
        assert self.source_crc is not None
        try:
            return await verify(self.job, written, self.source_crc)
        except anyio.get_cancelled_exc_class():
            # Past the commit point: the object is replaced, so "nothing was kept" would be
            # wrong. Say what it holds now.
            target = self.job.target
            log.warning(
                "interrupted after s3://%s/%s was written (version %s, key %s) and before it "
                "was read back: check it with `ssec-transfer head`, and run the command again "
                "to verify it",
                target.bucket, target.key, written.version_id or "-",
                target.sse.fingerprint if target.sse else "none",
            )  # fmt: skip
            raise
        except SSECTransferError as exc:
            if method == "stream" or self.via == "server" or not is_bad_result(exc):
                raise
            await self._discard(method, written, exc)
            return None

    async def _discard(self, method: Method, written: Written, exc: SSECTransferError) -> None:
        job, source = self.job, self.job.source
        learn(job.caps, method, job.shape, f"wrong result ({type(exc).__name__})")
        survived = not job.in_place or (
            source.version_id is not None and written.version_id != source.version_id
        )
        if not survived:
            raise IntegrityError(
                f"the server's {method} does not read back as the source did "
                f"({exc.message}); the object was replaced by it",
                hint="restore the object from a backup; report this server bug",
                context=exc.context,
            ) from exc
        self.attempts.append(f"{method}: wrong result, removed ({exc.message})")
        await delete_written(job, written)

    def all_refused(self) -> TransferFailedError:
        """Only `via="server"` gets here: every server path was refused. Not a key problem
        even where the server says "MD5 of the key did not match" (Ceph, for two keys)."""
        refusal, target = self.refusal, self.job.target
        context = refusal.context if refusal is not None else target.context("copy")
        return TransferFailedError(
            f"the server refuses a server-side copy of this object ({'; '.join(self.attempts)})",
            hint="use --via stream (or auto) to copy through this machine",
            context=context,
        )

    def result(
        self, operation: str, written: Written, new: ObjectInfo, seconds: float
    ) -> CopyResult:
        job, source, target = self.job, self.job.source, self.job.target
        assert self.source_crc is not None
        return CopyResult(
            operation=operation,
            bucket=target.bucket,
            key=target.key,
            path=source.url,
            size=job.size,
            etag=new.etag,
            version_id=new.version_id,
            key_fingerprint=target.sse.fingerprint if target.sse else None,
            parts=written.parts,
            seconds=seconds,
            checksum=digest_text(self.source_crc),
            via=written.method,
            source_bucket=source.info.bucket,
            source_key=source.info.key,
            source_version_id=source.version_id,
            source_etag=source.info.etag,
            source_key_fingerprint=source.sse.fingerprint if source.sse else None,
            verified=True,
            attempts=tuple(self.attempts),
        )
