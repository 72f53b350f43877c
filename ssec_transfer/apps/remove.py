"""`ssec-transfer rm`: deleting objects, versions and delete markers.

Planning is apart from I/O. The pure half decides which keys and versions go (`select`, with
the `--include/--exclude` rules of `bulk`), cuts them into DeleteObjects requests of at most
1000 keys (`batches`) and reads each answer back into one outcome per key (`outcomes_of`);
the I/O half lists the prefix or the versions of a key and sends the requests, a bounded
number at a time on the engine's scheduler.

No SSE-C key is involved: S3's DeleteObject and DeleteObjects take none, for encrypted
objects as for plain ones. A delete of a name that does not exist succeeds (S3 answers 204
whatever was there); on a versioned bucket a delete without a version id adds a delete marker
and keeps the data, while a delete of a version id removes that version for good.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

from ssec_transfer.apps.bulk import FilterRule, is_included
from ssec_transfer.apps.sources import printable
from ssec_transfer.core.errors import (
    AccessDeniedError,
    ErrorContext,
    NoSuchObjectError,
    NoSuchVersionError,
    SSECTransferError,
    TransferFailedError,
)
from ssec_transfer.core.report import object_record
from ssec_transfer.core.scheduler import Scheduler
from ssec_transfer.core.taskgroups import for_each
from ssec_transfer.s3.errors import translate
from ssec_transfer.s3.listing import ListedObject, list_key_versions, list_objects
from ssec_transfer.s3.urls import folder_prefix
from ssec_transfer.state.ledger import Ledger

MAX_KEYS_PER_REQUEST = 1000  # S3's limit for one DeleteObjects request
NULL_VERSION = "null"  # S3's id of the version written while versioning was off

T = TypeVar("T")
Status = Literal["ok", "failed", "dryrun"]


@dataclass(frozen=True)
class RemovalTarget:
    """One thing to delete: the current object of `key` (`version_id` None: on a versioned
    bucket, a delete marker is added), or exactly one version or delete marker."""

    bucket: str
    key: str
    version_id: str | None = None
    delete_marker: bool = False  # this version is itself a delete marker
    size: int | None = None
    etag: str | None = None
    key_fingerprint: str | None = None  # the key that protected it, where the ledger knew

    @property
    def url(self) -> str:
        """For display: a name's bytes that are not UTF-8 are shown as \\xNN."""
        return f"s3://{self.bucket}/{printable(self.key)}"

    def describe(self) -> str:
        """`s3://b/k`, with the version (or delete marker) it names."""
        if self.version_id is None:
            return self.url
        kind = "delete marker" if self.delete_marker else "version"
        return f"{self.url} ({kind} {self.version_id})"


@dataclass(frozen=True)
class RemovalPlan:
    """What a run deletes, in listing order; `excluded` counts what --include/--exclude
    left out on purpose."""

    targets: list[RemovalTarget]
    excluded: int = 0


@dataclass(frozen=True)
class RemoveOutcome:
    target: RemovalTarget
    status: Status
    error: SSECTransferError | None = None
    error_code: str | None = None  # the server's code for this key (DeleteObjects' Errors)
    # The delete marker a delete without version id added on a versioned bucket.
    created_delete_marker: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON line (`core.report.object_record`), plus what a delete adds."""
        t = self.target
        return object_record(
            "delete",
            self.status,
            source=t.url,
            bucket=t.bucket,
            key=printable(t.key),
            size=t.size,
            seconds=self.seconds,
            etag=t.etag,
            version_id=t.version_id,
            key_fingerprint=t.key_fingerprint,
            error=self.error,
            extra={
                "delete_marker": t.delete_marker,
                "created_delete_marker": self.created_delete_marker,
                "error_code": self.error_code,
            },
        )


# -- planning (pure) -----------------------------------------------------------------------------


def select(
    listed: Iterable[ListedObject], prefix: str, rules: Sequence[FilterRule], *, versions: bool
) -> RemovalPlan:
    """The targets among `listed` (all under `prefix`): the rules apply to each key relative to
    `prefix`, as for `get --recursive`. With `versions`, each version and delete marker is a
    target of its own (the version S3 calls "null" by that name); without, each key once."""
    targets: list[RemovalTarget] = []
    excluded = 0
    seen: set[str] = set()
    for obj in listed:
        if not is_included(obj.key[len(prefix) :], rules):
            excluded += 0 if obj.key in seen else 1
            seen.add(obj.key)
            continue
        if versions:
            version = obj.version_id or NULL_VERSION
            targets.append(
                RemovalTarget(
                    obj.bucket, obj.key, version, obj.delete_marker,
                    None if obj.delete_marker else obj.size, obj.etag, obj.key_fingerprint,
                )
            )  # fmt: skip
        elif obj.key not in seen:
            targets.append(
                RemovalTarget(
                    obj.bucket, obj.key, None, False, obj.size, obj.etag, obj.key_fingerprint
                )
            )
        seen.add(obj.key)
    return RemovalPlan(targets, excluded)


def batches(items: Sequence[T], size: int = MAX_KEYS_PER_REQUEST) -> list[list[T]]:
    """`items` in order, cut into lists of `size` (the last one shorter): one DeleteObjects
    request each."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, not {size}")
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def delete_request(batch: Sequence[RemovalTarget]) -> dict[str, Any]:
    """The `Delete` parameter of DeleteObjects for one batch. Not quiet: the answer names
    every key it deleted, so each outcome is the server's word, not an assumption."""
    objects: list[dict[str, str]] = []
    for t in batch:
        entry = {"Key": t.key}
        if t.version_id is not None:
            entry["VersionId"] = t.version_id
        objects.append(entry)
    return {"Objects": objects, "Quiet": False}


def _key_error(target: RemovalTarget, code: str, message: str) -> SSECTransferError:
    """A per-key failure of DeleteObjects, named with the server's code and message."""
    ctx = ErrorContext("DeleteObjects", target.bucket, target.key)
    text = f"{code or 'error'}: {message}" if message else code or "refused without a reason"
    if target.version_id is not None:
        text += f" (version {target.version_id})"
    if code == "AccessDenied":
        return AccessDeniedError(text, context=ctx)
    if code == "NoSuchVersion":
        return NoSuchVersionError(text, context=ctx)
    if code == "NoSuchKey":
        return NoSuchObjectError(text, context=ctx)
    return TransferFailedError(text, context=ctx)


def _version_of(entry: dict[str, Any]) -> str | None:
    value = entry.get("VersionId")
    return str(value) if value else None


def outcomes_of(
    batch: Sequence[RemovalTarget], answer: dict[str, Any], *, seconds: float = 0.0
) -> list[RemoveOutcome]:
    """One outcome per target of `batch` from the DeleteObjects answer: `Deleted` entries are
    ok (with the delete marker a plain delete added), `Errors` entries failed with the
    server's code and message; a key the answer does not mention failed too (never assumed
    deleted). Entries are matched on key and version id."""
    deleted: dict[tuple[str, str | None], dict[str, Any]] = {}
    for entry in answer.get("Deleted") or []:
        deleted[(str(entry.get("Key")), _version_of(entry))] = entry
    errors: dict[tuple[str, str | None], dict[str, Any]] = {}
    for entry in answer.get("Errors") or []:
        errors[(str(entry.get("Key")), _version_of(entry))] = entry
    outcomes = []
    for t in batch:
        ident = (t.key, t.version_id)
        # Some servers leave the version id out of their answer for a plain delete: match
        # such an entry on the key alone.
        loose = (t.key, None)
        if ident in errors or (t.version_id is None and loose in errors):
            e = errors.get(ident) or errors[loose]
            code, message = str(e.get("Code") or ""), str(e.get("Message") or "")
            err = _key_error(t, code, message)
            outcomes.append(RemoveOutcome(t, "failed", err, code or None, seconds=seconds))
        elif ident in deleted or loose in deleted:
            d = deleted.get(ident) or deleted[loose]
            marker = d.get("DeleteMarkerVersionId") if t.version_id is None else None
            outcomes.append(
                RemoveOutcome(t, "ok", created_delete_marker=marker or None, seconds=seconds)
            )
        else:
            err = TransferFailedError(
                "the server's DeleteObjects answer does not mention this key: not deleted, "
                "or not confirmed",
                hint="list it with `ssec-transfer ls` and run rm again",
                context=ErrorContext("DeleteObjects", t.bucket, t.key),
            )
            outcomes.append(RemoveOutcome(t, "failed", err, seconds=seconds))
    return outcomes


# -- listing and deleting ------------------------------------------------------------------------


async def plan_prefix(
    client: Any,
    bucket: str,
    prefix: str,
    *,
    versions: bool,
    rules: Sequence[FilterRule] = (),
    ledger: Ledger | None = None,
    endpoint: str | None = None,
) -> RemovalPlan:
    """What `rm --recursive` deletes under the folder `prefix` (`folder_prefix`): every
    object, or with `versions` every version and delete marker; each with the fingerprint
    of its key where `ledger` recorded it at `endpoint` (for the record of what went)."""
    prefix = folder_prefix(prefix)
    listed = [
        obj
        async for obj in list_objects(
            client, bucket, prefix, versions=versions, ledger=ledger, endpoint=endpoint
        )
    ]
    return select(listed, prefix, rules, versions=versions)


async def plan_versions(client: Any, bucket: str, key: str) -> RemovalPlan:
    """Every version and delete marker of exactly `key` (`rm --all-versions`)."""
    listed = await list_key_versions(client, bucket, key)
    return select(listed, key, (), versions=True)


async def delete_one(client: Any, target: RemovalTarget) -> RemoveOutcome:
    """One DeleteObject. A failure (no such bucket, access denied, network) is raised as the
    tool's error: with one object there is nothing else to go on with."""
    params: dict[str, Any] = {"Bucket": target.bucket, "Key": target.key}
    if target.version_id is not None:
        params["VersionId"] = target.version_id
    started = time.perf_counter()
    try:
        answer = await client.delete_object(**params)
    except Exception as exc:
        ctx = ErrorContext("DeleteObject", target.bucket, target.key)
        raise translate(exc, ctx, key_sent=False) from exc
    marker = answer.get("VersionId") if answer.get("DeleteMarker") else None
    if target.version_id is not None:
        # Deleting a version that was a delete marker says so; nothing new was added.
        was_marker = bool(answer.get("DeleteMarker")) or target.delete_marker
        target = replace(target, delete_marker=was_marker)
        marker = None
    seconds = time.perf_counter() - started
    return RemoveOutcome(target, "ok", created_delete_marker=marker, seconds=seconds)


async def delete_many(
    client: Any,
    scheduler: Scheduler,
    targets: Sequence[RemovalTarget],
    *,
    concurrency: int,
    on_outcome: Callable[[RemoveOutcome], None] | None = None,
    batch_size: int = MAX_KEYS_PER_REQUEST,
) -> list[RemoveOutcome]:
    """Delete `targets` with DeleteObjects, `batch_size` keys a request and at most
    `concurrency` requests at once (each also holds a slot of `scheduler`). A request that
    fails as a whole fails each of its keys with that error; the other batches go on."""
    outcomes: list[RemoveOutcome] = []
    bucket_of = {t.bucket for t in targets}
    if len(bucket_of) > 1:
        raise ValueError("one DeleteObjects run covers one bucket")

    async def run(batch: list[RemovalTarget]) -> None:
        started = time.perf_counter()
        try:
            async with scheduler.request():
                answer = await client.delete_objects(
                    Bucket=batch[0].bucket, Delete=delete_request(batch)
                )
        except Exception as exc:
            ctx = ErrorContext("DeleteObjects", batch[0].bucket, None)
            err = translate(exc, ctx, key_sent=False)
            seconds = time.perf_counter() - started
            done = [RemoveOutcome(t, "failed", err, seconds=seconds) for t in batch]
        else:
            done = outcomes_of(batch, answer, seconds=time.perf_counter() - started)
        outcomes.extend(done)
        if on_outcome is not None:
            for outcome in done:
                on_outcome(outcome)

    await for_each(batches(targets, batch_size), run, concurrency)
    return outcomes
