"""Server-side copy, streamed fallback and key rotation against a real server.

Each server refuses or breaks some server-side paths (see `ssec_transfer/transfer/copy.py`); the
tables below say which path each shape of copy ends up on, and every result is verified by reading
the new object back with its key, so a server that writes the wrong thing is caught.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any

import anyio
import pytest
from botocore.exceptions import ClientError

from ssec_transfer import SSECustomerKey, TransferConfig, TransferEngine
from ssec_transfer.core.crc import crc32c, digest_text
from ssec_transfer.core.errors import TransferFailedError, UsageError, WrongKeyError
from ssec_transfer.core.plan import MiB
from ssec_transfer.s3.sse import sse_params
from ssec_transfer.servers.base import ServerInfo
from ssec_transfer.transfer.copy import (
    CopyOptions,
    copy_object,
    copy_prefix,
    rotate_object,
    rotate_prefix,
)
from tests.support.helpers import random_file

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

PART = 5 * MiB
SIZES = {"empty": 0, "small": 1000, "multipart": 12 * MiB}  # 12 MiB = 3 parts of 5 MiB

# Which path `via="auto"` ends on, per server: (objects below the threshold, 12 MiB objects).
ROTATE_VIA = {"seaweedfs": "server-copy", "ceph": "stream"}
COPY_VIA: dict[str, dict[str, tuple[str, str]]] = {
    # SeaweedFS: UploadPartCopy from SSE-C sources is 501; CopyObject works for every shape.
    # Its UploadPartCopy from a plain source into an SSE-C target writes an unreadable object:
    # verification catches it, the object is removed, CopyObject follows.
    "seaweedfs": {
        "other-key": ("server-copy", "server-copy"),
        "same-key": ("server-copy", "server-copy"),
        "plain->ssec": ("server-copy", "server-copy"),
        "ssec->plain": ("server-copy", "server-copy"),
        "plain->plain": ("server-copy", "server-part-copy"),
    },
    # Ceph 16: CopyObject from SSE-C sources is 501, UploadPartCopy works with one key only.
    # Its CopyObject from a plain source into an SSE-C target stores plaintext: verification
    # catches it, the object is removed, UploadPartCopy (which encrypts) follows.
    "ceph": {
        "other-key": ("stream", "stream"),
        "same-key": ("server-part-copy", "server-part-copy"),
        "plain->ssec": ("server-part-copy", "server-part-copy"),
        "ssec->plain": ("stream", "stream"),
        "plain->plain": ("server-copy", "server-part-copy"),
    },
}


def options(capabilities: dict[str, str] | None = None) -> CopyOptions:
    return CopyOptions(
        part_size=PART,
        concurrency=4,
        multipart_threshold=PART,
        capabilities={} if capabilities is None else capabilities,
    )


@asynccontextmanager
async def open_engine(engine_kwargs: dict[str, str]) -> AsyncIterator[TransferEngine]:
    config = TransferConfig(part_size=PART, multipart_threshold=PART, concurrency=4)
    async with TransferEngine(config=config, ledger=None, **engine_kwargs) as engine:
        yield engine


def uploads_left(admin: Any, *buckets: str) -> list[Any]:
    return [u for b in buckets for u in admin.list_multipart_uploads(Bucket=b).get("Uploads", [])]


async def read(
    engine: TransferEngine, bucket: str, key: str, sse: SSECustomerKey | None, dest: Path
) -> bytes:
    await engine.download(bucket, key, dest, sse_key=sse)
    return await anyio.Path(dest).read_bytes()


@pytest.fixture
def other_bucket(admin: Any) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:20]}"
    admin.create_bucket(Bucket=name)
    yield name
    for upload in admin.list_multipart_uploads(Bucket=name).get("Uploads", []):
        admin.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in admin.get_paginator("list_objects_v2").paginate(Bucket=name):
        for obj in page.get("Contents", []):
            admin.delete_object(Bucket=name, Key=obj["Key"])
    admin.delete_bucket(Bucket=name)


class Injected(Exception):
    """A failure injected into one request type, after some calls went through."""


class FailAfter:
    """Wraps the engine's client: the `method` request fails (or cancels `scope`) after `after`
    successful calls. Everything else, including the abort, reaches the server."""

    def __init__(
        self, client: Any, method: str, after: int, cancel: Callable[[], None] | None = None
    ) -> None:
        self._client, self._method, self._after, self._cancel = client, method, after, cancel
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name != self._method:
            return attr

        async def wrapped(**kwargs: Any) -> Any:
            self.calls += 1
            if self.calls > self._after:
                if self._cancel is not None:
                    self._cancel()
                    await anyio.sleep_forever()
                raise Injected(f"{name} call {self.calls}")
            return await attr(**kwargs)

        return wrapped


# -- rotation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["auto", "stream"])
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_rotation_in_place(
    size: int,
    via: str,
    s3_server: ServerInfo,
    bucket: str,
    admin: Any,
    engine_kwargs: dict[str, str],
    tmp_path: Path,
) -> None:
    old, new = SSECustomerKey.generate(), SSECustomerKey.generate()
    src = random_file(tmp_path / "src.bin", size)
    async with open_engine(engine_kwargs) as engine:
        await engine.upload(src, bucket, "obj", sse_key=old)
        result = await rotate_object(
            engine.client, engine.scheduler, bucket, "obj", old_key=old, new_key=new,
            via=via, options=options(),  # type: ignore[arg-type]
        )  # fmt: skip
        assert result.via == (ROTATE_VIA[s3_server.name] if via == "auto" else "stream")
        assert await read(engine, bucket, "obj", new, tmp_path / "new.bin") == src.read_bytes()
        with pytest.raises(WrongKeyError) as refused:
            await engine.download(bucket, "obj", tmp_path / "old.bin", sse_key=old)
    assert refused.value.exit_code == 3
    assert result.operation == "rotate"
    assert result.verified
    assert result.old_key_refused
    assert result.checksum == digest_text(crc32c(src.read_bytes()))
    assert result.key_fingerprint == new.fingerprint
    assert result.source_key_fingerprint == old.fingerprint
    assert result.size == size
    assert result.to_dict()["via"] == result.via
    assert uploads_left(admin, bucket) == []
    assert not (tmp_path / "old.bin").exists()


async def test_rotation_forced_onto_the_server_path(
    s3_server: ServerInfo, bucket: str, engine_kwargs: dict[str, str], tmp_path: Path
) -> None:
    """`--via server` never falls back: where the server refuses, nothing changes."""
    old, new = SSECustomerKey.generate(), SSECustomerKey.generate()
    src = random_file(tmp_path / "src.bin", 1000)
    async with open_engine(engine_kwargs) as engine:
        await engine.upload(src, bucket, "obj", sse_key=old)
        if ROTATE_VIA[s3_server.name] == "stream":
            with pytest.raises(TransferFailedError) as refused:
                await rotate_object(
                    engine.client, engine.scheduler, bucket, "obj", old_key=old, new_key=new,
                    via="server", options=options(),
                )  # fmt: skip
            assert "--via stream" in str(refused.value)
            assert refused.value.exit_code == 1
            assert await read(engine, bucket, "obj", old, tmp_path / "o.bin") == src.read_bytes()
        else:
            result = await rotate_object(
                engine.client, engine.scheduler, bucket, "obj", old_key=old, new_key=new,
                via="server", options=options(),
            )  # fmt: skip
            assert result.via == "server-copy"
            assert await read(engine, bucket, "obj", new, tmp_path / "n.bin") == src.read_bytes()


@pytest.mark.parametrize("how", ["failure", "cancel"])
async def test_interrupted_rotation_leaves_the_object_under_the_old_key(
    how: str, bucket: str, admin: Any, engine_kwargs: dict[str, str], tmp_path: Path
) -> None:
    old, new = SSECustomerKey.generate(), SSECustomerKey.generate()
    src = random_file(tmp_path / "src.bin", 12 * MiB)
    async with open_engine(engine_kwargs) as engine:
        await engine.upload(src, bucket, "obj", sse_key=old)
        with anyio.CancelScope() as scope:
            client = FailAfter(
                engine.client,
                "upload_part",
                after=1,
                cancel=scope.cancel if how == "cancel" else None,
            )
            with pytest.raises(Injected) if how == "failure" else nullcontext():
                await rotate_object(
                    client, engine.scheduler, bucket, "obj", old_key=old, new_key=new,
                    via="stream", options=options(),
                )  # fmt: skip
        assert client.calls >= 2
        assert scope.cancelled_caught == (how == "cancel")
        assert uploads_left(admin, bucket) == []
        assert await read(engine, bucket, "obj", old, tmp_path / "o.bin") == src.read_bytes()
        with pytest.raises(WrongKeyError):
            await engine.download(bucket, "obj", tmp_path / "n.bin", sse_key=new)


async def test_capabilities_learned_once_skip_doomed_attempts(
    bucket: str, engine_kwargs: dict[str, str], tmp_path: Path
) -> None:
    caps: dict[str, str] = {}
    async with open_engine(engine_kwargs) as engine:
        results = []
        for name in ("a", "b"):
            old, new = SSECustomerKey.generate(), SSECustomerKey.generate()
            await engine.upload(random_file(tmp_path / name, 12 * MiB), bucket, name, sse_key=old)
            result = await rotate_object(
                engine.client, engine.scheduler, bucket, name, old_key=old, new_key=new,
                options=options(caps),
            )  # fmt: skip
            results.append(result)
    first, second = results
    assert first.via == second.via
    assert first.attempts, "every server refuses some server path for a rotation"
    assert len(second.attempts) == len(first.attempts)
    assert all(a.endswith("(known for this endpoint)") for a in second.attempts)
    assert any(k.startswith("learned:") for k in caps)


async def test_same_key_is_not_a_rotation(bucket: str, engine_kwargs: dict[str, str]) -> None:
    key = SSECustomerKey.generate()
    async with open_engine(engine_kwargs) as engine:
        with pytest.raises(UsageError):
            await rotate_object(
                engine.client, engine.scheduler, bucket, "x", old_key=key, new_key=key
            )


# -- copies between names and buckets ------------------------------------------------------


def _keys(shape: str) -> tuple[SSECustomerKey | None, SSECustomerKey | None]:
    one, two = SSECustomerKey.generate(), SSECustomerKey.generate()
    return {
        "other-key": (one, two),
        "same-key": (one, one),
        "plain->ssec": (None, two),
        "ssec->plain": (one, None),
        "plain->plain": (None, None),
    }[shape]


@pytest.mark.parametrize("size", [1000, 12 * MiB], ids=["small", "multipart"])
@pytest.mark.parametrize(
    "shape", ["other-key", "same-key", "plain->ssec", "ssec->plain", "plain->plain"]
)
async def test_copy_between_buckets(
    shape: str,
    size: int,
    s3_server: ServerInfo,
    bucket: str,
    other_bucket: str,
    admin: Any,
    engine_kwargs: dict[str, str],
    tmp_path: Path,
) -> None:
    source_key, target_key = _keys(shape)
    data = random_file(tmp_path / "src.bin", size).read_bytes()
    params = sse_params(source_key)
    admin.put_object(
        Bucket=bucket, Key="in/product.nc", Body=data, ContentType="application/x-netcdf",
        Metadata={"mission": "mtg"}, **params,
    )  # fmt: skip
    async with open_engine(engine_kwargs) as engine:
        result = await copy_object(
            engine.client, engine.scheduler, bucket, "in/product.nc", other_bucket, "out/p.nc",
            source_key=source_key, target_key=target_key, options=options(),
        )  # fmt: skip
        copied = await read(engine, other_bucket, "out/p.nc", target_key, tmp_path / "c.bin")
        assert await read(engine, bucket, "in/product.nc", source_key, tmp_path / "s") == data
    small, large = COPY_VIA[s3_server.name][shape]
    assert result.via == (small if size < PART else large), result.attempts
    assert copied == data
    assert result.checksum == digest_text(crc32c(data))
    assert result.verified
    assert result.key_fingerprint == (target_key.fingerprint if target_key else None)
    assert result.source_key_fingerprint == (source_key.fingerprint if source_key else None)
    head = admin.head_object(Bucket=other_bucket, Key="out/p.nc", **sse_params(target_key))
    assert head["ContentType"] == "application/x-netcdf"
    assert head["Metadata"] == {"mission": "mtg"}
    assert ("SSECustomerAlgorithm" in head) == (target_key is not None)
    if target_key is not None:  # really stored encrypted: refused without the key
        with pytest.raises(ClientError):
            admin.head_object(Bucket=other_bucket, Key="out/p.nc")
    assert uploads_left(admin, bucket, other_bucket) == []
    # Nothing else appeared at the destination (a wrong server-side result was removed).
    keys = [o["Key"] for o in admin.list_objects_v2(Bucket=other_bucket).get("Contents", [])]
    assert keys == ["out/p.nc"]


async def test_interrupted_part_copy_leaves_nothing(
    bucket: str, other_bucket: str, admin: Any, engine_kwargs: dict[str, str], tmp_path: Path
) -> None:
    """Both servers copy plain objects with UploadPartCopy; a failure midway aborts it."""
    admin.put_object(
        Bucket=bucket, Key="big", Body=random_file(tmp_path / "b", 12 * MiB).read_bytes()
    )
    async with open_engine(engine_kwargs) as engine:
        client = FailAfter(engine.client, "upload_part_copy", after=1)
        with pytest.raises(Injected):
            await copy_object(
                client, engine.scheduler, bucket, "big", other_bucket, "big",
                source_key=None, target_key=None, via="server", options=options(),
            )  # fmt: skip
    assert uploads_left(admin, other_bucket) == []
    assert admin.list_objects_v2(Bucket=other_bucket).get("KeyCount", 0) == 0


async def test_copy_a_prefix(
    bucket: str, other_bucket: str, admin: Any, engine_kwargs: dict[str, str], tmp_path: Path
) -> None:
    one, two = SSECustomerKey.generate(), SSECustomerKey.generate()
    names = ["in/a.nc", "in/sub/b.nc", "in/c.nc"]
    for i, name in enumerate(names):
        admin.put_object(Bucket=bucket, Key=name, Body=bytes([i]) * 100, **sse_params(one))
    admin.put_object(Bucket=bucket, Key="other/x", Body=b"x", **sse_params(one))
    seen: list[str] = []
    async with open_engine(engine_kwargs) as engine:
        outcomes = await copy_prefix(
            engine.client, engine.scheduler, bucket, "in", other_bucket, "out/",
            source_key=one, target_key=two, options=options(),
            on_outcome=lambda o: seen.append(o.destination),
        )  # fmt: skip
        for i, name in enumerate(names):
            target = "out/" + name.removeprefix("in/")
            assert await read(engine, other_bucket, target, two, tmp_path / "r") == bytes([i]) * 100
    assert [o.status for o in outcomes] == ["ok"] * 3
    assert sorted(seen) == sorted(f"s3://{other_bucket}/out/{n[3:]}" for n in names)
    assert all(o.to_dict()["via"] for o in outcomes)


async def test_rotate_a_prefix_reports_objects_under_another_key(
    bucket: str, admin: Any, engine_kwargs: dict[str, str], tmp_path: Path
) -> None:
    old, new, stranger = (SSECustomerKey.generate() for _ in range(3))
    admin.put_object(Bucket=bucket, Key="p/a", Body=b"a" * 10, **sse_params(old))
    admin.put_object(Bucket=bucket, Key="p/b", Body=b"b" * 10, **sse_params(old))
    admin.put_object(Bucket=bucket, Key="p/c", Body=b"c" * 10, **sse_params(stranger))
    async with open_engine(engine_kwargs) as engine:
        outcomes = await rotate_prefix(
            engine.client, engine.scheduler, bucket, "p", old_key=old, new_key=new,
            options=options(),
        )  # fmt: skip
        assert await read(engine, bucket, "p/a", new, tmp_path / "a") == b"a" * 10
        assert await read(engine, bucket, "p/c", stranger, tmp_path / "c") == b"c" * 10
    status = {o.source.rsplit("/", 1)[-1]: o.status for o in outcomes}
    assert status == {"a": "ok", "b": "ok", "c": "failed"}
    failed = next(o for o in outcomes if o.status == "failed")
    assert isinstance(failed.error, WrongKeyError)
    assert failed.to_dict()["exit_code"] == 3
