"""Blocking wrappers for scripts that are not async: each call runs its own engine (and so
its own connections): for many objects, use `TransferEngine` in one event loop instead.

Every wrapper takes the engine's own keyword arguments (`EngineOptions`), checked by type
checkers like the engine's, and raises what the engine raises (`SSECTransferError` subclasses).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal, TypedDict, TypeVar, Unpack

import anyio

from ssec_transfer.core.config import TransferConfig
from ssec_transfer.core.results import ObjectInfo, ProgressCallback, TransferResult
from ssec_transfer.core.taskgroups import in_child_task
from ssec_transfer.engine import TransferEngine
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.client import ConnectionSettings
from ssec_transfer.state.journal import Journal
from ssec_transfer.state.ledger import Ledger

_T = TypeVar("_T")


class EngineOptions(TypedDict, total=False):
    """`TransferEngine`'s keyword arguments: where to connect, how to tune, what to record."""

    endpoint_url: str | None  # default: AWS_ENDPOINT_URL, the profile's, else AWS
    profile: str | None
    region: str | None
    ca_bundle: str | None
    config: TransferConfig | None
    settings: ConnectionSettings | None
    ledger: Ledger | Path | Literal["default"] | None
    journal: Journal | Path | Literal["default"] | None
    resume: bool


def _run(call: Callable[[TransferEngine], Awaitable[_T]], engine_options: EngineOptions) -> _T:
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
    **engine_options: Unpack[EngineOptions],
) -> TransferResult:
    """Upload the file `source` to s3://bucket/key under `sse_key`; the object is replaced
    only once every byte arrived (`TransferEngine.upload`)."""
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
    **engine_options: Unpack[EngineOptions],
) -> TransferResult:
    """Download s3://bucket/key (that version, if given) to `dest`, which is left untouched
    unless every byte arrived and checked out (`TransferEngine.download`)."""
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
    **engine_options: Unpack[EngineOptions],
) -> ObjectInfo:
    """Size, ETag, version and key fingerprint of s3://bucket/key (`TransferEngine.head`)."""
    return _run(
        lambda engine: engine.head(bucket, key, sse_key=sse_key, version_id=version_id),
        engine_options,
    )
