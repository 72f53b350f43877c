"""Key problems end with exit 3 and one clear message, and leave DEST exactly as it was."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.support.helpers import make_key_file, random_file, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture
def stored(tmp_path: Path, bucket: str, server_env: dict[str, str], key_file):  # type: ignore[no-untyped-def]
    """An SSE-C object of two ranged parts, and a plain (not SSE-C) object beside it."""
    key_path, _ = key_file
    src = random_file(tmp_path / "obj.bin", 12 * 1024 * 1024)
    put = run_cli("put", src, f"s3://{bucket}/obj.bin", "--key-file", key_path, env=server_env)
    assert put.returncode == 0, put.stderr
    return src, key_path


def _existing_dest(tmp_path: Path) -> Path:
    dest = tmp_path / "dest.bin"
    dest.write_bytes(b"precious old content")
    return dest


def _assert_untouched(dest: Path) -> None:
    assert dest.read_bytes() == b"precious old content"
    leftovers = [p.name for p in dest.parent.iterdir() if p.name.startswith(".dest.bin")]
    assert leftovers == []


@pytest.mark.parametrize("command", ["get", "head"])
def test_wrong_key_exit_3_and_dest_untouched(
    command: str, tmp_path: Path, bucket: str, server_env: dict[str, str], stored
) -> None:  # type: ignore[no-untyped-def]
    wrong_path, _ = make_key_file(tmp_path, "wrong.key")
    dest = _existing_dest(tmp_path)
    args = ["get", f"s3://{bucket}/obj.bin", dest] if command == "get" else [
        "head", f"s3://{bucket}/obj.bin"]  # fmt: skip
    result = run_cli(*args, "--key-file", wrong_path, env=server_env)
    assert result.returncode == 3, result.stderr
    assert "the key does not match this object" in result.stderr
    assert f"s3://{bucket}/obj.bin" in result.stderr
    assert "hint:" in result.stderr
    # The refused request's status and request id, as a support ticket needs them.
    assert re.search(r"\(HTTP 40[03], request id [^)\s]+\)", result.stderr), result.stderr
    _assert_untouched(dest)


def test_missing_key_exit_3(
    tmp_path: Path, bucket: str, server_env: dict[str, str], stored
) -> None:  # type: ignore[no-untyped-def]
    dest = _existing_dest(tmp_path)
    result = run_cli("get", f"s3://{bucket}/obj.bin", dest, "--json", env=server_env)
    assert result.returncode == 3
    assert "SSE-C encrypted and no key was given" in result.stderr
    assert "--key-file" in result.stderr
    error = json.loads(result.stdout)
    assert (error["type"], error["error_type"]) == ("error", "MissingKeyError")
    assert error["key"] == "obj.bin"
    assert error["exit_code"] == 3
    assert "--key-file" in error["hint"]
    assert "\n" not in error["error"]
    _assert_untouched(dest)


def test_key_for_plain_object_exit_3(
    tmp_path: Path, bucket: str, server_env: dict[str, str], admin, key_file
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    admin.put_object(Bucket=bucket, Key="plain.txt", Body=b"not encrypted")
    dest = _existing_dest(tmp_path)
    result = run_cli("get", f"s3://{bucket}/plain.txt", dest, "--key-file", key_path,
                     env=server_env)  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert "not SSE-C encrypted" in result.stderr
    _assert_untouched(dest)
    # Without a key, a plain object downloads normally.
    ok = run_cli("get", f"s3://{bucket}/plain.txt", dest, env=server_env)
    assert ok.returncode == 0, ok.stderr
    assert dest.read_bytes() == b"not encrypted"


def test_missing_object_and_bucket_exit_1(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    dest = _existing_dest(tmp_path)
    missing = run_cli("get", f"s3://{bucket}/nope", dest, "--key-file", key_path, env=server_env)
    assert missing.returncode == 1
    assert "object does not exist" in missing.stderr
    _assert_untouched(dest)

    nobucket = run_cli("get", "s3://no-such-bucket-4242/x", dest, "--key-file", key_path,
                       env=server_env)  # fmt: skip
    assert nobucket.returncode == 1
    assert "bucket 'no-such-bucket-4242' does not exist" in nobucket.stderr
    _assert_untouched(dest)


def test_impossible_part_size_rejected_before_any_request(
    tmp_path: Path, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    src = random_file(tmp_path / "x.bin", 10)
    env = dict(server_env, AWS_ENDPOINT_URL="https://127.0.0.1:1")  # nothing listens there
    result = run_cli("put", src, "s3://b/x", "--key-file", key_path, "--part-size", "1MiB",
                     env=env)  # fmt: skip
    assert result.returncode == 2
    assert "below the S3 minimum of 5 MiB" in result.stderr


def test_source_missing_exit_2(tmp_path: Path, server_env: dict[str, str], key_file) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    result = run_cli("put", tmp_path / "nope.bin", "s3://b/x", "--key-file", key_path,
                     env=server_env)  # fmt: skip
    assert result.returncode == 2
    assert "does not exist" in result.stderr
