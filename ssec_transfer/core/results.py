"""What a finished transfer reports: the same fields for the API, the CLI's JSON and the ledger."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ssec_transfer.keys.seal import SourceFacts

# How transfers report progress: (bytes just done, total bytes of the object).
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class TransferResult:
    operation: str  # "upload" or "download"
    bucket: str
    key: str
    path: str
    size: int
    etag: str | None
    version_id: str | None
    key_fingerprint: str | None
    parts: int
    seconds: float
    checksum: str | None = None  # whole-object digest, `crc32c:BASE64`, computed by the client
    resumed_parts: int = 0  # parts an interrupted earlier run had already sent

    @property
    def mib_per_s(self) -> float:
        return self.size / (1024 * 1024) / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mib_per_s"] = round(self.mib_per_s, 2)
        data["seconds"] = round(self.seconds, 4)
        return data


@dataclass(frozen=True)
class ObjectInfo:
    """HeadObject, reduced to what users ask about."""

    bucket: str
    key: str
    size: int
    etag: str | None
    version_id: str | None
    last_modified: str | None
    content_type: str | None
    sse_customer_algorithm: str | None
    key_fingerprint: str | None  # as the server reports it
    # What the upload sealed about its source (`keys.seal`), if the seal opened under the key.
    sealed: SourceFacts | None = None

    @property
    def source_mtime_ns(self) -> int | None:
        """The modification time a downloaded file takes: its source's, when the upload sealed
        it, else the object's LastModified (as `aws s3 cp` does)."""
        if self.sealed is not None and self.sealed.mtime_ns is not None:
            return self.sealed.mtime_ns
        if self.last_modified is None:
            return None
        return int(datetime.fromisoformat(self.last_modified).timestamp()) * 1_000_000_000

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["sealed"] = self.sealed.to_dict() if self.sealed else None
        return data
