"""`--dryrun` on put and get: the plan printed as aws prints it, nothing sent or written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.sse import sse_params
from tests.support.helpers import run_cli

pytestmark = pytest.mark.integration


def test_put_and_get_dryrun_send_and_write_nothing(
    tmp_path: Path, bucket: str, key_file: tuple[Path, SSECustomerKey],
    server_env: dict[str, str], admin: Any,
) -> None:  # fmt: skip
    key_path, _ = key_file
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.nc").write_bytes(b"a" * 10)
    (src / "sub" / "b.nc").write_bytes(b"b" * 20)

    done = run_cli("put", src, f"s3://{bucket}/l1/", "--recursive", "--key-file", key_path,
                   "--dryrun", "--json", env=server_env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert {(r["source"], r["destination"], r["status"]) for r in rows} == {
        (str(src / "a.nc"), f"s3://{bucket}/l1/a.nc", "dryrun"),
        (str(src / "sub/b.nc"), f"s3://{bucket}/l1/sub/b.nc", "dryrun"),
    }
    assert f"(dryrun) upload: {src / 'a.nc'} to s3://{bucket}/l1/a.nc" in done.stderr
    assert "Contents" not in admin.list_objects_v2(Bucket=bucket)

    done = run_cli("put", src / "a.nc", f"s3://{bucket}/one/", "--key-file", key_path,
                   "--dry-run", env=server_env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"(dryrun) upload: {src / 'a.nc'} to s3://{bucket}/one/a.nc" in done.stderr
    assert "Contents" not in admin.list_objects_v2(Bucket=bucket)

    assert run_cli("put", src, f"s3://{bucket}/l1/", "--recursive", "--key-file", key_path,
                   env=server_env).returncode == 0  # fmt: skip
    dest = tmp_path / "dest"
    done = run_cli("get", f"s3://{bucket}/l1/", dest, "--recursive", "--key-file", key_path,
                   "--dryrun", env=server_env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"(dryrun) download: s3://{bucket}/l1/sub/b.nc to {dest / 'sub/b.nc'}" in done.stderr
    assert "2 would be transferred" in done.stderr
    assert not dest.exists()


def test_cp_and_rotate_dryrun_change_nothing(
    tmp_path: Path, bucket: str, key_file: tuple[Path, SSECustomerKey],
    server_env: dict[str, str], admin: Any,
) -> None:  # fmt: skip
    key_path, key = key_file
    new_path = tmp_path / "new.key"
    SSECustomerKey.generate().write_new_file(new_path)
    for name in ("l1/a.nc", "l1/sub/b.nc"):
        admin.put_object(Bucket=bucket, Key=name, Body=b"x" * 10, **sse_params(key))
    done = run_cli("cp", f"s3://{bucket}/l1/", f"s3://{bucket}/l2/", "--recursive",
                   "--source-key-file", key_path, "--key-file", key_path, "--dryrun", "--json",
                   env=server_env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"(dryrun) copy: s3://{bucket}/l1/sub/b.nc to s3://{bucket}/l2/sub/b.nc" in done.stderr
    assert [json.loads(line)["status"] for line in done.stdout.splitlines()] == ["dryrun"] * 2
    done = run_cli("rotate", f"s3://{bucket}/l1/", "--recursive", "--key-file", key_path,
                   "--new-key-file", new_path, "--dryrun", env=server_env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"(dryrun) rotate: s3://{bucket}/l1/a.nc to key" in done.stderr
    keys = sorted(o["Key"] for o in admin.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["l1/a.nc", "l1/sub/b.nc"]
    got = admin.get_object(Bucket=bucket, Key="l1/a.nc", **sse_params(key))  # the old key still
    assert got["Body"].read() == b"x" * 10
