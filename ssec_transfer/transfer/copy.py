"""Copy objects between keys and buckets, and rotate SSE-C keys in place, with verification.

Three ways to write the new object (`copy_paths`), tried in this order by `via="auto"`:

- `server-copy`: one CopyObject (objects up to 5 GiB), target key in the normal SSE-C
  headers, source key in the copy-source ones, pinned by CopySourceIfMatch and VersionId.
- `server-part-copy`: parallel UploadPartCopy with CopySourceRange, same keys on every
  request, then CompleteMultipartUpload (preferred at or above `multipart_threshold`, the only
  server path above 5 GiB).
- `stream`: ranged GETs with the source key (pinned by If-Match and VersionId) into memory
  reserved in the engine's byte budget, UploadPart with the target key, then
  CompleteMultipartUpload, which replaces the destination atomically: until then the old
  object is intact, and any failure or cancellation aborts the upload under a shielded scope.

Servers refuse or break the server paths in different ways (measured, see `tests/integration/
transfer/test_copy_rotate.py`): SeaweedFS 4.48 answers 501 to UploadPartCopy from SSE-C sources,
400 to a CopyObject onto the same name unless the metadata is replaced, and makes an object from
UploadPartCopy of a plain source into an SSE-C target whose ranges read but whose whole-object
GET answers 500; Ceph RGW 16 answers 501 to CopyObject from SSE-C sources, 400 to UploadPartCopy
with two different keys, and silently stores *plaintext* from a CopyObject of a plain source
into an SSE-C target. So a server path is never trusted: success is reported only after the new
object was read back in full with the target key and its CRC32C matched the source's
(`copy_verify`). Refusals (400/501) and results that fail verification move `auto` on to the
next path (`copy_run`), and are remembered in `CopyOptions.capabilities` so the following
objects of a run skip doomed attempts (`copy_plan`).

Cost of that certainty: the stream path reads the source once (the digest comes from the bytes
passing through) and the new object once more; a server path reads the source once for its
digest (before the copy when copying onto the same object, whose old bytes are gone after) and
the new object once. Nothing is written twice.

This module is the public API: one object, every version of one object, or a whole prefix.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ssec_transfer.core.crc import digest_text
from ssec_transfer.core.errors import (
    ErrorContext,
    IntegrityError,
    NoSuchObjectError,
    SSECTransferError,
    UsageError,
    WrongKeyError,
)
from ssec_transfer.core.report import object_record
from ssec_transfer.core.results import ObjectInfo, ProgressCallback
from ssec_transfer.core.scheduler import Scheduler
from ssec_transfer.core.taskgroups import for_each
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.errors import translated
from ssec_transfer.s3.listing import iter_keys, list_key_versions
from ssec_transfer.s3.requests import ObjectRef, real_version
from ssec_transfer.s3.urls import folder_prefix
from ssec_transfer.transfer.copy_job import CopyJob, CopySource, head, object_url
from ssec_transfer.transfer.copy_plan import CopyOptions, Via
from ssec_transfer.transfer.copy_run import CopyResult, run_copy
from ssec_transfer.transfer.copy_verify import digest

if TYPE_CHECKING:
    from ssec_transfer.state.ledger import LedgerEntry

# Whether the ledger proves an object version rotated and verified (`ledger_proves_rotation`).
RotationProof = Callable[[ObjectInfo], Awaitable[bool]]

# A rotation's object already under the new key (the old key refused, the new one opens it).
ALREADY_ROTATED = "already-rotated"

__all__ = [
    "ALREADY_ROTATED",
    "CopyOptions",
    "CopyOutcome",
    "CopyResult",
    "Via",
    "copy_object",
    "copy_one",
    "copy_prefix",
    "copy_record",
    "failed_rotation",
    "object_url",
    "rotate_all_versions",
    "rotate_key",
    "rotate_object",
    "rotate_prefix",
    "rotated",
    "skipped_rotation",
]


@dataclass(frozen=True)
class CopyOutcome:
    """One object of a multi-object copy or rotation: its result, or why it failed.
    `bucket`/`key` name the object written (or that would have been)."""

    source: str
    destination: str
    version_id: str | None  # of the source
    status: Literal["ok", "skipped", "failed"]
    result: CopyResult | None = None
    error: SSECTransferError | None = None
    operation: Literal["copy", "rotate"] = "copy"
    bucket: str | None = None
    key: str | None = None
    reason: str | None = None  # why it was skipped (`ALREADY_ROTATED`)

    def to_dict(self) -> dict[str, Any]:
        """The JSON line (`core.report.object_record`)."""
        return copy_record(
            self.result, self.operation, self.status, source=self.source,
            destination=self.destination, bucket=self.bucket, key=self.key,
            source_version_id=self.version_id, error=self.error, reason=self.reason,
        )  # fmt: skip


def copy_record(
    result: CopyResult | None,
    operation: Literal["copy", "rotate"],
    status: Literal["ok", "skipped", "failed"] = "ok",
    *,
    source: str | None = None,
    destination: str | None = None,
    bucket: str | None = None,
    key: str | None = None,
    source_version_id: str | None = None,
    error: SSECTransferError | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """A copy's or rotation's JSON line: the common fields, plus how it went (`via`,
    `verified`, `attempts`) and what the source was."""
    r = result
    if r is not None:
        source = source or object_url(r.source_bucket, r.source_key, r.source_version_id)
        destination = destination or object_url(r.bucket, r.key, r.version_id)
    return object_record(
        operation, status, source=source, destination=destination, bucket=bucket, key=key,
        result=r, error=error, reason=reason,
        extra={
            "via": r.via if r else None,
            "verified": r.verified if r else False,
            "attempts": list(r.attempts) if r else [],
            "source_version_id": r.source_version_id if r else source_version_id,
            "source_etag": r.source_etag if r else None,
            "source_key_fingerprint": r.source_key_fingerprint if r else None,
            "old_key_refused": r.old_key_refused if r else None,
            "deleted_version_id": r.deleted_version_id if r else None,
        },
    )  # fmt: skip


# -- one object -------------------------------------------------------------------------------


async def copy_object(
    client: Any,
    scheduler: Scheduler,
    src_bucket: str,
    src_key: str,
    dst_bucket: str,
    dst_key: str,
    *,
    source_key: SSECustomerKey | None,
    target_key: SSECustomerKey | None,
    version_id: str | None = None,
    via: Via = "auto",
    options: CopyOptions | None = None,
    progress: ProgressCallback | None = None,
) -> CopyResult:
    """Copy one object (one version) to another name or bucket, re-encrypting it from
    `source_key` to `target_key` (either may be None for a plain object), content type and
    user metadata preserved. Returns only after the copy was read back and verified."""
    _check_via(via)
    source = ObjectRef(src_bucket, src_key, source_key)
    info, head_ = await head(client, scheduler, source, version_id)
    job = CopyJob(
        client, scheduler, CopySource(info, head_, source_key),
        ObjectRef(dst_bucket, dst_key, target_key), options or CopyOptions(), progress,
    )  # fmt: skip
    return await run_copy(job, via=via, operation="copy")


async def rotate_object(
    client: Any,
    scheduler: Scheduler,
    bucket: str,
    key: str,
    *,
    old_key: SSECustomerKey,
    new_key: SSECustomerKey,
    version_id: str | None = None,
    via: Via = "auto",
    options: CopyOptions | None = None,
    delete_old_versions: bool = False,
    allow_noncurrent: bool = False,
    progress: ProgressCallback | None = None,
) -> CopyResult:
    """Re-encrypt an object in place under `new_key`.

    On an unversioned bucket the object is replaced atomically (until then, and after any
    failure, it stays readable with `old_key`). On a versioned bucket the re-encrypted copy
    becomes a new, current version; the old version stays unless `delete_old_versions`, and
    is deleted only after the new one was verified. Rotating a version that is not the
    current one would make its copy current, so that needs `allow_noncurrent`
    (`rotate_all_versions` uses it, oldest first, so the current version stays current).
    """
    _check_via(via)
    if old_key == new_key:
        raise UsageError(
            "the old and the new key are the same: there is nothing to rotate",
            hint="make a new key with `ssec-transfer keygen PATH`",
            context=ErrorContext("rotate", bucket, key),
        )
    old = ObjectRef(bucket, key, old_key)
    info, head_ = await head(client, scheduler, old, version_id)
    source = CopySource(info, head_, old_key)
    if version_id and source.version_id and not allow_noncurrent:
        await _require_current(client, scheduler, source)
    job = CopyJob(
        client, scheduler, source, ObjectRef(bucket, key, new_key), options or CopyOptions(),
        progress,
    )  # fmt: skip
    result = await run_copy(job, via=via, operation="rotate")
    await _require_old_key_refused(client, scheduler, old)
    deleted = None
    if delete_old_versions and source.version_id and source.version_id != result.version_id:
        with translated(old.context("DeleteObject"), key_sent=False):
            async with scheduler.request():
                await client.delete_object(Bucket=bucket, Key=key, VersionId=source.version_id)
        deleted = source.version_id
    return replace(result, old_key_refused=True, deleted_version_id=deleted)


async def _require_current(client: Any, scheduler: Scheduler, source: CopySource) -> None:
    """Refuse to make an old version current by rotating it."""
    try:
        current, _ = await head(client, scheduler, source.ref, None)
        is_current = real_version(current.version_id) == source.version_id
    except SSECTransferError:
        is_current = False  # the current version is under another key, or a delete marker
    if not is_current:
        raise UsageError(
            f"version {source.version_id} is not the current version; its re-encrypted copy "
            "would become the current version",
            hint="use --all-versions, which rotates oldest first so the current version "
            "stays current",
            context=source.ref.context("rotate"),
        )


async def _require_old_key_refused(client: Any, scheduler: Scheduler, old: ObjectRef) -> None:
    """After a rotation the current object must refuse the old key."""
    try:
        await head(client, scheduler, old, None)
    except WrongKeyError:
        return
    raise IntegrityError(
        "the old key still opens the rotated object",
        hint="another writer may have replaced the object meanwhile; check it with "
        "`ssec-transfer head` and rerun the rotation",
        context=old.context("rotate"),
    )


# -- every version of one object ---------------------------------------------------------------


async def rotate_all_versions(
    client: Any,
    scheduler: Scheduler,
    bucket: str,
    key: str,
    *,
    old_key: SSECustomerKey,
    new_key: SSECustomerKey,
    via: Via = "auto",
    options: CopyOptions | None = None,
    delete_old_versions: bool = False,
    progress: ProgressCallback | None = None,
    proven: RotationProof | None = None,
) -> list[CopyOutcome]:
    """Rotate every version of `key` that `old_key` opens, oldest first, so the copy of the
    current version is created last and stays current. Versions the new key opens already
    are skipped (`ALREADY_ROTATED`); versions under another key are reported as failed
    (each version may have its own key); if the current version is one of
    them, no older version is rotated, as its copy would become current."""
    _check_via(via)
    versions = await list_key_versions(client, bucket, key)
    if not versions:
        raise NoSuchObjectError(
            "object does not exist", context=ErrorContext("ListObjectVersions", bucket, key)
        )
    if versions[0].delete_marker:
        raise UsageError(
            "the current version of this object is a delete marker; rotating its older "
            "versions would bring the object back",
            hint="restore the object first (remove the delete marker), then rotate",
            context=ErrorContext("rotate", bucket, key),
        )
    old = ObjectRef(bucket, key, old_key)
    outcomes: list[CopyOutcome] = []
    readable: list[str] = []
    for listed in reversed(versions):  # oldest first
        if listed.delete_marker or listed.version_id is None:
            continue
        try:
            await head(client, scheduler, old, listed.version_id)
        except WrongKeyError as exc:
            skipped = await _already_rotated(
                client, scheduler, bucket, key, listed.version_id, new_key, options, exc, proven
            )
            outcomes.append(skipped)
        except SSECTransferError as exc:
            outcomes.append(failed_rotation(bucket, key, listed.version_id, exc))
        else:
            readable.append(listed.version_id)
    if readable and readable[-1] != versions[0].version_id:
        error = UsageError(
            "the current version is not under the old key, so rotating this older version "
            "would make its copy the current version; not rotated",
            hint="rotate the versions under each key separately, newest key last",
            context=old.context("rotate"),
        )
        return outcomes + [failed_rotation(bucket, key, v, error) for v in readable]
    for version in readable:
        try:
            result = await rotate_object(
                client, scheduler, bucket, key, old_key=old_key, new_key=new_key,
                version_id=version, via=via, options=options,
                delete_old_versions=delete_old_versions, allow_noncurrent=True,
                progress=progress,
            )  # fmt: skip
        except SSECTransferError as exc:
            outcomes.append(failed_rotation(bucket, key, version, exc))
        else:
            outcomes.append(rotated(bucket, key, version, result))
    return outcomes


# -- a whole prefix -----------------------------------------------------------------------------


async def copy_one(
    client: Any,
    scheduler: Scheduler,
    src_bucket: str,
    src: str,
    dst_bucket: str,
    dst: str,
    *,
    source_key: SSECustomerKey | None,
    target_key: SSECustomerKey | None,
    via: Via = "auto",
    options: CopyOptions | None = None,
    progress: ProgressCallback | None = None,
) -> CopyOutcome:
    """One object of `cp --recursive` (here or on a Dask worker): its outcome, never an
    exception, so the others go on."""
    source, destination = object_url(src_bucket, src), object_url(dst_bucket, dst)
    try:
        result = await copy_object(
            client, scheduler, src_bucket, src, dst_bucket, dst,
            source_key=source_key, target_key=target_key, via=via, options=options,
            progress=progress,
        )  # fmt: skip
    except SSECTransferError as exc:
        return CopyOutcome(
            source, destination, None, "failed", None, exc, bucket=dst_bucket, key=dst
        )
    return CopyOutcome(
        source, destination, result.source_version_id, "ok", result,
        bucket=dst_bucket, key=dst,
    )  # fmt: skip


async def copy_prefix(
    client: Any,
    scheduler: Scheduler,
    src_bucket: str,
    src_prefix: str,
    dst_bucket: str,
    dst_prefix: str,
    *,
    source_key: SSECustomerKey | None,
    target_key: SSECustomerKey | None,
    via: Via = "auto",
    options: CopyOptions | None = None,
    max_objects: int = 16,
    on_outcome: Callable[[CopyOutcome], None] | None = None,
) -> list[CopyOutcome]:
    """`cp --recursive`: every object under `src_prefix` (a folder: `a/b` means `a/b/`) to the
    same relative name under `dst_prefix`. The listing is complete before the first copy, so
    overlapping prefixes never copy a copy. A failing object is reported, the others go on."""
    _check_via(via)
    src_prefix = folder_prefix(src_prefix)
    keys = [k async for k in iter_keys(client, src_bucket, src_prefix)]
    jobs = [(k, folder_prefix(dst_prefix) + k[len(src_prefix) :]) for k in keys]

    async def one(pair: tuple[str, str]) -> CopyOutcome:
        src, dst = pair
        return await copy_one(
            client, scheduler, src_bucket, src, dst_bucket, dst, source_key=source_key,
            target_key=target_key, via=via, options=options,
        )  # fmt: skip

    return await _run_each(jobs, one, max_objects, on_outcome)


async def rotate_key(
    client: Any,
    scheduler: Scheduler,
    bucket: str,
    key: str,
    *,
    old_key: SSECustomerKey,
    new_key: SSECustomerKey,
    all_versions: bool = False,
    via: Via = "auto",
    options: CopyOptions | None = None,
    delete_old_versions: bool = False,
    progress: ProgressCallback | None = None,
    proven: RotationProof | None = None,
) -> list[CopyOutcome]:
    """One object of `rotate --recursive` (every version of it with `all_versions`), here or
    on a Dask worker: its outcomes, never an exception.

    Restartable: an object the old key does not open but the new key does was rotated
    already (by an earlier run, or by a batch lost with its Dask worker) and is skipped, so
    running the same rotation again finishes the job without rewriting anything."""
    try:
        if all_versions:
            return await rotate_all_versions(
                client, scheduler, bucket, key, old_key=old_key, new_key=new_key, via=via,
                options=options, delete_old_versions=delete_old_versions, progress=progress,
                proven=proven,
            )  # fmt: skip
        result = await rotate_object(
            client, scheduler, bucket, key, old_key=old_key, new_key=new_key, via=via,
            options=options, delete_old_versions=delete_old_versions, progress=progress,
        )  # fmt: skip
    except WrongKeyError as exc:
        skipped = await _already_rotated(
            client, scheduler, bucket, key, None, new_key, options, exc, proven
        )
        return [skipped]
    except SSECTransferError as exc:
        return [failed_rotation(bucket, key, None, exc)]
    return [rotated(bucket, key, result.source_version_id, result)]


async def _already_rotated(
    client: Any,
    scheduler: Scheduler,
    bucket: str,
    key: str,
    version_id: str | None,
    new_key: SSECustomerKey,
    options: CopyOptions | None,
    refused: WrongKeyError,
    proven: RotationProof | None,
) -> CopyOutcome:
    """The old key was refused: the object counts as rotated if the new key opens it, and
    only once that is verified. A ledger row of a verified rotation of this very object
    (`proven`) is proof enough; otherwise (a worker died between the copy and its read-back)
    the object is read back in full with the new key, and checked against the CRC32C its
    upload sealed, when it sealed one."""
    ref = ObjectRef(bucket, key, new_key)
    try:
        info, answer = await head(client, scheduler, ref, version_id)
    except SSECTransferError:
        return failed_rotation(bucket, key, version_id, refused)
    if proven is not None and await proven(info):
        return skipped_rotation(bucket, key, version_id)
    job = CopyJob(client, scheduler, CopySource(info, answer, new_key), ref,
                  options or CopyOptions())  # fmt: skip
    try:
        crc = await digest(job, info, new_key, operation="verify", whole_first=True)
    except SSECTransferError as exc:
        return failed_rotation(bucket, key, version_id, exc)
    sealed = info.sealed.crc32c if info.sealed is not None else None
    if sealed is not None and sealed != crc:
        mismatch = IntegrityError(
            f"s3://{bucket}/{key} opens with the new key, but its CRC32C "
            f"{digest_text(crc)} is not the {digest_text(sealed)} its upload sealed",
            hint="restore the object from a copy or a noncurrent version, then rotate again",
            context=ref.context("verify"),
        )
        return failed_rotation(bucket, key, version_id, mismatch)
    return skipped_rotation(bucket, key, version_id)


def ledger_proves_rotation(
    entry: LedgerEntry | None, info: ObjectInfo, new_fingerprint: str
) -> bool:
    """Whether `entry` (the newest ledger row of the object) records this very object
    version, verified under the new key: same key fingerprint, version, ETag and size."""
    if entry is None or entry.key_fingerprint != new_fingerprint or entry.size != info.size:
        return False
    if (entry.version_id or None) != (real_version(info.version_id) or None):
        return False
    return bool(entry.etag) and (entry.etag or "").strip('"') == (info.etag or "").strip('"')


async def rotate_prefix(
    client: Any,
    scheduler: Scheduler,
    bucket: str,
    prefix: str,
    *,
    old_key: SSECustomerKey,
    new_key: SSECustomerKey,
    all_versions: bool = False,
    via: Via = "auto",
    options: CopyOptions | None = None,
    delete_old_versions: bool = False,
    max_objects: int = 16,
    on_outcome: Callable[[CopyOutcome], None] | None = None,
    proven: RotationProof | None = None,
) -> list[CopyOutcome]:
    """`rotate --recursive`: every object under `prefix` (each of its versions with
    `all_versions`). Objects already under the new key are skipped (`rotate_key`); objects
    under another key fail one by one; the others go on."""
    _check_via(via)
    keys = [
        k async for k in iter_keys(client, bucket, folder_prefix(prefix), versions=all_versions)
    ]

    async def one(key: str) -> list[CopyOutcome]:
        return await rotate_key(
            client, scheduler, bucket, key, old_key=old_key, new_key=new_key,
            all_versions=all_versions, via=via, options=options,
            delete_old_versions=delete_old_versions, proven=proven,
        )  # fmt: skip

    def report(group: list[CopyOutcome]) -> None:
        for outcome in group:
            if on_outcome:
                on_outcome(outcome)

    nested = await _run_each(keys, one, max_objects, report)
    return [outcome for group in nested for outcome in group]


# -- helpers -------------------------------------------------------------------------------------


def _check_via(via: str) -> None:
    if via not in ("auto", "server", "stream"):
        raise UsageError(f"unknown copy path {via!r}", hint="choose auto, server or stream")


def rotated(bucket: str, key: str, version: str | None, result: CopyResult) -> CopyOutcome:
    """A rotation's outcome that succeeded."""
    url = object_url(bucket, key, version)
    return CopyOutcome(
        url, object_url(bucket, key, result.version_id), version, "ok", result,
        operation="rotate", bucket=bucket, key=key,
    )  # fmt: skip


def skipped_rotation(bucket: str, key: str, version: str | None) -> CopyOutcome:
    """A rotation's outcome for an object (version) already under the new key."""
    url = object_url(bucket, key, version)
    return CopyOutcome(
        url, url, version, "skipped", operation="rotate", bucket=bucket, key=key,
        reason=ALREADY_ROTATED,
    )  # fmt: skip


def failed_rotation(
    bucket: str, key: str, version: str | None, error: SSECTransferError
) -> CopyOutcome:
    """A rotation's outcome that failed with `error`."""
    url = object_url(bucket, key, version)
    return CopyOutcome(
        url, url, version, "failed", error=error, operation="rotate", bucket=bucket, key=key
    )


_T = TypeVar("_T")
_R = TypeVar("_R")


async def _run_each(
    items: Sequence[_T],
    run: Callable[[_T], Awaitable[_R]],
    max_objects: int,
    on_outcome: Callable[[_R], None] | None,
) -> list[_R]:
    """Run `run` on every item, at most `max_objects` at once; results in input order."""
    results: dict[int, _R] = {}

    async def one(indexed: tuple[int, _T]) -> None:
        index, item = indexed
        results[index] = outcome = await run(item)
        if on_outcome:
            on_outcome(outcome)

    await for_each(list(enumerate(items)), one, max_objects)
    return [results[i] for i in range(len(items))]
