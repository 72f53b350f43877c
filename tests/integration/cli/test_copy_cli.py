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


def test_a_rerun_verifies_objects_it_finds_under_the_new_key(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file, admin
) -> None:  # type: ignore[no-untyped-def]
    """An object already under the new key that the ledger does not record as rotated (a
    worker died between the copy and its read-back, or another machine rotated it) is read
    back in full with the new key before it counts as rotated: one whose sealed CRC32C does
    not match its bytes fails; an honest one is skipped; neither is rewritten."""
    from ssec_transfer.keys.seal import SourceFacts, sealed_metadata
    from ssec_transfer.s3.sse import sse_params

    old_path, _ = key_file
    new_path, new = make_key_file(tmp_path, "new.key")
    honest, forged = b"honest bytes" * 100, b"forged bytes" * 100
    for name, body, crc in (("r/honest", honest, None), ("r/forged", forged, 12345)):
        facts = SourceFacts(size=len(body), mtime_ns=None, crc32c=crc)
        admin.put_object(Bucket=bucket, Key=name, Body=body, **sse_params(new),
                         Metadata=sealed_metadata(facts, new, bucket, name))  # fmt: skip
    run = run_cli("rotate", f"s3://{bucket}/r/", "--recursive", "--key-file", old_path,
                  "--new-key-file", new_path, "--json", env=server_env)  # fmt: skip
    assert run.returncode == 1, run.stderr
    rows = {r["key"]: r for r in map(json.loads, run.stdout.splitlines()) if r.get("key")}
    assert (rows["r/honest"]["status"], rows["r/honest"]["reason"]) == (
        "skipped",
        "already-rotated",
    )
    assert rows["r/forged"]["status"] == "failed"
    assert rows["r/forged"]["error_type"] == "IntegrityError"
    assert "is not the" in rows["r/forged"]["error"]
    for name, body in (("r/honest", honest), ("r/forged", forged)):
        got = admin.get_object(Bucket=bucket, Key=name, **sse_params(new))["Body"].read()
        assert got == body  # read, never rewritten
