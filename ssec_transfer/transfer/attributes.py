"""What a write sets on an object besides its bytes: content type, user metadata, storage
class (`--content-type`, `--metadata`, `--storage-class`), and the sealed source facts.

User metadata is limited to 2 KB (names and values, as AWS counts it); the seal takes part of
it, so what the user asks for is checked against what is left before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ssec_transfer.core.errors import UsageError
from ssec_transfer.keys.seal import METADATA_NAME, SEAL_BUDGET

METADATA_LIMIT = 2048  # bytes of x-amz-meta-* names and values together (AWS's limit)


@dataclass(frozen=True)
class ObjectAttributes:
    content_type: str | None = None  # None: guessed from the file name
    metadata: Mapping[str, str] = field(default_factory=dict)
    storage_class: str | None = None

    def __post_init__(self) -> None:
        check_metadata(self.metadata)

    def params(self, *, default_type: str, sealed: Mapping[str, str]) -> dict[str, Any]:
        """The PutObject / CreateMultipartUpload parameters for one object."""
        params: dict[str, Any] = {"ContentType": self.content_type or default_type}
        metadata = {**self.metadata, **sealed}
        if metadata:
            params["Metadata"] = metadata
        if self.storage_class:
            params["StorageClass"] = self.storage_class
        return params


def check_metadata(metadata: Mapping[str, str]) -> None:
    """Names and values S3 can carry in headers, within what the seal leaves of 2 KB."""
    used = 0
    for name, value in metadata.items():
        if name.lower() == METADATA_NAME:
            raise UsageError(
                f"metadata name {name!r} is reserved for the sealed source facts",
                hint="choose another name",
            )
        if not name or not _is_token(name):
            raise UsageError(
                f"metadata name {name!r} is not a valid header name",
                hint="use letters, digits and - _ . only",
            )
        if not value.isascii() or any(ch in value for ch in "\r\n"):
            raise UsageError(
                f"metadata value of {name!r} must be printable ASCII on one line",
                hint="S3 sends user metadata as HTTP headers; encode other text (e.g. base64)",
            )
        used += len(name) + len(value)
    room = METADATA_LIMIT - SEAL_BUDGET
    if used > room:
        raise UsageError(
            f"user metadata takes {used} bytes; at most {room} fit",
            hint=f"S3 allows {METADATA_LIMIT} bytes of metadata per object and ssec-transfer "
            f"keeps {SEAL_BUDGET} for its sealed source facts",
        )


def _is_token(name: str) -> bool:
    return name.isascii() and all(ch.isalnum() or ch in "-_." for ch in name)
