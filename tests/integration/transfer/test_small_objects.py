"""A download starts with a whole-object GET and no HEAD: what the HEAD did (size, version, key
checks, stored checksum) the GET's answer does. A small object takes that one GET; a larger
one is fetched in ranges after it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ssec_transfer import SSECustomerKey, TransferConfig, TransferEngine
from ssec_transfer.core.errors import UnexpectedKeyError, WrongKeyError
from ssec_transfer.s3.sse import sse_params

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


class Counted:
    """Counts the HEADs and GETs an engine's client sends (the client itself is real)."""

    def __init__(self, client: Any) -> None:
        self.heads = 0
        self.gets: list[str | None] = []  # the Range of each GET
        head, get = client.head_object, client.get_object

        async def head_object(**params: Any) -> Any:
            self.heads += 1
            return await head(**params)

        async def get_object(**params: Any) -> Any:
            self.gets.append(params.get("Range"))
            return await get(**params)

        client.head_object = head_object
        client.get_object = get_object


async def test_a_listed_small_object_takes_one_get_and_no_head(
    tmp_path: Path, bucket: str, admin: Any, engine_kwargs: dict[str, str]
) -> None:
    key = SSECustomerKey.generate()
    data = {f"f{i}.bin": bytes([i]) * (1000 * (i + 1)) for i in range(5)}
    for name, body in data.items():
        admin.put_object(Bucket=bucket, Key=name, Body=body, **sse_params(key))
    async with TransferEngine(**engine_kwargs) as engine:
        counted = Counted(engine.client)
        for name, body in data.items():
            result = await engine.download(
                bucket, name, tmp_path / name, sse_key=key, size_hint=len(body)
            )
            assert (result.size, result.parts) == (len(body), 1)
        assert counted.heads == 0
    for name, body in data.items():
        assert (tmp_path / name).read_bytes() == body


async def test_an_object_larger_than_listed_takes_the_ranged_path_without_a_head(
    tmp_path: Path, bucket: str, admin: Any, engine_kwargs: dict[str, str]
) -> None:
    key = SSECustomerKey.generate()
    admin.put_object(Bucket=bucket, Key="grew", Body=b"x" * 5000, **sse_params(key))
    async with TransferEngine(**engine_kwargs) as engine:
        counted = Counted(engine.client)
        result = await engine.download(bucket, "grew", tmp_path / "g", sse_key=key, size_hint=10)
        assert counted.heads == 0
        assert counted.gets == [None, None]  # the first answer closed unread, then read pinned
    assert result.size == 5000
    assert (tmp_path / "g").read_bytes() == b"x" * 5000


async def test_one_object_without_a_listing_takes_one_get(
    tmp_path: Path, bucket: str, admin: Any, engine_kwargs: dict[str, str]
) -> None:
    key = SSECustomerKey.generate()
    admin.put_object(Bucket=bucket, Key="one", Body=b"y" * 3000, **sse_params(key))
    admin.put_object(Bucket=bucket, Key="empty", Body=b"", **sse_params(key))
    async with TransferEngine(**engine_kwargs) as engine:
        counted = Counted(engine.client)
        one = await engine.download(bucket, "one", tmp_path / "one", sse_key=key)
        empty = await engine.download(bucket, "empty", tmp_path / "empty", sse_key=key)
        assert (counted.heads, counted.gets) == (0, [None, None])
    assert (one.size, one.parts, empty.size) == (3000, 1, 0)
    assert (tmp_path / "one").read_bytes() == b"y" * 3000
    assert (tmp_path / "empty").read_bytes() == b""
    assert _names(tmp_path) == ["empty", "one"]


async def test_a_large_object_is_fetched_in_ranges_after_the_first_get(
    tmp_path: Path, bucket: str, admin: Any, engine_kwargs: dict[str, str]
) -> None:
    key = SSECustomerKey.generate()
    mib = 1024 * 1024
    body = bytes(range(256)) * (11 * mib // 256)
    admin.put_object(Bucket=bucket, Key="large", Body=body, **sse_params(key))
    config = TransferConfig(part_size=5 * mib, multipart_threshold=5 * mib)
    async with TransferEngine(**engine_kwargs, config=config) as engine:
        counted = Counted(engine.client)
        result = await engine.download(bucket, "large", tmp_path / "large", sse_key=key)
        assert counted.heads == 0
        assert counted.gets[0] is None
        assert set(counted.gets[1:]) == {
            f"bytes=0-{5 * mib - 1}", f"bytes={5 * mib}-{10 * mib - 1}",
            f"bytes={10 * mib}-{11 * mib - 1}",
        }  # fmt: skip
        assert len(counted.gets) == 4
    assert (result.size, result.parts) == (11 * mib, 3)
    assert (tmp_path / "large").read_bytes() == body


async def test_key_errors_on_the_one_get_path_are_the_same_as_on_the_head_path(
    tmp_path: Path, bucket: str, admin: Any, engine_kwargs: dict[str, str]
) -> None:
    key, other = SSECustomerKey.generate(), SSECustomerKey.generate()
    admin.put_object(Bucket=bucket, Key="enc", Body=b"secret", **sse_params(key))
    admin.put_object(Bucket=bucket, Key="plain", Body=b"open")
    dest = tmp_path / "d"
    async with TransferEngine(**engine_kwargs) as engine:
        with pytest.raises(WrongKeyError):
            await engine.download(bucket, "enc", dest, sse_key=other, size_hint=6)
        with pytest.raises(UnexpectedKeyError):
            await engine.download(bucket, "plain", dest, sse_key=key, size_hint=4)
    assert not dest.exists()
    assert _names(tmp_path) == []  # no temporary file either
