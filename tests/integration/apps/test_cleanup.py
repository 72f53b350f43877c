"""cleanup lists and removes abandoned multipart uploads; --dry-run removes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.sse import sse_params
from tests.support.helpers import run_cli

pytestmark = pytest.mark.integration


def test_cleanup_dry_run_then_remove(bucket: str, admin, server_env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    key = SSECustomerKey.generate()
    for name in ("a/one.bin", "a/two.bin", "b/other.bin"):
        admin.create_multipart_upload(Bucket=bucket, Key=name, **sse_params(key))
    dry = run_cli("cleanup", f"s3://{bucket}/a/", "--dry-run", "--json", env=server_env)
    assert dry.returncode == 0, dry.stderr
    listed = [json.loads(line) for line in dry.stdout.splitlines()]
    assert sorted(item["key"] for item in listed) == ["a/one.bin", "a/two.bin"]
    assert not any(item["removed"] for item in listed)
    assert len(admin.list_multipart_uploads(Bucket=bucket)["Uploads"]) == 3

    done = run_cli("cleanup", f"s3://{bucket}/a/", env=server_env)
    assert done.returncode == 0, done.stderr
    assert "removed 2 leftover(s)" in done.stderr
    left = [u["Key"] for u in admin.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    assert left == ["b/other.bin"]


def test_cleanup_spares_recent_uploads(bucket: str, admin, server_env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    admin.create_multipart_upload(Bucket=bucket, Key="fresh.bin")
    result = run_cli("cleanup", f"s3://{bucket}", "--older-than", "3600", env=server_env)
    assert result.returncode == 0, result.stderr
    assert len(admin.list_multipart_uploads(Bucket=bucket)["Uploads"]) == 1


def test_cleanup_missing_bucket(server_env: dict[str, str], tmp_path: Path) -> None:
    result = run_cli("cleanup", "s3://no-such-bucket-cleanup", env=server_env)
    assert result.returncode == 1
    assert "no-such-bucket-cleanup" in result.stderr
