"""Blocking wrappers for scripts that are not async: each call runs its own engine."""

from __future__ import annotations

import os
from typing import Any

import anyio

from ssec_transfer.core.results import ObjectInfo, ProgressCallback, TransferResult
from ssec_transfer.core.taskgroups import in_child_task
from ssec_transfer.engine import TransferEngine
from ssec_transfer.keys.customer import SSECustomerKey


def upload(
    source: str | os.PathLike[str],
    bucket: str,
    key: str,
    *,
    sse_key: SSECustomerKey,
    progress: ProgressCallback | None = None,
    **engine_options: Any,
) -> TransferResult:
    async def run() -> TransferResult:
        async with TransferEngine(**engine_options) as engine:
            return await engine.upload(source, bucket, key, sse_key=sse_key, progress=progress)

    return anyio.run(in_child_task, run)


def download(
    bucket: str,
    key: str,
    dest: str | os.PathLike[str],
    *,
    sse_key: SSECustomerKey | None = None,
    version_id: str | None = None,
    progress: ProgressCallback | None = None,
    **engine_options: Any,
) -> TransferResult:
    async def run() -> TransferResult:
        async with TransferEngine(**engine_options) as engine:
            return await engine.download(
                bucket, key, dest, sse_key=sse_key, version_id=version_id, progress=progress
            )

    return anyio.run(in_child_task, run)


def head(
    bucket: str,
    key: str,
    *,
    sse_key: SSECustomerKey | None = None,
    version_id: str | None = None,
    **engine_options: Any,
) -> ObjectInfo:
    async def run() -> ObjectInfo:
        async with TransferEngine(**engine_options) as engine:
            return await engine.head(bucket, key, sse_key=sse_key, version_id=version_id)

    return anyio.run(in_child_task, run)
