"""List objects, or every version of them, with the key fingerprint where this tool knows it.

With SSE-C the server keeps no key and a listing says nothing about encryption, so the only
place that knows which key protects an object version is the local ledger: every transfer,
copy and rotation recorded there names the version (or the ETag, where the bucket is not
versioned) and the fingerprint of its key.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

import anyio

from ssec_transfer.core.errors import ErrorContext
from ssec_transfer.s3.errors import translate
from ssec_transfer.state.ledger import Ledger

log = logging.getLogger(__name__)
CLOCK_SLACK = 60.0  # seconds of clock difference tolerated between this machine and the server


@dataclass(frozen=True)
class ListedObject:
    bucket: str
    key: str
    size: int
    version_id: str | None  # None where the bucket has never been versioned
    is_latest: bool
    last_modified: str | None  # ISO 8601
    etag: str | None
    delete_marker: bool = False  # a versioned delete: no data, no size
    key_fingerprint: str | None = None  # from the ledger, when it recorded this version

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ListedPrefix:
    """A common prefix of a one-level listing (`aws s3 ls`'s `PRE name/`): a "folder"."""

    bucket: str
    prefix: str  # the whole prefix, ending in the delimiter

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ListedBucket:
    name: str
    creation_date: str | None  # ISO 8601

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def _version(value: Any) -> str | None:
    return str(value) if value and value != "null" else None


async def _pages(
    client: Any, operation: str, bucket: str, prefix: str, delimiter: str | None = None
) -> AsyncIterator[Any]:
    """Pages of a listing, with failures translated (no such bucket, access denied...)."""
    label = {"list_objects_v2": "ListObjectsV2", "list_object_versions": "ListObjectVersions"}
    ctx = ErrorContext(label[operation], bucket, prefix or None)
    extra = {"Delimiter": delimiter} if delimiter else {}
    pages = client.get_paginator(operation).paginate(Bucket=bucket, Prefix=prefix, **extra)
    iterator = pages.__aiter__()
    while True:
        try:
            page = await iterator.__anext__()
        except StopAsyncIteration:
            return
        except Exception as exc:
            raise translate(exc, ctx, key_sent=False) from exc
        yield page


def _current(bucket: str, o: dict[str, Any]) -> ListedObject:
    modified = _iso(o.get("LastModified"))
    return ListedObject(
        bucket, o["Key"], int(o.get("Size", 0)), None, True, modified, o.get("ETag")
    )


def _version_of(bucket: str, v: dict[str, Any], *, marker: bool) -> ListedObject:
    return ListedObject(
        bucket=bucket,
        key=v["Key"],
        size=0 if marker else int(v.get("Size", 0)),
        version_id=_version(v.get("VersionId")),
        is_latest=bool(v.get("IsLatest")),
        last_modified=_iso(v.get("LastModified")),
        etag=None if marker else v.get("ETag"),
        delete_marker=marker,
    )


async def _raw_pages(
    client: Any, bucket: str, prefix: str, *, versions: bool, delimiter: str | None = None
) -> AsyncIterator[tuple[list[ListedObject], list[str]]]:
    """Per page, its objects in the server's order (per key, newest version first) and, with
    a `delimiter`, its common prefixes."""
    operation = "list_object_versions" if versions else "list_objects_v2"
    async for page in _pages(client, operation, bucket, prefix, delimiter):
        prefixes = [str(p["Prefix"]) for p in page.get("CommonPrefixes") or [] if "Prefix" in p]
        if not versions:
            yield [_current(bucket, o) for o in page.get("Contents", [])], prefixes
            continue
        found = [_version_of(bucket, v, marker=False) for v in page.get("Versions", [])]
        found += [_version_of(bucket, m, marker=True) for m in page.get("DeleteMarkers", [])]
        # Versions and delete markers come in two lists; S3 orders each key newest first
        # (the sort is stable, so versions within one second keep the server's order).
        ordered = sorted(found, key=lambda o: (o.key, not o.is_latest, _negated(o.last_modified)))
        yield ordered, prefixes


async def _raw_listing(
    client: Any, bucket: str, prefix: str, *, versions: bool
) -> AsyncIterator[list[ListedObject]]:
    """One list of objects per page, in the server's order (per key, newest version first)."""
    async for objects, _ in _raw_pages(client, bucket, prefix, versions=versions):
        yield objects


def _negated(iso: str | None) -> float:
    return -datetime.fromisoformat(iso).timestamp() if iso else 0.0


# Ledger operations that wrote the object they name (a read or a key match did not).
_WRITES = frozenset({"upload", "copy", "rotate"})
_Record = tuple[str | None, str | None, int, str | None, float, str]


def _etag(value: str | None) -> str | None:
    return value.strip('"') if value else None


def _recorded(obj: ListedObject, records: list[_Record]) -> str | None:
    """The fingerprint of the newest record of exactly this object version, or None.

    The same version id where both have one. Else the same ETag and size, recorded after the
    object's last write (re-encryption keeps the ETag, the plaintext's MD5 on many servers: an
    older record describes an earlier object). Else, because some listings do not give the
    object's ETag (SeaweedFS's ListObjectVersions gives another one for the null version of
    an unversioned bucket), the write of this tool that made the object: same size, recorded
    within CLOCK_SLACK of its last-modified time."""
    modified = -_negated(obj.last_modified)
    for version_id, etag, size, fingerprint, at, _ in records:
        if version_id and obj.version_id:
            if version_id == obj.version_id:
                return fingerprint
        elif _etag(etag) == _etag(obj.etag) and size == obj.size and at + CLOCK_SLACK >= modified:
            return fingerprint
    if obj.version_id is None and obj.last_modified:
        for version_id, _, size, fingerprint, at, operation in records:
            if (
                version_id is None
                and operation in _WRITES
                and size == obj.size
                and abs(at - modified) <= CLOCK_SLACK
            ):
                return fingerprint
    return None


def _fingerprints(ledger: Ledger, endpoint: str, objects: list[ListedObject]) -> list[ListedObject]:
    """Attach the ledger's key fingerprint to each object whose exact version it recorded
    (`_recorded`). Newest record wins.

    One connection per page. `Ledger.latest` answers only for the newest record of a key,
    which is not enough when each version has its own key.
    """
    keys = sorted({o.key for o in objects if not o.delete_marker})
    records: dict[str, list[_Record]] = {}
    with closing(sqlite3.connect(ledger.path, timeout=30)) as db:
        for key in keys:
            rows = db.execute(
                "SELECT version_id, etag, size, key_fingerprint, recorded_at, operation "
                "FROM transfers WHERE endpoint = ? AND bucket = ? AND key = ? ORDER BY id DESC",
                (endpoint, objects[0].bucket, key),
            )
            records[key] = [
                (_version(v), etag, size, fp, at, op) for v, etag, size, fp, at, op in rows
            ]
    return [
        obj
        if obj.delete_marker
        else replace(obj, key_fingerprint=_recorded(obj, records.get(obj.key, [])))
        for obj in objects
    ]


class _Fingerprinter:
    """Attaches the ledger's fingerprints to each page of a listing; a ledger that cannot be
    read is reported once and the listing goes on without fingerprints."""

    def __init__(self, ledger: Ledger | None, endpoint: str | None) -> None:
        self.ledger = ledger if endpoint is not None else None
        self.endpoint = endpoint or ""

    async def __call__(self, batch: list[ListedObject]) -> list[ListedObject]:
        if self.ledger is None or not batch:
            return batch
        try:
            return await anyio.to_thread.run_sync(_fingerprints, self.ledger, self.endpoint, batch)
        except sqlite3.Error as exc:  # a listing is still useful without fingerprints
            log.warning(
                "cannot read the ledger %s (%s): no key fingerprints", self.ledger.path, exc
            )
            self.ledger = None
            return batch


async def list_objects(
    client: Any,
    bucket: str,
    prefix: str = "",
    *,
    versions: bool = False,
    ledger: Ledger | None = None,
    endpoint: str | None = None,
) -> AsyncIterator[ListedObject]:
    """Every object under `prefix` (every version and delete marker with `versions`), each
    with the fingerprint of its key where `ledger` recorded that version at `endpoint`."""
    fingerprint = _Fingerprinter(ledger, endpoint)
    async for batch in _raw_listing(client, bucket, prefix, versions=versions):
        for obj in await fingerprint(batch):
            yield obj


async def list_level(
    client: Any,
    bucket: str,
    prefix: str = "",
    *,
    versions: bool = False,
    ledger: Ledger | None = None,
    endpoint: str | None = None,
) -> AsyncIterator[ListedObject | ListedPrefix]:
    """One level under `prefix`, as `aws s3 ls` shows it: the keys starting with `prefix`
    that hold no further "/", and one `ListedPrefix` for each "folder" (the common prefix up
    to the next "/"). Per page, the folders come first, as aws prints them. `prefix` is a
    plain string prefix: `dir/` lists inside dir, `dir/pre` what in dir starts with `pre`."""
    fingerprint = _Fingerprinter(ledger, endpoint)
    async for batch, prefixes in _raw_pages(
        client, bucket, prefix, versions=versions, delimiter="/"
    ):
        for common in prefixes:
            yield ListedPrefix(bucket, common)
        for obj in await fingerprint(batch):
            yield obj


async def list_buckets(client: Any) -> list[ListedBucket]:
    """Every bucket the credentials own (ListBuckets), in the server's order."""
    try:
        answer = await client.list_buckets()
    except Exception as exc:
        raise translate(exc, ErrorContext("ListBuckets"), key_sent=False) from exc
    return [
        ListedBucket(str(b["Name"]), _iso(b.get("CreationDate"))) for b in answer.get("Buckets", [])
    ]


async def iter_keys(
    client: Any, bucket: str, prefix: str, *, versions: bool = False
) -> AsyncIterator[str]:
    """Each object name under `prefix` once (with `versions`, also names whose current version
    is a delete marker), skipping the empty `folder/` markers consoles create."""
    seen: set[str] = set()
    async for batch in _raw_listing(client, bucket, prefix, versions=versions):
        for obj in batch:
            if obj.key in seen or (obj.key.endswith("/") and obj.size == 0):
                continue
            seen.add(obj.key)
            yield obj.key


async def list_key_versions(client: Any, bucket: str, key: str) -> list[ListedObject]:
    """Every version and delete marker of exactly `key`, newest first."""
    found: list[ListedObject] = []
    async for batch in _raw_listing(client, bucket, key, versions=True):
        found.extend(obj for obj in batch if obj.key == key)
    return sorted(found, key=lambda o: (not o.is_latest, _negated(o.last_modified)))
