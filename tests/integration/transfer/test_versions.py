"""Object versions as first-class citizens: each version under its own key, read, rotated,
listed. Both SeaweedFS 4.48 and Ceph RGW 16.2 support bucket versioning with SSE-C."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from ssec_transfer import SSECustomerKey, TransferConfig, TransferEngine
from ssec_transfer.core.errors import NoSuchVersionError, UsageError, WrongKeyError
from ssec_transfer.core.plan import MiB
from ssec_transfer.s3.listing import ListedObject, list_objects
from ssec_transfer.servers.base import ServerInfo
from ssec_transfer.state.ledger import Ledger
from ssec_transfer.transfer.copy import CopyOptions, rotate_all_versions, rotate_object
from tests.integration.transfer.test_copy_rotate import ROTATE_VIA, FailAfter, Injected

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

PART = 5 * MiB
OPTIONS = CopyOptions(part_size=PART, concurrency=4, multipart_threshold=PART)


@pytest.fixture
def versioned_bucket(admin: Any) -> Iterator[str]:
    name = f"v-{uuid.uuid4().hex[:20]}"
    admin.create_bucket(Bucket=name)
    admin.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    assert admin.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    yield name
    for upload in admin.list_multipart_uploads(Bucket=name).get("Uploads", []):
        admin.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in admin.get_paginator("list_object_versions").paginate(Bucket=name):
        for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
            admin.delete_object(Bucket=name, Key=v["Key"], VersionId=v["VersionId"])
    admin.delete_bucket(Bucket=name)


@asynccontextmanager
async def open_engine(
    engine_kwargs: dict[str, str], ledger: Ledger | None = None
) -> AsyncIterator[TransferEngine]:
    config = TransferConfig(part_size=PART, multipart_threshold=PART, concurrency=4)
    async with TransferEngine(config=config, ledger=ledger, **engine_kwargs) as engine:
        yield engine


async def put(
    engine: TransferEngine, tmp: Path, bucket: str, data: bytes, key: SSECustomerKey
) -> str:
    """Upload `data` as a new version of `obj`; return its version id."""
    src = tmp / f"{uuid.uuid4().hex}.bin"
    await anyio.Path(src).write_bytes(data)
    result = await engine.upload(src, bucket, "obj", sse_key=key)
    assert result.version_id
    return result.version_id


async def get(
    engine: TransferEngine,
    tmp: Path,
    bucket: str,
    key: SSECustomerKey,
    version_id: str | None = None,
) -> bytes:
    dest = tmp / f"{uuid.uuid4().hex}.out"
    await engine.download(bucket, "obj", dest, sse_key=key, version_id=version_id)
    return await anyio.Path(dest).read_bytes()


async def listed(engine: TransferEngine, bucket: str) -> list[ListedObject]:
    found = list_objects(
        engine.client, bucket, "", versions=True, ledger=engine.ledger,
        endpoint=engine.endpoint_url,
    )  # fmt: skip
    return [o async for o in found]


async def test_two_versions_under_two_keys_each_read_with_its_own_key(
    versioned_bucket: str, engine_kwargs: dict[str, str], tmp_path: Path
) -> None:
    k1, k2 = SSECustomerKey.generate(), SSECustomerKey.generate()
    async with open_engine(engine_kwargs) as engine:
        v1 = await put(engine, tmp_path, versioned_bucket, b"first" * 100, k1)
        v2 = await put(engine, tmp_path, versioned_bucket, b"second" * 100, k2)
        assert v1 != v2
        assert await get(engine, tmp_path, versioned_bucket, k1, v1) == b"first" * 100
        assert await get(engine, tmp_path, versioned_bucket, k2, v2) == b"second" * 100
        assert await get(engine, tmp_path, versioned_bucket, k2) == b"second" * 100  # current
        with pytest.raises(WrongKeyError):
            await get(engine, tmp_path, versioned_bucket, k2, v1)
        with pytest.raises(WrongKeyError):
            await get(engine, tmp_path, versioned_bucket, k1)  # the current one is under k2
        info = await engine.head(versioned_bucket, "obj", sse_key=k1, version_id=v1)
        assert (info.version_id, info.key_fingerprint) == (v1, k1.fingerprint)


@pytest.mark.parametrize("size", [600, 12 * MiB], ids=["small", "multipart"])
async def test_rotate_one_version_and_list_shows_every_version(
    size: int,
    s3_server: ServerInfo,
    versioned_bucket: str,
    engine_kwargs: dict[str, str],
    tmp_path: Path,
) -> None:
    k1, k2, k3 = (SSECustomerKey.generate() for _ in range(3))
    first, second = b"1" * size, b"2" * size
    ledger = Ledger(tmp_path / "ledger.sqlite")
    async with open_engine(engine_kwargs, ledger) as engine:
        v1 = await put(engine, tmp_path, versioned_bucket, first, k1)
        v2 = await put(engine, tmp_path, versioned_bucket, second, k2)
        result = await rotate_object(
            engine.client, engine.scheduler, versioned_bucket, "obj", old_key=k2, new_key=k3,
            version_id=v2, options=OPTIONS,
        )  # fmt: skip
        ledger.record(engine.endpoint_url, result)  # what the engine does after a rotation
        v3 = result.version_id
        assert result.via == ROTATE_VIA[s3_server.name]
        assert result.source_version_id == v2
        assert v3 not in (None, v1, v2)
        assert result.old_key_refused
        assert result.deleted_version_id is None
        # The rotated copy is current, under the new key; both old versions keep their keys.
        assert await get(engine, tmp_path, versioned_bucket, k3) == second
        assert await get(engine, tmp_path, versioned_bucket, k3, v3) == second
        assert await get(engine, tmp_path, versioned_bucket, k2, v2) == second
        assert await get(engine, tmp_path, versioned_bucket, k1, v1) == first
        with pytest.raises(WrongKeyError):
            await get(engine, tmp_path, versioned_bucket, k2)
        objects = await listed(engine, versioned_bucket)
    assert [(o.version_id, o.is_latest, o.size) for o in objects] == [
        (v3, True, size),
        (v2, False, size),
        (v1, False, size),
    ]
    assert [o.key_fingerprint for o in objects] == [k3.fingerprint, k2.fingerprint, k1.fingerprint]
    assert all(o.key == "obj" and o.last_modified and o.etag for o in objects)
    assert objects[0].to_dict()["version_id"] == v3


async def test_rotating_a_noncurrent_version_is_refused(
    versioned_bucket: str, engine_kwargs: dict[str, str], tmp_path: Path
) -> None:
    """Its copy would become the current version, hiding the newer one."""
    k1, k2, k3 = (SSECustomerKey.generate() for _ in range(3))
    async with open_engine(engine_kwargs) as engine:
        v1 = await put(engine, tmp_path, versioned_bucket, b"old", k1)
        await put(engine, tmp_path, versioned_bucket, b"new", k2)
        with pytest.raises(UsageError) as refused:
            await rotate_object(
                engine.client, engine.scheduler, versioned_bucket, "obj", old_key=k1,
                new_key=k3, version_id=v1, options=OPTIONS,
            )  # fmt: skip
        assert "--all-versions" in str(refused.value)
        assert len(await listed(engine, versioned_bucket)) == 2
        assert await get(engine, tmp_path, versioned_bucket, k2) == b"new"


async def test_old_version_deleted_only_after_verification(
    versioned_bucket: str, admin: Any, engine_kwargs: dict[str, str], tmp_path: Path
) -> None:
    k1, k2 = SSECustomerKey.generate(), SSECustomerKey.generate()
    data = b"x" * (12 * MiB)
    async with open_engine(engine_kwargs) as engine:
        v1 = await put(engine, tmp_path, versioned_bucket, data, k1)
        # Interrupted: no new version, no upload left, the old version untouched.
        client = FailAfter(engine.client, "upload_part", after=1)
        with pytest.raises(Injected):
            await rotate_object(
                client, engine.scheduler, versioned_bucket, "obj", old_key=k1, new_key=k2,
                via="stream", options=OPTIONS, delete_old_versions=True,
            )  # fmt: skip
        assert [o.version_id for o in await listed(engine, versioned_bucket)] == [v1]
        assert admin.list_multipart_uploads(Bucket=versioned_bucket).get("Uploads", []) == []
        # Completed: the old version is gone, the new one is the only one.
        result = await rotate_object(
            engine.client, engine.scheduler, versioned_bucket, "obj", old_key=k1, new_key=k2,
            options=OPTIONS, delete_old_versions=True,
        )  # fmt: skip
        assert result.deleted_version_id == v1
        assert [o.version_id for o in await listed(engine, versioned_bucket)] == [result.version_id]
        with pytest.raises(NoSuchVersionError):
            await engine.head(versioned_bucket, "obj", sse_key=k1, version_id=v1)
        assert await get(engine, tmp_path, versioned_bucket, k2) == data


async def test_rotate_all_versions_oldest_first_keeps_the_current_one_current(
    versioned_bucket: str, engine_kwargs: dict[str, str], tmp_path: Path
) -> None:
    old, other, new = (SSECustomerKey.generate() for _ in range(3))
    async with open_engine(engine_kwargs) as engine:
        v1 = await put(engine, tmp_path, versioned_bucket, b"one", old)
        v2 = await put(engine, tmp_path, versioned_bucket, b"two", other)
        v3 = await put(engine, tmp_path, versioned_bucket, b"three", old)
        outcomes = await rotate_all_versions(
            engine.client, engine.scheduler, versioned_bucket, "obj", old_key=old, new_key=new,
            options=OPTIONS, delete_old_versions=True,
        )  # fmt: skip
        by_version = {o.version_id: o for o in outcomes}
        assert by_version[v2].status == "failed"
        assert isinstance(by_version[v2].error, WrongKeyError)  # each version its own key
        assert by_version[v1].status == by_version[v3].status == "ok"
        assert [o.version_id for o in outcomes if o.status == "ok"] == [v1, v3]  # oldest first
        assert await get(engine, tmp_path, versioned_bucket, new) == b"three"
        objects = await listed(engine, versioned_bucket)
        remaining = {o.version_id for o in objects}
        assert v1 not in remaining
        assert v3 not in remaining
        assert v2 in remaining
        assert len(objects) == 3
        assert await get(engine, tmp_path, versioned_bucket, other, v2) == b"two"
        new_v1 = by_version[v1].result
        assert new_v1 is not None
        assert await get(engine, tmp_path, versioned_bucket, new, new_v1.version_id) == b"one"


async def test_rotate_all_versions_refused_when_the_current_one_is_under_another_key(
    versioned_bucket: str, engine_kwargs: dict[str, str], tmp_path: Path
) -> None:
    old, other, new = (SSECustomerKey.generate() for _ in range(3))
    async with open_engine(engine_kwargs) as engine:
        v1 = await put(engine, tmp_path, versioned_bucket, b"one", old)
        v2 = await put(engine, tmp_path, versioned_bucket, b"two", other)
        outcomes = await rotate_all_versions(
            engine.client, engine.scheduler, versioned_bucket, "obj", old_key=old, new_key=new,
            options=OPTIONS,
        )  # fmt: skip
        assert {o.version_id: o.status for o in outcomes} == {v1: "failed", v2: "failed"}
        assert isinstance(next(o for o in outcomes if o.version_id == v1).error, UsageError)
        assert len(await listed(engine, versioned_bucket)) == 2
        assert await get(engine, tmp_path, versioned_bucket, other) == b"two"


async def test_list_unversioned_with_fingerprints_from_the_ledger(
    bucket: str, admin: Any, engine_kwargs: dict[str, str], tmp_path: Path
) -> None:
    key = SSECustomerKey.generate()
    ledger = Ledger(tmp_path / "ledger.sqlite")
    async with open_engine(engine_kwargs, ledger) as engine:
        await anyio.Path(tmp_path / "a").write_bytes(b"a" * 10)
        await engine.upload(tmp_path / "a", bucket, "obj", sse_key=key)
        admin.put_object(Bucket=bucket, Key="foreign", Body=b"b")  # written by another tool
        objects = [
            o
            async for o in list_objects(
                engine.client, bucket, "", ledger=ledger, endpoint=engine.endpoint_url
            )
        ]
    assert [(o.key, o.size, o.version_id, o.key_fingerprint) for o in objects] == [
        ("foreign", 1, None, None),
        ("obj", 10, None, key.fingerprint),
    ]
