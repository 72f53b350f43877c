"""cp, rotate and ls as users type them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.helpers import make_key_file, random_file, run_cli

pytestmark = pytest.mark.integration


def test_cp_rotate_ls_through_the_cli(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    old_path, old = key_file
    new_path, new = make_key_file(tmp_path, "new.key")
    src = random_file(tmp_path / "f.bin", 12 * 1024 * 1024)
    assert run_cli("put", src, f"s3://{bucket}/a/f.bin", "--key-file", old_path,
                   env=server_env).returncode == 0  # fmt: skip

    cp = run_cli("cp", f"s3://{bucket}/a/f.bin", f"s3://{bucket}/b/", "--source-key-file",
                 old_path, "--key-file", new_path, "--json", env=server_env)  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    copied = json.loads(cp.stdout)
    assert copied["key"] == "b/f.bin"
    assert copied["verified"] is True
    assert copied["key_fingerprint"] == new.fingerprint

    rotate = run_cli("rotate", f"s3://{bucket}/a/f.bin", "--key-file", old_path,
                     "--new-key-file", new_path, "--json", env=server_env)  # fmt: skip
    assert rotate.returncode == 0, rotate.stderr
    assert json.loads(rotate.stdout)["via"] in ("server-copy", "server-part-copy", "stream")
    stale = run_cli("head", f"s3://{bucket}/a/f.bin", "--key-file", old_path, env=server_env)
    assert stale.returncode == 3
    out = tmp_path / "out.bin"
    got = run_cli("get", f"s3://{bucket}/a/f.bin", out, "--key-file", new_path, env=server_env)
    assert got.returncode == 0, got.stderr
    assert out.read_bytes() == src.read_bytes()

    listed = run_cli("ls", f"s3://{bucket}/", "--recursive", "--json", env=server_env)
    assert listed.returncode == 0, listed.stderr
    rows = {r["key"]: r for r in map(json.loads, listed.stdout.splitlines())}
    assert set(rows) == {"a/f.bin", "b/f.bin"}
    assert rows["a/f.bin"]["key_fingerprint"] == new.fingerprint  # the ledger knows
    assert old.fingerprint != new.fingerprint


def test_rotate_refuses_the_same_key(tmp_path: Path, server_env: dict[str, str], key_file) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    result = run_cli("rotate", "s3://b/k", "--key-file", key_path, "--new-key-file", key_path,
                     env=server_env)  # fmt: skip
    assert result.returncode == 2
    assert "the new key is the old key" in result.stderr
