"""`ssec-transfer mv`: copy, verify the copy with its key, and only then remove the source.

Each direction is the command that copies plus rm's delete, never a new transfer path:

- upload (`put`): the upload's own checks passed (the server verified the parts' checksums, the
  file did not change while it was read); then a HEAD with the key confirms the object's size,
  ETag and key. The local file is unlinked only if it is still the file that was read: same
  device, inode, size, mtime and ctime as stat-ed before the upload began. A file that changed
  is kept and reported.
- download (`get`): the download verified its bytes and renamed them into place atomically;
  then exactly the version that was read is deleted (its VersionId, on a versioned bucket), so
  a version written meanwhile is never touched.
- copy (`cp`): the copy was read back with the target key and its CRC32C matched the source;
  then the source version that was copied is deleted.

Where a source is removed without a version id (an unversioned bucket), a HEAD first checks
that it still has the ETag that was read: an object replaced meanwhile is kept. If removing the
source fails after a verified copy, the object is reported as failed (`SourceKeptError`, exit
1) with both copies named: nothing is ever lost, at worst there are two. Folders that a move
empties stay, as with `aws s3 mv`.

The pure half (which direction, refusing a move onto itself, mapping prefixes, the per-object
report) is apart from the I/O half (the `finish_*` steps run after each verified copy).
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ssec_transfer.apps.bulk import FilterRule, is_included
from ssec_transfer.apps.remove import RemovalTarget, delete_one
from ssec_transfer.apps.sources import printable
from ssec_transfer.core.errors import (
    ErrorContext,
    IntegrityError,
    LocalIOError,
    NotFoundError,
    SourceKeptError,
    SSECTransferError,
    UsageError,
)
from ssec_transfer.core.protected import protected_as
from ssec_transfer.core.results import TransferResult
from ssec_transfer.s3.requests import real_version
from ssec_transfer.s3.urls import folder_prefix

if TYPE_CHECKING:
    from ssec_transfer.apps.bulk import JobOutcome
    from ssec_transfer.core.results import ProgressCallback
    from ssec_transfer.engine import TransferEngine
    from ssec_transfer.keys.customer import SSECustomerKey
    from ssec_transfer.transfer.copy import CopyResult, Via

Direction = Literal["upload", "download", "copy"]
Status = Literal["ok", "skipped", "failed", "dryrun"]


# -- the report of one object ---------------------------------------------------------------------


@dataclass(frozen=True)
class MoveOutcome:
    """One object of a move. `result` describes the new copy; `source_removed` says whether
    the source is gone (only ever after the copy was verified)."""

    source: str
    destination: str | None  # None only for a deletion, which mv never plans
    status: Status
    result: TransferResult | None = None
    error: SSECTransferError | None = None
    seconds: float = 0.0
    size: int | None = None  # known from planning, when there is no result
    reason: str | None = None  # why a local source could not be sent (`sources.REASONS`)
    source_version_id: str | None = None  # the version read (and removed, if removed)
    source_removed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The JSON line (`core.report.object_record`), operation "move", plus
        `source_version_id` and `source_removed`. Built here only."""
        from ssec_transfer.core.report import object_record

        return object_record(
            "move", self.status, source=self.source, destination=self.destination,
            size=self.size if self.result is None else None, seconds=self.seconds,
            result=self.result, reason=self.reason, error=self.error,
            extra={
                "source_version_id": self.source_version_id,
                "source_removed": self.source_removed,
            },
        )  # fmt: skip

    @classmethod
    def of_job(cls, outcome: JobOutcome) -> MoveOutcome:
        """A put/get job that did not copy (failed, skipped): its source stays."""
        job = outcome.job
        return cls(
            job.source, job.destination, outcome.status, outcome.result, outcome.error,
            outcome.seconds, job.size, outcome.reason,
        )  # fmt: skip


# -- planning (pure) ------------------------------------------------------------------------------


def _remote(text: str) -> bool:
    return text.startswith(("s3://", "http://", "https://"))  # http(s): parse_s3_url explains


def direction_of(source: str, dest: str) -> Direction:
    """Which way SRC DEST move; refused: streams (nothing to remove, or nothing to verify
    against) and two local paths (that is `mv` of the shell)."""
    if "-" in (source, dest):
        raise UsageError(
            "mv cannot move a stream (-): a stream cannot be removed, and what goes to stdout "
            "cannot be verified as stored",
            hint="use `ssec-transfer put -` or `ssec-transfer get ... -` instead",
        )
    if not _remote(source) and not _remote(dest):
        raise UsageError(
            f"{source} and {dest} are both local paths: mv moves to, from or between S3 objects",
            hint="use the shell's mv for local files",
        )
    if _remote(source) and _remote(dest):
        return "copy"
    return "download" if _remote(source) else "upload"


def object_key_for(name: str, dest_key: str) -> str:
    """A destination key ending in / (or none) takes the source's base name, as put and cp do."""
    if not dest_key or dest_key.endswith("/"):
        return dest_key + name.rsplit("/", 1)[-1]
    return dest_key


def refuse_onto_itself(
    src_bucket: str, src_key: str, dst_bucket: str, dst_key: str, *, recursive: bool
) -> None:
    """A move onto itself would delete the only copy after "copying" it; a recursive move into
    its own prefix would move objects it just wrote, or overwrite sources not yet moved."""
    if src_bucket != dst_bucket:
        return
    if not recursive:
        if src_key == dst_key:
            raise UsageError(
                f"s3://{src_bucket}/{printable(src_key)} would be moved onto itself; nothing "
                "was moved",
                hint="give another name; to change the key of an object in place use "
                "`ssec-transfer rotate`",
            )
        return
    src, dst = folder_prefix(src_key), folder_prefix(dst_key)
    if dst.startswith(src):
        raise UsageError(
            f"s3://{dst_bucket}/{printable(dst)} is inside s3://{src_bucket}/{printable(src)}: "
            "the move would take objects it writes, or overwrite objects not yet moved; "
            "nothing was moved",
            hint="move to a prefix outside the source prefix",
        )


@dataclass(frozen=True)
class CopyPlan:
    """`mv --recursive s3://… s3://…`: (source key, destination key) pairs in listing order;
    `excluded` counts what --include/--exclude left out on purpose."""

    pairs: list[tuple[str, str]]
    excluded: int = 0


def plan_copies(
    keys: Iterable[str], src_prefix: str, dst_prefix: str, rules: Sequence[FilterRule] = ()
) -> CopyPlan:
    """Each key under the folder `src_prefix` to the same relative name under `dst_prefix`
    (the mapping of `cp --recursive`), with the rules applied to the relative name."""
    src, dst = folder_prefix(src_prefix), folder_prefix(dst_prefix)
    pairs: list[tuple[str, str]] = []
    excluded = 0
    for key in keys:
        relative = key[len(src) :]
        if is_included(relative, rules):
            pairs.append((key, dst + relative))
        else:
            excluded += 1
    return CopyPlan(pairs, excluded)


@dataclass(frozen=True)
class FileIdentity:
    """What must not change between the upload's read and the unlink: which file it is (device,
    inode) and its content's marks (size, mtime, ctime: a write changes both times)."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def changes_since(self, before: FileIdentity) -> list[str]:
        """What differs from `before`, in words, for the message; empty when nothing does."""
        changed = []
        if (self.device, self.inode) != (before.device, before.inode):
            changed.append("it is another file now (replaced or renamed over)")
        if self.size != before.size:
            changed.append(f"its size went from {before.size} to {self.size} bytes")
        if self.mtime_ns != before.mtime_ns or self.ctime_ns != before.ctime_ns:
            changed.append("it was written to or its attributes were changed")
        return changed


def identify(path: Path) -> FileIdentity:
    """The file's identity, not following a symbolic link (mv removes the path it was given)."""
    return FileIdentity.of(os.lstat(path))


def refuse_local_source(path: Path) -> None:
    """`mv PATH s3://…`: only a regular file is moved. A symbolic link is refused: its target's
    bytes would be uploaded and the link removed, leaving the data where it was."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise UsageError(f"source file {path} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read source file {path}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(st.st_mode):
        raise UsageError(
            f"{path} is a symbolic link: mv would upload the file it points to and remove only "
            "the link",
            hint="move the file it points to, or upload with `ssec-transfer put` and remove "
            "the link yourself",
        )
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{path} is a directory", hint="add --recursive to move its files")
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{path} is not a regular file (a FIFO, socket or device)")
    what = protected_as(path)
    if what is not None:
        raise UsageError(
            f"{path} is {what} of this run: moving it would remove it from this machine",
            hint="copy it with `ssec-transfer put` if a copy on the server is wanted",
        )


def refuse_local_dest(dest: str | os.PathLike[str]) -> None:
    """`mv s3://… DEST`: the object must land in a file. A device or FIFO is written into (as
    `get` does), so nothing would be stored to verify: refused before the object is read."""
    try:
        st = os.stat(dest)
    except OSError:
        return  # a new file; `get`'s own checks say what is wrong with its folder
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise UsageError(
            f"{dest} is not a regular file or a folder: an object written into a device or "
            "FIFO is not stored anywhere, so mv would delete its only copy",
            hint="use `ssec-transfer get` to stream it there, and delete it separately",
        )


def _landed(path: Path, size: int, source: str) -> None:
    """The download's file is in place: a regular file of the object's size."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise LocalIOError(
            f"{printable(path)} cannot be checked ({exc.strerror or exc}); {source} was kept"
        ) from None
    if not stat.S_ISREG(st.st_mode) or st.st_size != size:
        raise LocalIOError(
            f"{printable(path)} is not a regular file of {size} bytes after the download "
            f"(a device or FIFO is written into, not stored); {source} was kept",
            hint="use `ssec-transfer get` for such a destination",
        )


# -- removing the source, once the copy is verified -----------------------------------------------


def _kept(exc: SSECTransferError, copied_to: str, source: str, hint: str) -> SourceKeptError:
    """After a verified copy: the source could not be removed, so both copies exist."""
    return SourceKeptError(
        f"{copied_to} was written and verified, but {source} could not be removed "
        f"({exc.message}): both copies exist now, nothing was lost",
        hint=hint,
        context=exc.context,
    )


def unlink_if_unchanged(path: Path, before: FileIdentity | None, sent_to: str) -> None:
    """Remove `path` if it is still the file `before` describes; else keep it and say why.
    A file already gone is no failure: the object holds it, which is what mv was for."""
    what = protected_as(path)
    if what is not None:
        raise LocalIOError(
            f"{printable(path)} is {what} of this run: {sent_to} holds a copy, the file was kept",
            hint="keep it outside the folder moved, or leave it out with --exclude",
        )
    if before is None:
        raise LocalIOError(
            f"{printable(path)} could not be stat-ed before the upload, so it is unknown whether "
            f"{sent_to} holds it as it is now; the file was kept",
            hint="check both, then remove the file yourself",
        )
    try:
        now = identify(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise LocalIOError(
            f"{printable(path)} cannot be checked ({exc.strerror or exc}): {sent_to} holds a "
            "copy, the file was kept",
            hint="check both, then remove the file yourself",
        ) from None
    changed = now.changes_since(before)
    if changed:
        raise LocalIOError(
            f"{printable(path)} changed after it was uploaded ({'; '.join(changed)}): "
            f"{sent_to} holds the file as it was read; the file was kept",
            hint="check both, then move the file again or remove it yourself",
        )
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        error = LocalIOError(f"{exc.strerror or exc}")
        raise _kept(
            error, sent_to, printable(path), hint=f"remove {printable(path)} yourself"
        ) from None


async def confirm_upload(
    engine: TransferEngine, result: TransferResult, sse_key: SSECustomerKey
) -> None:
    """A HEAD with the key: the object is there, of the size and ETag the upload wrote, under
    this key (a wrong key fails the HEAD itself; a reported fingerprint must be this key's)."""
    info = await engine.head(
        result.bucket, result.key, sse_key=sse_key, version_id=real_version(result.version_id)
    )
    wrong = []
    if info.size != result.size:
        wrong.append(f"size {info.size}, {result.size} bytes were sent")
    if result.etag and info.etag and info.etag != result.etag:
        wrong.append(f"ETag {info.etag}, the upload's was {result.etag} (replaced meanwhile?)")
    if info.key_fingerprint and info.key_fingerprint != sse_key.fingerprint:
        wrong.append(f"key {info.key_fingerprint}, the upload's was {sse_key.fingerprint}")
    if wrong:
        raise IntegrityError(
            f"the uploaded object does not read back as written ({'; '.join(wrong)})",
            hint="check it with `ssec-transfer head`; the local file was kept",
            context=ErrorContext("HeadObject", result.bucket, result.key),
        )


async def remove_object(
    engine: TransferEngine,
    bucket: str,
    key: str,
    *,
    sse_key: SSECustomerKey | None,
    version_id: str | None,
    etag: str | None,
    copied_to: str,
) -> str | None:
    """Delete the object version that was read and copied; the version id removed (None: the
    unversioned object). Without a version id, the object must still have the ETag read."""
    version = real_version(version_id)
    url = f"s3://{bucket}/{printable(key)}"
    if version is None:
        try:
            info = await engine.head(bucket, key, sse_key=sse_key)
        except NotFoundError:
            return None  # gone already: nothing left to remove
        except SSECTransferError as exc:
            raise _kept(
                exc, copied_to, url, hint=f"remove it yourself: ssec-transfer rm {url}"
            ) from None
        if etag and info.etag and info.etag != etag:
            raise SourceKeptError(
                f"{url} was replaced after it was read (ETag {etag}, now {info.etag}): "
                f"{copied_to} holds the object as it was read, the new one was kept",
                hint="check both; move the new one separately if that is wanted",
                context=ErrorContext("mv", bucket, key),
            )
    target = RemovalTarget(bucket, key, version)
    try:
        async with engine.scheduler.request():
            await delete_one(engine.client, target)
    except SSECTransferError as exc:
        rm = f"ssec-transfer rm {url}" + (f" --version-id {version}" if version else "")
        raise _kept(exc, copied_to, url, hint=f"remove it yourself: {rm}") from None
    return version


# -- one object, each direction -------------------------------------------------------------------


async def move_file(
    engine: TransferEngine,
    path: Path,
    bucket: str,
    key: str,
    *,
    sse_key: SSECustomerKey,
    progress: ProgressCallback | None = None,
) -> MoveOutcome:
    """Upload `path`, confirm the object, unlink the file. An upload that fails raises (the
    file stays); a failure after it is a failed outcome."""
    import anyio

    started = time.perf_counter()
    await anyio.to_thread.run_sync(refuse_local_source, path)
    before = await anyio.to_thread.run_sync(identify, path)
    result = await engine.upload(path, bucket, key, sse_key=sse_key, progress=progress)
    return await finish_upload(engine, path, before, result, sse_key, started)


async def finish_upload(
    engine: TransferEngine,
    path: Path,
    before: FileIdentity | None,
    result: TransferResult,
    sse_key: SSECustomerKey,
    started: float,
) -> MoveOutcome:
    import anyio

    url = f"s3://{result.bucket}/{printable(result.key)}"

    async def remove() -> None:
        await confirm_upload(engine, result, sse_key)
        await anyio.to_thread.run_sync(unlink_if_unchanged, path, before, url)

    return await _source_removed(remove, printable(path), url, result, started)


async def move_object_down(
    engine: TransferEngine,
    bucket: str,
    key: str,
    dest: str | os.PathLike[str],
    *,
    sse_key: SSECustomerKey | None,
    progress: ProgressCallback | None = None,
    size_hint: int | None = None,
) -> MoveOutcome:
    """Download the object (verified, renamed into place), then delete the version read. A
    download that fails raises (the object stays, no local file)."""
    started = time.perf_counter()
    result = await engine.download(
        bucket, key, dest, sse_key=sse_key, progress=progress, size_hint=size_hint
    )
    return await finish_download(engine, result, sse_key, started)


async def finish_download(
    engine: TransferEngine,
    result: TransferResult,
    sse_key: SSECustomerKey | None,
    started: float,
) -> MoveOutcome:
    import anyio

    url = f"s3://{result.bucket}/{printable(result.key)}"
    dest = printable(Path(result.path))
    version = real_version(result.version_id)

    async def remove() -> None:
        await anyio.to_thread.run_sync(_landed, Path(result.path), result.size, url)
        await remove_object(
            engine, result.bucket, result.key, sse_key=sse_key, version_id=version,
            etag=result.etag, copied_to=dest,
        )  # fmt: skip

    return await _source_removed(remove, url, dest, result, started, version)


async def move_object_across(
    engine: TransferEngine,
    src_bucket: str,
    src_key: str,
    dst_bucket: str,
    dst_key: str,
    *,
    source_key: SSECustomerKey | None,
    target_key: SSECustomerKey | None,
    via: Via = "auto",
) -> MoveOutcome:
    """`cp` (verified by reading the copy back with the target key), then delete the source
    version copied. A copy that fails raises (the source stays)."""
    started = time.perf_counter()
    result = await engine.copy(
        src_bucket, src_key, dst_bucket, dst_key, source_key=source_key,
        target_key=target_key, via=via,
    )  # fmt: skip
    return await finish_copy(engine, result, source_key, started)


async def finish_copy(
    engine: TransferEngine, result: CopyResult, source_key: SSECustomerKey | None, started: float
) -> MoveOutcome:
    src = f"s3://{result.source_bucket}/{printable(result.source_key)}"
    dst = f"s3://{result.bucket}/{printable(result.key)}"
    version = result.source_version_id

    async def remove() -> None:
        await remove_object(
            engine, result.source_bucket, result.source_key, sse_key=source_key,
            version_id=version, etag=result.source_etag, copied_to=dst,
        )  # fmt: skip

    return await _source_removed(remove, src, dst, result, started, version)


async def _source_removed(
    remove: Callable[[], Awaitable[None]],
    source: str,
    destination: str,
    result: TransferResult,
    started: float,
    version: str | None = None,
) -> MoveOutcome:
    """The outcome of a verified copy once `remove` (the source's removal) ran: ok, or failed
    with the error that kept the source, both copies existing."""
    try:
        await remove()
    except SSECTransferError as exc:
        seconds = time.perf_counter() - started
        return MoveOutcome(
            source, destination, "failed", result, exc, seconds, source_version_id=version
        )
    return MoveOutcome(
        source, destination, "ok", result, seconds=time.perf_counter() - started,
        source_version_id=version, source_removed=True,
    )  # fmt: skip


# -- many objects ---------------------------------------------------------------------------------


def identities(paths: Iterable[Path]) -> dict[Path, FileIdentity]:
    """Each file's identity at planning time, before its upload reads it (a file that cannot
    be stat-ed is left out: its upload fails, or it is kept)."""
    found: dict[Path, FileIdentity] = {}
    for path in paths:
        try:
            found[path] = identify(path)
        except OSError:
            continue
    return found


async def finish_job(
    engine: TransferEngine, outcome: JobOutcome, before: dict[Path, FileIdentity]
) -> MoveOutcome:
    """After one put/get job of `mv --recursive`: remove its source if the copy succeeded."""
    if outcome.status != "ok" or outcome.result is None:
        return MoveOutcome.of_job(outcome)
    job, result = outcome.job, outcome.result
    started = time.perf_counter() - outcome.seconds  # the report counts the transfer too
    if job.operation == "upload":
        assert job.sse_key is not None  # an upload without a key fails before it runs
        return await finish_upload(
            engine, job.path, before.get(job.path), result, job.sse_key, started
        )
    return await finish_download(engine, result, job.sse_key, started)


async def move_copies(
    engine: TransferEngine,
    src_bucket: str,
    dst_bucket: str,
    pairs: Sequence[tuple[str, str]],
    *,
    source_key: SSECustomerKey | None,
    target_key: SSECustomerKey | None,
    via: Via = "auto",
    max_objects: int = 16,
    fail_fast: bool = False,
    on_outcome: Callable[[MoveOutcome], None] | None = None,
) -> list[MoveOutcome]:
    """`mv --recursive s3://… s3://…`: each pair moved as `move_object_across` does, at most
    `max_objects` at once; one failing object is reported and the others go on (with
    `fail_fast`, no further object is started: those are left out of the outcomes)."""
    from ssec_transfer.core.taskgroups import for_each

    outcomes: list[MoveOutcome] = []
    stopped = False

    async def one(pair: tuple[str, str]) -> None:
        nonlocal stopped
        if stopped:
            return
        src, dst = pair
        started = time.perf_counter()
        try:
            outcome = await move_object_across(
                engine, src_bucket, src, dst_bucket, dst, source_key=source_key,
                target_key=target_key, via=via,
            )  # fmt: skip
        except SSECTransferError as exc:
            outcome = MoveOutcome(
                f"s3://{src_bucket}/{printable(src)}", f"s3://{dst_bucket}/{printable(dst)}",
                "failed", error=exc, seconds=time.perf_counter() - started,
            )  # fmt: skip
        outcomes.append(outcome)
        stopped = stopped or (fail_fast and outcome.status == "failed")
        if on_outcome is not None:
            on_outcome(outcome)

    await for_each(list(pairs), one, max_objects)
    return outcomes
