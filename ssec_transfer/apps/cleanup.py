"""`ssec-transfer cleanup`: find and remove what interrupted transfers left behind.

Abandoned multipart uploads cost storage and are invisible in listings; stale journal entries
and temporary download files clutter the disk. This lists them (`--dry-run`) or removes them:
AbortMultipartUpload on the server, the matching journal rows, and the temporary files. In a
local folder it removes the temporary files of downloads that were killed (no live process
holds them and no resume journal needs them; `transfer.destination`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from ssec_transfer.core.errors import ErrorContext
from ssec_transfer.s3.errors import translate
from ssec_transfer.state.journal import Journal
from ssec_transfer.transfer.destination import (
    remove_stale_temp_files,
    stale_temp_files,
    unlink_if_unlocked,
)


@dataclass(frozen=True)
class Leftover:
    kind: str  # "multipart-upload", "download-temp" (journaled) or "temp-file" (local sweep)
    bucket: str
    key: str
    detail: str  # upload id, or temporary file path
    started: str | None
    resumable: bool  # the local journal knows it, so `--resume` could still finish it
    removed: bool

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


async def cleanup(
    client: Any,
    endpoint: str,
    journal: Journal | None,
    bucket: str,
    prefix: str,
    *,
    dry_run: bool,
    older_than: float = 0.0,
) -> list[Leftover]:
    """Remove (or with `dry_run`, only list) leftovers under s3://bucket/prefix started more
    than `older_than` seconds ago."""
    found: list[Leftover] = []
    journaled = await anyio.to_thread.run_sync(journal.uploads) if journal else []
    known = {e.upload_id: e for e in journaled if e.endpoint == endpoint and e.bucket == bucket}
    cutoff = datetime.now(UTC).timestamp() - older_than
    ctx = ErrorContext("ListMultipartUploads", bucket, prefix)
    try:
        paginator = client.get_paginator("list_multipart_uploads")
        uploads = [
            upload
            async for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
            for upload in page.get("Uploads", [])
        ]
    except Exception as exc:
        raise translate(exc, ctx, key_sent=False) from exc
    for upload in uploads:
        initiated = upload.get("Initiated")
        if initiated is not None and initiated.timestamp() > cutoff:
            continue
        removed = False
        if not dry_run:
            try:
                await client.abort_multipart_upload(
                    Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
                removed = True
            except Exception as exc:
                raise translate(
                    exc, ErrorContext("AbortMultipartUpload", bucket, upload["Key"]), key_sent=False
                ) from exc
            entry = known.get(upload["UploadId"])
            if entry is not None and journal is not None:
                await anyio.to_thread.run_sync(journal.forget_upload, entry.id)
        found.append(
            Leftover(
                "multipart-upload", bucket, upload["Key"], upload["UploadId"],
                initiated.isoformat() if initiated else None,
                upload["UploadId"] in known, removed,
            )
        )  # fmt: skip
    if journal is not None:
        for download in await anyio.to_thread.run_sync(journal.downloads):
            if download.endpoint != endpoint or download.bucket != bucket:
                continue
            if (
                not download.key.startswith(prefix)
                or download.created_at > time.time() - older_than
            ):
                continue
            removed = False
            if not dry_run:
                if not await anyio.to_thread.run_sync(unlink_if_unlocked, Path(download.temp)):
                    continue  # a `get --resume` is using it right now
                await anyio.to_thread.run_sync(journal.forget_download, download.id)
                removed = True
            found.append(
                Leftover(
                    "download-temp", bucket, download.key, download.temp,
                    datetime.fromtimestamp(download.created_at, UTC).isoformat(), True, removed,
                )
            )  # fmt: skip
    return found


def _sweep(root: Path, spare: list[str], dry_run: bool) -> list[Path]:
    found: list[Path] = []
    for folder, _dirs, _files in os.walk(root):
        sweep = stale_temp_files if dry_run else remove_stale_temp_files
        found.extend(sweep(Path(folder), spare))
    return found


async def cleanup_folder(journal: Journal | None, root: Path, *, dry_run: bool) -> list[Leftover]:
    """Remove (or list) stale temporary download files anywhere under the local `root`."""
    spare = [d.temp for d in await anyio.to_thread.run_sync(journal.downloads)] if journal else []
    found = await anyio.to_thread.run_sync(_sweep, root, spare, dry_run)
    return [
        Leftover("temp-file", "", "", str(path), None, resumable=False, removed=not dry_run)
        for path in found
    ]
