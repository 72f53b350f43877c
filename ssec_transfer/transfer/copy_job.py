"""One copy of one object version: what every request of it needs, held once.

A `CopyJob` is to copies what `UploadJob` and `DownloadJob` are to uploads and downloads: the
client, the scheduler, the source (as a HEAD saw it, with its key), the target and its key, the
options, progress and the endpoint knowledge the copy reads and adds to. The paths
(`copy_paths`), verification (`copy_verify`) and the order they run in (`copy_run`) take it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ssec_transfer.core.plan import MAX_SINGLE_PUT, MiB
from ssec_transfer.core.results import ObjectInfo, ProgressCallback
from ssec_transfer.core.scheduler import Scheduler
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.keys.seal import METADATA_NAME, reseal
from ssec_transfer.s3.requests import ObjectRef, head_object, pinned_get, real_version
from ssec_transfer.s3.sse import copy_source_sse_params
from ssec_transfer.transfer.copy_plan import CopyOptions, Method, shape

READ_CHUNK = 1 * MiB  # bytes of a response body read (and held) at a time
# What a copy carries over when it must set the metadata itself (stream path, multipart
# create, or a CopyObject onto the same name that needs MetadataDirective=REPLACE).
CARRIED_HEADERS = (
    "ContentType",
    "Metadata",
    "CacheControl",
    "ContentDisposition",
    "ContentEncoding",
    "ContentLanguage",
)


def object_url(bucket: str, key: str, version_id: str | None = None) -> str:
    """`s3://bucket/key?versionId=...`, as results and outcomes name objects."""
    return f"s3://{bucket}/{key}" + (f"?versionId={version_id}" if version_id else "")


async def head(
    client: Any, scheduler: Scheduler, obj: ObjectRef, version_id: str | None
) -> tuple[ObjectInfo, dict[str, Any]]:
    """HeadObject in a request slot."""
    async with scheduler.request():
        return await head_object(client, obj, version_id=version_id)


@dataclass(frozen=True)
class CopySource:
    """The source version as its HEAD saw it: every read and copy of it is pinned to that."""

    info: ObjectInfo
    head: dict[str, Any]
    sse: SSECustomerKey | None

    @property
    def version_id(self) -> str | None:
        return real_version(self.info.version_id)

    @property
    def url(self) -> str:
        return object_url(self.info.bucket, self.info.key, self.version_id)

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(self.info.bucket, self.info.key, self.sse)

    def pinned_get(self) -> dict[str, Any]:
        return pinned_get(self.info, self.sse)

    def copy_params(self) -> dict[str, Any]:
        """CopySource (with VersionId), its key and CopySourceIfMatch: the server copies the
        very version the HEAD saw, or refuses with 412."""
        source: dict[str, str] = {"Bucket": self.info.bucket, "Key": self.info.key}
        if self.version_id:
            source["VersionId"] = self.version_id
        params: dict[str, Any] = {"CopySource": source, **copy_source_sse_params(self.sse)}
        if self.info.etag:
            params["CopySourceIfMatch"] = self.info.etag
        return params

    @property
    def sealed(self) -> bool:
        """Whether the source carries sealed source facts (`keys.seal`), which only a copy
        that sets the metadata itself can carry over, sealed again for the target."""
        return METADATA_NAME in (self.head.get("Metadata") or {})

    def carried(self, target: ObjectRef) -> dict[str, Any]:
        """The source's headers for a write of `target`, its seal opened under the source's
        key and name and sealed again under the target's (or dropped if it does not open)."""
        carried = {name: self.head[name] for name in CARRIED_HEADERS if self.head.get(name)}
        if self.sealed:
            info = self.info
            carried["Metadata"] = reseal(
                carried["Metadata"],
                (self.sse, info.bucket, info.key),
                (target.sse, target.bucket, target.key),
            )
        return carried


@dataclass(frozen=True)
class Written:
    """What one path wrote, before it is verified."""

    method: Method
    etag: str | None
    version_id: str | None
    parts: int
    crc: int | None = None  # CRC32C of the source bytes that passed through (stream only)


@dataclass
class CopyJob:
    """One source version to one target object."""

    client: Any
    scheduler: Scheduler
    source: CopySource
    target: ObjectRef
    options: CopyOptions
    progress: ProgressCallback | None = None
    # The options' capabilities dict (shared by a run), or one of this copy's own.
    caps: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        shared = self.options.capabilities
        self.caps = shared if shared is not None else {}

    @property
    def size(self) -> int:
        return self.source.info.size

    @property
    def in_place(self) -> bool:
        """Onto the very object it reads: the old bytes are gone once a server copy ran."""
        info = self.source.info
        return (info.bucket, info.key) == (self.target.bucket, self.target.key)

    @property
    def shape(self) -> str:
        return shape(self.source.sse, self.target.sse, self.in_place)

    @property
    def single_put(self) -> bool:
        """Small enough to stream with one GET and one PutObject."""
        return self.size < self.options.multipart_threshold and self.size <= MAX_SINGLE_PUT

    def report(self, done: int) -> None:
        if self.progress:
            self.progress(done, self.size)
