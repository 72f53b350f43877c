"""The bad-input catalogue (docs/errors.md): each case gets a clear error, its documented
exit code, and loses nothing. Key-file cases are in tests/unit/keys/test_keys.py; wrong, missing
and unexpected keys in test_key_errors.py; http:// endpoints in test_https_guard.py and
test_server_differences.py; Ctrl-C during uploads in test_abort.py."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ssec_transfer import ObjectChangedError, SSECustomerKey, TransferConfig, TransferEngine
from ssec_transfer.core.plan import MiB
from ssec_transfer.s3.sse import sse_params
from tests.support.helpers import random_file, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture
def stored(bucket: str, admin, key_file) -> tuple[str, Path, SSECustomerKey]:  # type: ignore[no-untyped-def]
    key_path, key = key_file
    admin.put_object(Bucket=bucket, Key="obj", Body=os.urandom(1000), **sse_params(key))
    return f"s3://{bucket}/obj", key_path, key


def _existing(path: Path) -> Path:
    path.write_bytes(b"keep me")
    return path


def test_unreachable_endpoint(tmp_path: Path, server_env: dict[str, str], key_file) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    dest = _existing(tmp_path / "d.bin")
    env = dict(server_env, AWS_ENDPOINT_URL="https://127.0.0.1:1", AWS_MAX_ATTEMPTS="1")
    result = run_cli("get", "s3://b/k", dest, "--key-file", key_path, "--max-attempts", "1",
                     env=env)  # fmt: skip
    assert result.returncode == 1
    assert "cannot connect to the endpoint" in result.stderr
    assert dest.read_bytes() == b"keep me"


def test_untrusted_certificate(stored, tmp_path: Path, server_env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    url, key_path, _ = stored
    env = {k: v for k, v in server_env.items() if k != "AWS_CA_BUNDLE"}
    result = run_cli("get", url, tmp_path / "d.bin", "--key-file", key_path, env=env)
    assert result.returncode == 1
    assert "TLS certificate could not be verified" in result.stderr
    assert "--ca-bundle" in result.stderr
    assert not (tmp_path / "d.bin").exists()


def test_wrong_credentials(stored, tmp_path: Path, server_env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    url, key_path, _ = stored
    env = dict(server_env, AWS_SECRET_ACCESS_KEY="not-the-secret")
    result = run_cli("get", url, tmp_path / "d.bin", "--key-file", key_path, env=env)
    assert result.returncode == 1
    assert "credentials" in result.stderr or "access denied" in result.stderr
    assert not (tmp_path / "d.bin").exists()


def test_no_credentials(tmp_path: Path, server_env: dict[str, str], key_file) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    env = {k: v for k, v in server_env.items() if k not in ("AWS_ACCESS_KEY_ID",
                                                           "AWS_SECRET_ACCESS_KEY")}  # fmt: skip
    result = run_cli("head", "s3://b/k", "--key-file", key_path, env=env)
    assert result.returncode == 2
    assert "no S3 credentials found" in result.stderr


def test_unknown_profile(server_env: dict[str, str], key_file) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    result = run_cli("head", "s3://b/k", "--key-file", key_path, "--profile", "nope",
                     env=server_env)  # fmt: skip
    assert result.returncode == 2
    assert "nope" in result.stderr


def test_missing_version(
    tmp_path: Path, bucket: str, admin, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    key_path, key = key_file
    admin.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    admin.put_object(Bucket=bucket, Key="obj", Body=b"v1", **sse_params(key))
    bogus = "3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY"
    result = run_cli("get", f"s3://{bucket}/obj", tmp_path / "d.bin", "--key-file", key_path,
                     "--version-id", bogus, env=server_env)  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "version" in result.stderr
    assert not (tmp_path / "d.bin").exists()


def test_source_is_a_directory(tmp_path: Path, server_env: dict[str, str], key_file) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    result = run_cli("put", tmp_path, "s3://b/k", "--key-file", key_path, env=server_env)
    assert result.returncode == 2
    assert "is a directory" in result.stderr
    assert "--recursive" in result.stderr


def test_dest_folder_missing(stored, tmp_path: Path, server_env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    url, key_path, _ = stored
    result = run_cli("get", url, tmp_path / "nope" / "d.bin", "--key-file", key_path,
                     env=server_env)  # fmt: skip
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_dest_folder_read_only(stored, server_env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    url, key_path, _ = stored
    # /proc refuses new files even for root, unlike a chmod-ed folder.
    result = run_cli("get", url, "/proc/ssec-transfer-test.bin", "--key-file", key_path,
                     env=server_env)  # fmt: skip
    assert result.returncode == 1
    assert "cannot create a file in /proc" in result.stderr


def test_dest_is_a_directory_receives_the_object(stored, tmp_path: Path, server_env) -> None:  # type: ignore[no-untyped-def]
    url, key_path, _ = stored
    result = run_cli("get", url, tmp_path, "--key-file", key_path, env=server_env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "obj").stat().st_size == 1000


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          check=False, capture_output=True)  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs here: {done.stderr!r}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_disk_full_during_download(
    tiny_tmpfs: Path, bucket: str, server_env: dict[str, str], key_file, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    src = random_file(tmp_path / "big.bin", 12 * MiB)
    assert run_cli("put", src, f"s3://{bucket}/big.bin", "--key-file", key_path,
                   env=server_env).returncode == 0  # fmt: skip
    result = run_cli("get", f"s3://{bucket}/big.bin", tiny_tmpfs / "big.bin", "--key-file",
                     key_path, env=server_env)  # fmt: skip
    assert result.returncode == 1
    assert "space" in result.stderr or "disk full" in result.stderr
    assert os.listdir(tiny_tmpfs) == []  # no partial file, no temporary file


@pytest.mark.parametrize(
    ("size", "message"),
    [("4MiB", "below the S3 minimum of 5 MiB"), ("6GiB", "above the S3 maximum of 5 GiB")],
)
def test_impossible_part_sizes(
    size: str, message: str, tmp_path: Path, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    src = random_file(tmp_path / "f.bin", 100)
    result = run_cli("put", src, "s3://b/k", "--key-file", key_path, "--part-size", size,
                     env=server_env)  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr


def test_more_than_ten_thousand_parts(
    tmp_path: Path, bucket: str, admin, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    sparse = tmp_path / "sparse.bin"
    with sparse.open("wb") as f:
        f.truncate(60 * 1024 * MiB)  # 60 GiB, no blocks used
    result = run_cli("put", sparse, f"s3://{bucket}/s", "--key-file", key_path,
                     "--part-size", "5MiB", env=server_env)  # fmt: skip
    assert result.returncode == 2
    assert "S3 allows at most 10,000" in result.stderr
    assert "--part-size 7MiB" in result.stderr
    assert admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://s3.example.com/b/k?X-Amz-Signature=abc", "pass it with --url"),
        ("s3:/bucket/key", "is not an s3:// URL"),
        ("bucket/key", "is not an s3:// URL"),
        ("s3:///key", "names no bucket"),
    ],
)
def test_malformed_urls(url: str, message: str, server_env: dict[str, str], key_file) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    result = run_cli("head", url, "--key-file", key_path, env=server_env)
    assert result.returncode == 2
    assert message in result.stderr
    assert "abc" not in result.stderr  # the signature is not echoed back


def test_endpoint_given_as_s3_url(server_env: dict[str, str], key_file) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    result = run_cli("head", "s3://b/k", "--key-file", key_path, "--endpoint-url", "s3://b",
                     env=server_env)  # fmt: skip
    assert result.returncode == 2
    assert "not an s3:// URL" in result.stderr


@pytest.mark.anyio
async def test_object_changed_during_download(
    tmp_path: Path, bucket: str, admin, engine_kwargs: dict[str, str]
) -> None:  # type: ignore[no-untyped-def]
    key = SSECustomerKey.generate()
    src = random_file(tmp_path / "src.bin", 20 * MiB)
    dest = _existing(tmp_path / "dest.bin")
    changed = False

    def replace_object_once(done: int, total: int) -> None:
        nonlocal changed
        if done and not changed:
            changed = True
            admin.put_object(Bucket=bucket, Key="obj", Body=b"new", **sse_params(key))

    config = TransferConfig(part_size=5 * MiB, multipart_threshold=5 * MiB, concurrency=1)
    async with TransferEngine(config=config, **engine_kwargs) as engine:
        await engine.upload(src, bucket, "obj", sse_key=key)
        with pytest.raises(ObjectChangedError) as info:
            await engine.download(bucket, "obj", dest, sse_key=key, progress=replace_object_once)
    assert info.value.exit_code == 1
    assert "changed while it was being read" in str(info.value)
    assert dest.read_bytes() == b"keep me"
    leftovers = [name for name in os.listdir(tmp_path) if name.startswith(".dest")]
    assert leftovers == []


def test_ctrl_c_during_download(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    src = random_file(tmp_path / "src.bin", 100 * MiB)
    assert run_cli("put", src, f"s3://{bucket}/big", "--key-file", key_path,
                   env=server_env).returncode == 0  # fmt: skip
    out = tmp_path / "out"
    out.mkdir()
    dest = _existing(out / "dest.bin")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ssec_transfer", "get", f"s3://{bucket}/big", str(dest),
         "--key-file", str(key_path), "--concurrency", "1", "--part-size", "5MiB"],
        env=server_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while len(os.listdir(out)) < 2:  # the temporary file appeared
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in err
    assert os.listdir(out) == ["dest.bin"]
    assert dest.read_bytes() == b"keep me"


def test_ctrl_c_during_bulk_upload(
    tmp_path: Path, bucket: str, admin, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    tree = tmp_path / "t"
    for i in range(4):
        random_file(tree / f"f{i}.bin", 30 * MiB)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ssec_transfer", "put", str(tree), f"s3://{bucket}/t/",
         "--recursive", "--key-file", str(key_path), "--concurrency", "2", "--part-size", "5MiB"],
        env=server_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not admin.list_multipart_uploads(Bucket=bucket).get("Uploads"):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in err
    assert admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    shutil.rmtree(tree)
