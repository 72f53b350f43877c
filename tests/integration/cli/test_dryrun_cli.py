"""`--dryrun` on put and get: the plan printed as aws prints it, nothing sent or written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ssec_transfer.keys.customer import SSECustomerKey
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
