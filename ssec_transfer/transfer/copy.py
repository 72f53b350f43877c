"""Copy objects between keys and buckets, and rotate SSE-C keys in place, with verification.

Three ways to write the new object, tried in this order by `via="auto"`:

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
test_copy_rotate.py`): SeaweedFS 4.48 answers 501 to UploadPartCopy from SSE-C sources, 400
to a CopyObject onto the same name unless the metadata is replaced, and makes an object from
UploadPartCopy of a plain source into an SSE-C target whose ranges read but whose whole-object
GET answers 500; Ceph RGW 16 answers 501 to
CopyObject from SSE-C sources, 400 to UploadPartCopy with two different keys, and silently
stores *plaintext* from a CopyObject of a plain source into an SSE-C target. So a server path
is never trusted: success is reported only after the new object was read back in full with
the target key and its CRC32C matched the source's. Refusals (400/501) and results that fail
verification move `auto` on to the next path, and are remembered in `CopyOptions.capabilities`
so the following objects of a run skip doomed attempts.

Cost of that certainty: the stream path reads the source once (the digest comes from the bytes
passing through) and the new object once more; a server path reads the source once for its
digest (before the copy when copying onto the same object, whose old bytes are gone after) and
the new object once. Nothing is written twice.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar, cast

import aiohttp
import anyio
import botocore.exceptions as bx
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from ssec_transfer.core.checksums import ChecksumPolicy
from ssec_transfer.core.crc import combine_parts, crc32c, digest_text
from ssec_transfer.core.errors import (
    ErrorContext,
    IntegrityError,
    KeyProblemError,
    NoSuchObjectError,
    SSECTransferError,
    TransferFailedError,
    UsageError,
    WrongKeyError,
)
from ssec_transfer.core.plan import MAX_SINGLE_PUT, GiB, MiB, Part, plan_parts, plan_upload
from ssec_transfer.core.results import ObjectInfo, TransferResult
from ssec_transfer.core.scheduler import Scheduler
from ssec_transfer.core.taskgroups import task_group
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.bodies import PartBody
from ssec_transfer.s3.errors import status_of, translate, translated
from ssec_transfer.s3.listing import iter_keys, list_key_versions
from ssec_transfer.s3.multipart import create_multipart_upload
from ssec_transfer.s3.sse import copy_source_sse_params, sse_params
from ssec_transfer.transfer.download import get_object, head_object, pinned_get
from ssec_transfer.transfer.upload import abort_quietly

# What a request can fail with that the server (or the network) caused; anything else is a
# bug or an injected failure and propagates unchanged.
S3_FAILURES = (bx.BotoCoreError, bx.ClientError, aiohttp.ClientError)

Via = Literal["auto", "server", "stream"]
Method = Literal["server-copy", "server-part-copy", "stream"]
ProgressCallback = Callable[[int, int], None]  # (bytes just done, total bytes)

MAX_COPY_OBJECT = 5 * GiB  # CopyObject's limit; larger objects need UploadPartCopy
READ_CHUNK = 1 * MiB  # bytes of a response body read (and held) at a time
ABORT_TIMEOUT = 30.0
# What the engine carries over when it must write the object itself (stream path, or a
# CopyObject onto the same name that needs MetadataDirective=REPLACE).
CARRIED_HEADERS = (
    "ContentType",
    "Metadata",
    "CacheControl",
    "ContentDisposition",
    "ContentEncoding",
    "ContentLanguage",
)


@dataclass(frozen=True)
class CopyOptions:
    """Tuning and endpoint knowledge for copies; the engine builds one from its config."""

    part_size: int = 8 * MiB  # stream parts and UploadPartCopy ranges (grown past 10,000 parts)
    concurrency: int = 8  # part requests of one object in flight
    multipart_threshold: int = 8 * MiB  # from here: parallel part copy / multipart stream
    checksum: ChecksumPolicy = field(default_factory=lambda: ChecksumPolicy.from_mode("auto"))
    # Findings per endpoint: `capabilities.load_cached(endpoint)` (the doctor's `copy_object`,
    # `upload_part_copy`), updated in place with what each copy learns. Share one dict per
    # engine so a run of many objects pays for a refused server path once.
    capabilities: dict[str, str] | None = None


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


@dataclass(frozen=True)
class CopyOutcome:
    """One object of a multi-object copy or rotation: its result, or why it failed."""

    source: str
    destination: str
    version_id: str | None
    status: Literal["ok", "failed"]
    result: CopyResult | None = None
    error: SSECTransferError | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "source": self.source,
            "destination": self.destination,
            "source_version_id": self.version_id,
            "status": self.status,
        }
        if self.result is not None:
            data.update(self.result.to_dict())
        if self.error is not None:
            data["error"] = str(self.error)
            data["exit_code"] = self.error.exit_code
        return data


# -- what is being copied ---------------------------------------------------------------------


def _real_version(version_id: str | None) -> str | None:
    """Unversioned objects report VersionId "null" (or nothing); never pin to that."""
    return version_id if version_id and version_id != "null" else None


@dataclass(frozen=True)
class _Source:
    info: ObjectInfo
    head: dict[str, Any]
    sse: SSECustomerKey | None

    @property
    def version_id(self) -> str | None:
        return _real_version(self.info.version_id)

    def copy_source(self) -> dict[str, str]:
        source = {"Bucket": self.info.bucket, "Key": self.info.key}
        if self.version_id:
            source["VersionId"] = self.version_id
        return source

    def pinned_get(self) -> dict[str, Any]:
        return pinned_get(self.info, self.sse)

    def carried(self) -> dict[str, Any]:
        return {name: self.head[name] for name in CARRIED_HEADERS if self.head.get(name)}

    @property
    def url(self) -> str:
        return _url(self.info.bucket, self.info.key, self.version_id)


@dataclass(frozen=True)
class _Target:
    bucket: str
    key: str
    sse: SSECustomerKey | None

    def params(self) -> dict[str, Any]:
        return {"Bucket": self.bucket, "Key": self.key, **_sse(self.sse)}


@dataclass(frozen=True)
class _Written:
    method: Method
    etag: str | None
    version_id: str | None
    parts: int
    crc: int | None = None  # CRC32C of the source bytes that passed through (stream only)


class _Refused(Exception):
    """The server declined a server-side path (400/501): the next path may work."""

    def __init__(self, answer: str, error: SSECTransferError) -> None:
        super().__init__(answer)
        self.answer = answer
        self.error = error


def _sse(key: SSECustomerKey | None) -> dict[str, str]:
    return sse_params(key)


def _url(bucket: str, key: str, version_id: str | None = None) -> str:
    return f"s3://{bucket}/{key}" + (f"?versionId={version_id}" if version_id else "")


def _answer(exc: BaseException) -> str:
    """`501 NotImplemented`: how the server answered, for results and the capability cache."""
    status = status_of(exc)
    if status is None:
        return type(exc).__name__
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    return f"{status} {code}" if code and code != str(status) else str(status)


async def _head(
    client: Any,
    scheduler: Scheduler,
    bucket: str,
    key: str,
    sse: SSECustomerKey | None,
    version_id: str | None,
) -> tuple[ObjectInfo, dict[str, Any]]:
    async with scheduler.request():
        return await head_object(client, bucket, key, ssec=sse, version_id=version_id)


# -- endpoint knowledge -----------------------------------------------------------------------


def _shape(source: _Source, target: _Target, in_place: bool) -> str:
    """`ssec->ssec`, `plain->ssec`, ... : what servers treat differently."""
    src = "ssec" if source.sse else "plain"
    dst = "ssec" if target.sse else "plain"
    same = " same-key" if source.sse and target.sse and source.sse == target.sse else ""
    return f"{src}->{dst}{same}{' in-place' if in_place else ''}"


def _known_failure(caps: dict[str, str], method: Method, shape: str) -> str | None:
    """Why `method` is known to fail for this shape on this endpoint, if it is."""
    learned = caps.get(f"learned:{method} {shape}")
    if learned:
        return learned
    doctor = {"server-copy": "copy_object", "server-part-copy": "upload_part_copy"}.get(method)
    if doctor and shape.startswith("ssec->"):  # the doctor probes SSE-C sources
        value = caps.get(doctor)
        if value and value != "supported":
            return value
    return None


def _candidates(
    via: Via, size: int, options: CopyOptions, shape: str, caps: dict[str, str]
) -> tuple[list[Method], list[str]]:
    """Paths to try in order, and the ones skipped because the endpoint is known to fail."""
    if via == "stream":
        return ["stream"], []
    server: list[Method] = ["server-copy", "server-part-copy"]
    if size >= options.multipart_threshold:
        server.reverse()  # parallel ranges are faster for large objects
    if size > MAX_COPY_OBJECT:
        server.remove("server-copy")
    if size == 0:
        server.remove("server-part-copy")  # no byte range to copy
    if via == "server":
        return server, []
    chosen: list[Method] = []
    skipped: list[str] = []
    for method in server:
        known = _known_failure(caps, method, shape)
        if known:
            skipped.append(f"{method}: {known} (known for this endpoint)")
        else:
            chosen.append(method)
    return [*chosen, "stream"], skipped


def _is_bad_result(exc: SSECTransferError) -> bool:
    """A verification failure that means the server wrote a wrong object (not a network or
    permission problem): wrong digest or size, not encrypted as asked, unreadable."""
    if isinstance(exc, IntegrityError | KeyProblemError):
        return True
    status = exc.context.status
    return isinstance(exc, TransferFailedError) and status is not None and status >= 500


# -- public API -------------------------------------------------------------------------------


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
    options = options or CopyOptions()
    _check_via(via)
    info, head = await _head(client, scheduler, src_bucket, src_key, source_key, version_id)
    source = _Source(info, head, source_key)
    target = _Target(dst_bucket, dst_key, target_key)
    return await _copy(
        client, scheduler, source, target, via=via, options=options,
        operation="copy", progress=progress,
    )  # fmt: skip


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
    options = options or CopyOptions()
    _check_via(via)
    if old_key == new_key:
        raise UsageError(
            "the old and the new key are the same: there is nothing to rotate",
            hint="make a new key with `ssec-transfer keygen PATH`",
            context=ErrorContext("rotate", bucket, key),
        )
    info, head = await _head(client, scheduler, bucket, key, old_key, version_id)
    source = _Source(info, head, old_key)
    if version_id and source.version_id and not allow_noncurrent:
        await _require_current(client, scheduler, source)
    result = await _copy(
        client, scheduler, source, _Target(bucket, key, new_key), via=via, options=options,
        operation="rotate", progress=progress,
    )  # fmt: skip
    await _require_old_key_refused(client, scheduler, bucket, key, old_key)
    deleted = None
    if delete_old_versions and source.version_id and source.version_id != result.version_id:
        ctx = ErrorContext("DeleteObject", bucket, key)
        with translated(ctx, key_sent=False):
            async with scheduler.request():
                await client.delete_object(Bucket=bucket, Key=key, VersionId=source.version_id)
        deleted = source.version_id
    return replace(result, old_key_refused=True, deleted_version_id=deleted)


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
) -> list[CopyOutcome]:
    """Rotate every version of `key` that `old_key` opens, oldest first, so the copy of the
    current version is created last and stays current. Versions under another key are
    reported as failed (each version may have its own key); if the current version is one of
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
    outcomes: list[CopyOutcome] = []
    readable: list[str] = []
    for listed in reversed(versions):  # oldest first
        if listed.delete_marker or listed.version_id is None:
            continue
        try:
            await _head(client, scheduler, bucket, key, old_key, listed.version_id)
        except SSECTransferError as exc:
            outcomes.append(_failed(bucket, key, listed.version_id, exc))
        else:
            readable.append(listed.version_id)
    current = versions[0].version_id
    if readable and readable[-1] != current:
        error = UsageError(
            "the current version is not under the old key, so rotating this older version "
            "would make its copy the current version; not rotated",
            hint="rotate the versions under each key separately, newest key last",
            context=ErrorContext("rotate", bucket, key),
        )
        return outcomes + [_failed(bucket, key, v, error) for v in readable]
    for version in readable:
        try:
            result = await rotate_object(
                client, scheduler, bucket, key, old_key=old_key, new_key=new_key,
                version_id=version, via=via, options=options,
                delete_old_versions=delete_old_versions, allow_noncurrent=True,
                progress=progress,
            )  # fmt: skip
        except SSECTransferError as exc:
            outcomes.append(_failed(bucket, key, version, exc))
        else:
            outcomes.append(_ok(bucket, key, version, result))
    return outcomes


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
    src_prefix = _folder(src_prefix)
    keys = [k async for k in iter_keys(client, src_bucket, src_prefix)]
    jobs = [(k, _folder(dst_prefix) + k[len(src_prefix) :]) for k in keys]

    async def one(pair: tuple[str, str]) -> CopyOutcome:
        src, dst = pair
        try:
            result = await copy_object(
                client, scheduler, src_bucket, src, dst_bucket, dst,
                source_key=source_key, target_key=target_key, via=via, options=options,
            )  # fmt: skip
        except SSECTransferError as exc:
            return CopyOutcome(
                _url(src_bucket, src), _url(dst_bucket, dst), None, "failed", None, exc
            )
        source, destination = _url(src_bucket, src), _url(dst_bucket, dst)
        return CopyOutcome(source, destination, result.source_version_id, "ok", result)

    return await _run_each(jobs, one, max_objects, on_outcome)


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
) -> list[CopyOutcome]:
    """`rotate --recursive`: every object under `prefix` (each of its versions with
    `all_versions`). Objects under another key fail one by one; the others go on."""
    _check_via(via)
    keys = [k async for k in iter_keys(client, bucket, _folder(prefix), versions=all_versions)]

    async def one(key: str) -> list[CopyOutcome]:
        try:
            if all_versions:
                return await rotate_all_versions(
                    client, scheduler, bucket, key, old_key=old_key, new_key=new_key, via=via,
                    options=options, delete_old_versions=delete_old_versions,
                )  # fmt: skip
            result = await rotate_object(
                client, scheduler, bucket, key, old_key=old_key, new_key=new_key, via=via,
                options=options, delete_old_versions=delete_old_versions,
            )  # fmt: skip
        except SSECTransferError as exc:
            return [_failed(bucket, key, None, exc)]
        return [_ok(bucket, key, result.source_version_id, result)]

    def report(group: list[CopyOutcome]) -> None:
        for outcome in group:
            if on_outcome:
                on_outcome(outcome)

    nested = await _run_each(keys, one, max_objects, report)
    return [outcome for group in nested for outcome in group]


# -- helpers of the public API ----------------------------------------------------------------


def _check_via(via: str) -> None:
    if via not in ("auto", "server", "stream"):
        raise UsageError(f"unknown copy path {via!r}", hint="choose auto, server or stream")


def _folder(prefix: str) -> str:
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def _ok(bucket: str, key: str, version: str | None, result: CopyResult) -> CopyOutcome:
    url = _url(bucket, key, version)
    return CopyOutcome(url, _url(bucket, key, result.version_id), version, "ok", result=result)


def _failed(bucket: str, key: str, version: str | None, error: SSECTransferError) -> CopyOutcome:
    url = _url(bucket, key, version)
    return CopyOutcome(url, url, version, "failed", error=error)


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
    limit = anyio.CapacityLimiter(max(1, max_objects))

    async def one(index: int, item: _T) -> None:
        async with limit:
            outcome = await run(item)
        results[index] = outcome
        if on_outcome:
            on_outcome(outcome)

    async with task_group() as tg:
        for index, item in enumerate(items):
            tg.start_soon(one, index, item)
    return [results[i] for i in range(len(items))]


async def _require_current(client: Any, scheduler: Scheduler, source: _Source) -> None:
    """Refuse to make an old version current by rotating it."""
    info = source.info
    try:
        current, _ = await _head(client, scheduler, info.bucket, info.key, source.sse, None)
        is_current = _real_version(current.version_id) == source.version_id
    except SSECTransferError:
        is_current = False  # the current version is under another key, or a delete marker
    if not is_current:
        raise UsageError(
            f"version {source.version_id} is not the current version; its re-encrypted copy "
            "would become the current version",
            hint="use --all-versions, which rotates oldest first so the current version "
            "stays current",
            context=ErrorContext("rotate", info.bucket, info.key),
        )


async def _require_old_key_refused(
    client: Any, scheduler: Scheduler, bucket: str, key: str, old_key: SSECustomerKey
) -> None:
    """After a rotation the current object must refuse the old key."""
    try:
        await _head(client, scheduler, bucket, key, old_key, None)
    except WrongKeyError:
        return
    raise IntegrityError(
        "the old key still opens the rotated object",
        hint="another writer may have replaced the object meanwhile; check it with "
        "`ssec-transfer head` and rerun the rotation",
        context=ErrorContext("rotate", bucket, key),
    )


# -- one copy: try the paths, verify the result ----------------------------------------------


async def _copy(
    client: Any,
    scheduler: Scheduler,
    source: _Source,
    target: _Target,
    *,
    via: Via,
    options: CopyOptions,
    operation: str,
    progress: ProgressCallback | None,
) -> CopyResult:
    started = time.perf_counter()
    caps = options.capabilities if options.capabilities is not None else {}
    info = source.info
    in_place = (info.bucket, info.key) == (target.bucket, target.key)
    shape = _shape(source, target, in_place)
    methods, attempts = _candidates(via, info.size, options, shape, caps)
    source_crc: int | None = None
    refusal: SSECTransferError | None = None
    for method in methods:
        if method == "stream":
            written = await _stream_copy(client, scheduler, source, target, options, progress)
            if source_crc is not None and written.crc != source_crc:
                raise IntegrityError(
                    "the source read differently twice under one ETag",
                    hint="rerun the copy",
                    context=ErrorContext("GetObject", info.bucket, info.key),
                )
            source_crc = written.crc
        else:
            if in_place and source_crc is None:  # the old bytes are gone after the copy
                source_crc = await _digest(client, scheduler, info, source.sse, options)
            try:
                written = await _server_path(
                    client, scheduler, method, source, target, options, caps, in_place
                )
            except _Refused as refused:
                attempts.append(f"{method}: {refused.answer}")
                caps[f"learned:{method} {shape}"] = refused.answer
                refusal = refused.error
                continue
            if progress:
                progress(info.size, info.size)
            if source_crc is None:
                source_crc = await _digest(client, scheduler, info, source.sse, options)
        assert source_crc is not None
        try:
            new = await _verify(client, scheduler, target, written, info.size, source_crc, options)
        except SSECTransferError as exc:
            if method == "stream" or via == "server" or not _is_bad_result(exc):
                raise
            survived = not in_place or (
                source.version_id is not None and written.version_id != source.version_id
            )
            caps[f"learned:{method} {shape}"] = f"wrong result ({type(exc).__name__})"
            if not survived:
                raise IntegrityError(
                    f"the server's {method} does not read back as the source did "
                    f"({exc.message}); the object was replaced by it",
                    hint="restore the object from a backup; report this server bug",
                    context=exc.context,
                ) from exc
            attempts.append(f"{method}: wrong result, removed ({exc.message})")
            await _delete_written(client, scheduler, target, written, source, in_place)
            continue
        return CopyResult(
            operation=operation,
            bucket=target.bucket,
            key=target.key,
            path=source.url,
            size=info.size,
            etag=new.etag,
            version_id=new.version_id,
            key_fingerprint=target.sse.fingerprint if target.sse else None,
            parts=written.parts,
            seconds=time.perf_counter() - started,
            checksum=digest_text(source_crc),
            via=method,
            source_bucket=info.bucket,
            source_key=info.key,
            source_version_id=source.version_id,
            source_etag=info.etag,
            source_key_fingerprint=source.sse.fingerprint if source.sse else None,
            verified=True,
            attempts=tuple(attempts),
        )
    # Only `via="server"` ends here: every server path was refused. Not a key problem even
    # where the server says "MD5 of the key did not match" (Ceph, for two different keys).
    context = (
        refusal.context if refusal is not None else ErrorContext("copy", target.bucket, target.key)
    )
    raise TransferFailedError(
        f"the server refuses a server-side copy of this object ({'; '.join(attempts)})",
        hint="use --via stream (or auto) to copy through this machine",
        context=context,
    )


async def _delete_written(
    client: Any,
    scheduler: Scheduler,
    target: _Target,
    written: _Written,
    source: _Source,
    in_place: bool,
) -> None:
    """Remove a wrong server-side result before the next path writes the object again."""
    version = _real_version(written.version_id)
    if in_place and not version:
        return  # never delete the only copy (callers refuse this case before)
    params: dict[str, Any] = {"Bucket": target.bucket, "Key": target.key}
    if version:
        if version == source.version_id:
            return
        params["VersionId"] = version
    with translated(ErrorContext("DeleteObject", target.bucket, target.key), key_sent=False):
        async with scheduler.request():
            await client.delete_object(**params)


async def _verify(
    client: Any,
    scheduler: Scheduler,
    target: _Target,
    written: _Written,
    size: int,
    source_crc: int,
    options: CopyOptions,
) -> ObjectInfo:
    """Read the new object once, in full, with the target key; it must be the source."""
    version = _real_version(written.version_id)
    info, _ = await _head(client, scheduler, target.bucket, target.key, target.sse, version)
    ctx = ErrorContext("verify", target.bucket, target.key)
    if target.sse and info.key_fingerprint and info.key_fingerprint != target.sse.fingerprint:
        raise IntegrityError("the new object is under another key", context=ctx)
    if info.size != size:
        raise IntegrityError(
            f"the new object has {info.size} bytes, the source {size}", context=ctx
        )
    crc = await _digest(
        client, scheduler, info, target.sse, options, operation="verify", whole_first=True
    )
    if crc != source_crc:
        raise IntegrityError(
            f"the new object's CRC32C {digest_text(crc)} differs from the source's "
            f"{digest_text(source_crc)}",
            hint="the copy is wrong; it was not reported as done",
            context=ctx,
        )
    return info


# -- reading: one object's CRC32C, ranges in parallel -----------------------------------------


async def _digest(
    client: Any,
    scheduler: Scheduler,
    info: ObjectInfo,
    sse: SSECustomerKey | None,
    options: CopyOptions,
    *,
    operation: str = "GetObject",
    whole_first: bool = False,
) -> int:
    """CRC32C of an object version, read in parallel ranges pinned by VersionId and If-Match,
    holding at most READ_CHUNK bytes per range in flight.

    `whole_first` reads the first range as the start of a GET without Range, proving the
    server serves the object whole too: SeaweedFS answers 500 to a whole-object GET of an
    SSE-C object assembled by UploadPartCopy from a plain source, though every range reads.
    """
    pin = pinned_get(info, sse)
    ranged = info.size > options.multipart_threshold
    parts = plan_parts(info.size, options.part_size) if ranged else [Part(1, 0, info.size)]
    crcs: dict[int, int] = {}

    async def read(part: Part) -> None:
        async with (
            scheduler.budget.reserve(min(max(part.length, 1), READ_CHUNK)),
            scheduler.request(),
        ):
            crcs[part.number] = await _get_range(
                client, pin, part, sse, ranged=ranged, operation=operation,
                whole=whole_first and ranged and part.number == 1, size=info.size,
            )  # fmt: skip

    await _each_part(parts, read, options.concurrency)
    return combine_parts((crcs[p.number], p.length) for p in parts)


async def _get_range(
    client: Any,
    pin: dict[str, Any],
    part: Part,
    sse: SSECustomerKey | None,
    *,
    ranged: bool,
    operation: str = "GetObject",
    into: bytearray | None = None,
    whole: bool = False,
    size: int | None = None,
) -> int:
    """GET one range (copying it into `into` if given); return its CRC32C. With `whole`, the
    range is read as the start of a GET of the whole `size`-byte object, then dropped."""
    ctx = ErrorContext(operation, pin["Bucket"], pin["Key"], part.number if ranged else None)
    params = dict(pin)
    if ranged and part.length > 0 and not whole:
        params["Range"] = part.http_range
    resp = await get_object(client, params, ctx, key_sent=sse is not None)
    if whole and resp.get("ContentLength") != size:
        raise IntegrityError(
            f"a whole-object GET announced {resp.get('ContentLength')} bytes, not {size}",
            context=ctx,
        )
    received = crc = 0
    async with resp["Body"] as body:
        while received < part.length:
            try:
                chunk: bytes = await body.read(min(READ_CHUNK, part.length - received))
            except Exception as exc:
                raise translate(exc, ctx, key_sent=sse is not None) from exc
            if not chunk:
                raise IntegrityError(
                    f"expected {part.length} bytes, the body ended after {received}",
                    hint="rerun; nothing was replaced",
                    context=ctx,
                )
            if into is not None:
                into[received : received + len(chunk)] = chunk
            crc = crc32c(chunk, crc)
            received += len(chunk)
        if not whole and await body.read(1):
            raise IntegrityError(
                f"the server sent more than the {part.length} bytes asked for", context=ctx
            )
    return crc


async def _each_part(
    parts: list[Part], work: Callable[[Part], Awaitable[None]], concurrency: int
) -> None:
    """Run `work` on every part with at most `concurrency` workers (a producer, N consumers)."""
    workers = max(1, min(concurrency, len(parts)))
    send, receive = anyio.create_memory_object_stream[Part](max_buffer_size=workers)

    async def produce(send: ObjectSendStream[Part]) -> None:
        async with send:
            for part in parts:
                await send.send(part)

    async def consume(receive: ObjectReceiveStream[Part]) -> None:
        async with receive:
            async for part in receive:
                await work(part)

    async with task_group() as tg:
        tg.start_soon(produce, send)
        for _ in range(workers):
            tg.start_soon(consume, receive.clone())
        receive.close()


# -- server-side paths -----------------------------------------------------------------------


def _refused_or_error(exc: BaseException, ctx: ErrorContext) -> Exception:
    """400/501 to a copy request: the server declines this path (the source key was already
    proven by a HEAD). Anything else is a real failure."""
    error = translate(exc, ctx, key_sent=True, writing=True)
    if status_of(exc) in (400, 501):
        return _Refused(_answer(exc), error)
    return error


async def _server_path(
    client: Any,
    scheduler: Scheduler,
    method: Method,
    source: _Source,
    target: _Target,
    options: CopyOptions,
    caps: dict[str, str],
    in_place: bool,
) -> _Written:
    if method == "server-copy":
        return await _server_copy(client, scheduler, source, target, caps, in_place)
    return await _server_part_copy(client, scheduler, source, target, options)


async def _server_copy(
    client: Any,
    scheduler: Scheduler,
    source: _Source,
    target: _Target,
    caps: dict[str, str],
    in_place: bool,
) -> _Written:
    """One CopyObject. Onto the same name, SeaweedFS wants the metadata "changed"
    (MetadataDirective=REPLACE, carrying the source's) even though the key changes."""
    ctx = ErrorContext("CopyObject", target.bucket, target.key)
    params: dict[str, Any] = {
        **target.params(),
        "CopySource": source.copy_source(),
        **copy_source_sse_params(source.sse),
    }
    if source.info.etag:
        params["CopySourceIfMatch"] = source.info.etag
    directives = ["COPY", "REPLACE"] if in_place else ["COPY"]
    if in_place and caps.get("learned:copy onto itself") == "REPLACE":
        directives = ["REPLACE"]
    for directive in directives:
        extra = {"MetadataDirective": directive}
        if directive == "REPLACE":
            extra.update(source.carried())
        try:
            async with scheduler.request():
                resp = await client.copy_object(**params, **extra)
        except S3_FAILURES as exc:
            failure = _refused_or_error(exc, ctx)
            if isinstance(failure, _Refused) and directive != directives[-1]:
                continue
            raise failure from exc
        if directive == "REPLACE":
            caps["learned:copy onto itself"] = "REPLACE"
        etag = resp.get("CopyObjectResult", {}).get("ETag")
        return _Written("server-copy", etag, resp.get("VersionId"), 1)
    raise AssertionError("unreachable")  # pragma: no cover


async def _server_part_copy(
    client: Any,
    scheduler: Scheduler,
    source: _Source,
    target: _Target,
    options: CopyOptions,
) -> _Written:
    """Parallel UploadPartCopy. Part 1 goes alone first, so a server that refuses costs one
    request; any failure aborts the upload (shielded), leaving the destination untouched."""
    parts = plan_upload(source.info.size, part_size=None, preferred=options.part_size)
    common = target.params()
    upload_id = await create_multipart_upload(client, scheduler, {**common, **source.carried()})
    copy_params: dict[str, Any] = {
        **common,
        "UploadId": upload_id,
        "CopySource": source.copy_source(),
        **copy_source_sse_params(source.sse),
    }
    if source.info.etag:
        copy_params["CopySourceIfMatch"] = source.info.etag
    etags: dict[int, str] = {}

    async def copy_part(part: Part) -> None:
        ctx = ErrorContext("UploadPartCopy", target.bucket, target.key, part.number)
        try:
            async with scheduler.request():
                resp = await client.upload_part_copy(
                    **copy_params, PartNumber=part.number, CopySourceRange=part.http_range
                )
        except S3_FAILURES as exc:
            raise _refused_or_error(exc, ctx) from exc
        etags[part.number] = resp["CopyPartResult"]["ETag"]

    try:
        await copy_part(parts[0])
        await _each_part(parts[1:], copy_part, options.concurrency)
        ctx = ErrorContext("CompleteMultipartUpload", target.bucket, target.key)
        with translated(ctx, key_sent=True, writing=True):
            async with scheduler.request():
                done = await client.complete_multipart_upload(
                    **common,
                    UploadId=upload_id,
                    MultipartUpload={
                        "Parts": [{"PartNumber": p.number, "ETag": etags[p.number]} for p in parts]
                    },
                )
    except BaseException:
        with anyio.move_on_after(ABORT_TIMEOUT, shield=True):
            await abort_quietly(client, target.bucket, target.key, upload_id)
        raise
    return _Written("server-part-copy", done.get("ETag") or None, done.get("VersionId"), len(parts))


# -- streamed path -----------------------------------------------------------------------------


async def _stream_copy(
    client: Any,
    scheduler: Scheduler,
    source: _Source,
    target: _Target,
    options: CopyOptions,
    progress: ProgressCallback | None,
) -> _Written:
    """Re-encrypt through this machine: small objects with one GET and one PutObject, others
    as a multipart upload whose parts are ranged GETs held in the byte budget."""
    size = source.info.size
    if size < options.multipart_threshold and size <= MAX_SINGLE_PUT:
        return await _stream_single(client, scheduler, source, target, options, progress)
    parts = plan_upload(size, part_size=None, preferred=options.part_size)
    algorithm = options.checksum.algorithm
    common = target.params()
    create_extra = {"ChecksumAlgorithm": algorithm.name} if algorithm else {}
    upload_id = await create_multipart_upload(
        client, scheduler, {**common, **source.carried(), **create_extra}
    )
    pin = source.pinned_get()
    completed: dict[int, dict[str, Any]] = {}
    crcs: dict[int, int] = {}
    if progress:
        progress(0, size)

    async def move(part: Part) -> None:
        async with scheduler.budget.reserve(part.length):
            data = bytearray(part.length)
            async with scheduler.request():
                crc = await _get_range(client, pin, part, source.sse, ranged=True, into=data)
            checksum = await _checksum_params(options.checksum, data, crc)
            ctx = ErrorContext("UploadPart", target.bucket, target.key, part.number)
            with translated(ctx, key_sent=True, writing=True):
                async with scheduler.request():
                    resp = await client.upload_part(
                        **common,
                        UploadId=upload_id,
                        PartNumber=part.number,
                        Body=PartBody(cast(bytes, data)),
                        **checksum,
                    )
        _check_echo(resp, checksum, ctx)
        crcs[part.number] = crc
        completed[part.number] = {"PartNumber": part.number, "ETag": resp["ETag"], **checksum}
        if progress:
            progress(part.length, size)

    try:
        await _each_part(parts, move, options.concurrency)
        ctx = ErrorContext("CompleteMultipartUpload", target.bucket, target.key)
        with translated(ctx, key_sent=True, writing=True):
            async with scheduler.request():
                done = await client.complete_multipart_upload(
                    **common,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": [completed[p.number] for p in parts]},
                )
    except BaseException:
        with anyio.move_on_after(ABORT_TIMEOUT, shield=True):
            await abort_quietly(client, target.bucket, target.key, upload_id)
        raise
    crc = combine_parts((crcs[p.number], p.length) for p in parts)
    return _Written("stream", done.get("ETag") or None, done.get("VersionId"), len(parts), crc)


async def _stream_single(
    client: Any,
    scheduler: Scheduler,
    source: _Source,
    target: _Target,
    options: CopyOptions,
    progress: ProgressCallback | None,
) -> _Written:
    size = source.info.size
    part = Part(1, 0, size)
    ctx = ErrorContext("PutObject", target.bucket, target.key)
    async with scheduler.budget.reserve(max(size, 1)):
        data = bytearray(size)
        async with scheduler.request():
            crc = await _get_range(
                client, source.pinned_get(), part, source.sse, ranged=False, into=data
            )
        checksum = await _checksum_params(options.checksum, data, crc)
        with translated(ctx, key_sent=True, writing=True):
            async with scheduler.request():
                resp = await client.put_object(
                    **target.params(),
                    **source.carried(),
                    Body=PartBody(cast(bytes, data)),
                    **checksum,
                )
    _check_echo(resp, checksum, ctx)
    if progress:
        progress(size, size)
    return _Written("stream", resp.get("ETag"), resp.get("VersionId"), 1, crc)


async def _checksum_params(policy: ChecksumPolicy, data: bytearray, crc: int) -> dict[str, str]:
    """The part's checksum header: CRC32C is already known; others cost one pass in a thread."""
    algorithm = policy.algorithm
    if algorithm is None:
        return {}
    if algorithm.name == "CRC32C":
        value = base64.b64encode(crc.to_bytes(4, "big")).decode("ascii")
    else:
        value = await anyio.to_thread.run_sync(algorithm.of, cast(bytes, data))
    return {algorithm.param: value}


def _check_echo(resp: dict[str, Any], sent: dict[str, str], ctx: ErrorContext) -> None:
    """Servers that verify checksums echo them; a different echo means different bytes."""
    for param, value in sent.items():
        echoed = resp.get(param)
        if echoed is not None and echoed != value:
            raise IntegrityError(
                f"the server computed {echoed}, the client sent {value}",
                hint="the data was corrupted in transit; rerun",
                context=ctx,
            )
