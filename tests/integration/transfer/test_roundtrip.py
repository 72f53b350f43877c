"""Byte-identical round trips through a real HTTPS server, around every size boundary."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from ssec_transfer import SSECustomerKey, TransferConfig, TransferEngine
from ssec_transfer.core.crc import crc32c, digest_text
from ssec_transfer.core.plan import MiB
from tests.support.helpers import random_file, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

PART = 5 * MiB
SIZES = [
    0,
    1,
    PART - 1,
    PART,
    PART + 1,
    2 * PART - 1,
    2 * PART,
    2 * PART + 1,
    2 * PART + 123,  # three parts, the last one short
    3 * PART,
]


@pytest.mark.parametrize("size", SIZES)
async def test_round_trip_around_part_boundaries(
    size: int, tmp_path: Path, bucket: str, engine_kwargs: dict[str, str], admin
) -> None:  # type: ignore[no-untyped-def]
    key = SSECustomerKey.generate()
    src = random_file(tmp_path / "src.bin", size)
    dest = tmp_path / "dest.bin"
    config = TransferConfig(part_size=PART, multipart_threshold=PART, concurrency=4)
    async with TransferEngine(config=config, **engine_kwargs) as engine:
        up = await engine.upload(src, bucket, "obj", sse_key=key)
        down = await engine.download(bucket, "obj", dest, sse_key=key)
    assert filecmp.cmp(src, dest, shallow=False)
    assert up.size == down.size == size
    expected_parts = 1 if size < PART else -(-size // PART)
    assert up.parts == expected_parts
    assert down.parts == (1 if size <= PART else -(-size // PART))
    assert up.key_fingerprint == key.fingerprint
    expected = digest_text(crc32c(src.read_bytes()))
    assert up.checksum == down.checksum == expected  # whole-object CRC32C, from part CRCs
    assert up.etag  # even where CompleteMultipartUpload answers with an empty ETag (Ceph)
    assert down.etag == up.etag
    assert admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    # The server really stored it encrypted: it refuses to serve it without the key.
    with pytest.raises(ClientError) as refused:
        admin.get_object(Bucket=bucket, Key="obj")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_large_object_through_the_cli(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    """300 MiB with 8 MiB parts and concurrency 8, as a user would run it."""
    key_path, key = key_file
    src = random_file(tmp_path / "big.bin", 300 * MiB)
    up = run_cli(
        "put", src, f"s3://{bucket}/dir/", "--key-file", key_path,
        "--part-size", "8MiB", "--concurrency", "8", "--json", env=server_env,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    result = json.loads(up.stdout)
    assert result["key"] == "dir/big.bin"
    assert result["parts"] == 38
    assert result["key_fingerprint"] == key.fingerprint
    assert set(result) >= {"bucket", "key", "version_id", "size", "etag", "seconds", "mib_per_s"}

    dest = tmp_path / "copy.bin"
    down = run_cli(
        "get", f"s3://{bucket}/dir/big.bin", dest, "--key-file", key_path,
        "--part-size", "8MiB", "--concurrency", "8", "--json", env=server_env,
    )  # fmt: skip
    assert down.returncode == 0, down.stderr
    assert json.loads(down.stdout)["parts"] == 38
    assert filecmp.cmp(src, dest, shallow=False)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".copy.bin")]


def test_head_reports_size_etag_version_and_fingerprint(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    key_path, key = key_file
    src = random_file(tmp_path / "f.bin", 1234)
    assert run_cli("put", src, f"s3://{bucket}/f.bin", "--key-file", key_path,
                   env=server_env).returncode == 0  # fmt: skip
    head = run_cli("head", f"s3://{bucket}/f.bin", "--key-file", key_path, env=server_env)
    assert head.returncode == 0, head.stderr
    info = json.loads(head.stdout)
    assert info["size"] == 1234
    assert info["key_fingerprint"] == key.fingerprint
    assert info["sse_customer_algorithm"] == "AES256"
    assert info["etag"]
    assert "last_modified" in info
    assert "version_id" in info


def test_get_into_existing_directory_uses_object_name(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    src = random_file(tmp_path / "product.nc", 4096)
    out = tmp_path / "out"
    out.mkdir()
    assert run_cli("put", src, f"s3://{bucket}/a/b/", "--key-file", key_path,
                   env=server_env).returncode == 0  # fmt: skip
    got = run_cli("get", f"s3://{bucket}/a/b/product.nc", out, "--key-file", key_path,
                  env=server_env)  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert (out / "product.nc").read_bytes() == src.read_bytes()


def test_python_sync_api(tmp_path: Path, bucket: str, engine_kwargs: dict[str, str]) -> None:
    from ssec_transfer import sync

    key = SSECustomerKey.generate()
    src = random_file(tmp_path / "s.bin", 6 * MiB)
    up = sync.upload(src, bucket, "s.bin", sse_key=key, **engine_kwargs)
    info = sync.head(bucket, "s.bin", sse_key=key, **engine_kwargs)
    assert info.size == up.size == 6 * MiB
    sync.download(bucket, "s.bin", tmp_path / "d.bin", sse_key=key, **engine_kwargs)
    assert (tmp_path / "d.bin").read_bytes() == src.read_bytes()
