"""Blocking wrappers for scripts that are not async: each call runs its own engine."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

from ssec_transfer.core.results import ObjectInfo, ProgressCallback, TransferResult
from ssec_transfer.core.taskgroups import in_child_task
from ssec_transfer.engine import TransferEngine
from ssec_transfer.keys.customer import SSECustomerKey

_T = TypeVar("_T")


def _run(call: Callable[[TransferEngine], Awaitable[_T]], engine_options: dict[str, Any]) -> _T:
    """Run one engine call to completion in a fresh event loop and a fresh engine."""

    async def run() -> _T:
        async with TransferEngine(**engine_options) as engine:
            return await call(engine)

    return anyio.run(in_child_task, run)


def upload(
    source: str | os.PathLike[str],
    bucket: str,
    key: str,
    *,
    sse_key: SSECustomerKey,
    progress: ProgressCallback | None = None,
    **engine_options: Any,
) -> TransferResult:
    return _run(
        lambda engine: engine.upload(source, bucket, key, sse_key=sse_key, progress=progress),
        engine_options,
    )


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
    return _run(
        lambda engine: engine.download(
            bucket, key, dest, sse_key=sse_key, version_id=version_id, progress=progress
        ),
        engine_options,
    )


def head(
    bucket: str,
    key: str,
    *,
    sse_key: SSECustomerKey | None = None,
    version_id: str | None = None,
    **engine_options: Any,
) -> ObjectInfo:
    return _run(
        lambda engine: engine.head(bucket, key, sse_key=sse_key, version_id=version_id),
        engine_options,
    )
