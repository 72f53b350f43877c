"""`sync` against the real server: what is sent, skipped and deleted, proven without the ledger
of the machine that uploaded, and the sealed facts that make it possible."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from ssec_transfer.core.crc import crc32c
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.keys.seal import METADATA_NAME, facts_in
from ssec_transfer.s3.sse import sse_params
from tests.support.helpers import run_cli

pytestmark = pytest.mark.integration

KeyFile = tuple[Path, SSECustomerKey]


def make_tree(root: Path) -> dict[str, bytes]:
    """Small files (sealed with their CRC32C) and one multipart file (size and mtime only)."""
    files = {
        "a.nc": os.urandom(1000),
        "sub/b.nc": os.urandom(2000),
        "sub/deeper/c.nc": os.urandom(3000),
        "big.bin": os.urandom(5 * 1024 * 1024 + 17),
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def sync(
    *args: Any, env: dict[str, str], fresh_ledger: bool = True
) -> tuple[int, list[dict[str, Any]], str]:
    """Run sync with --json; each run with no ledger, as on another machine."""
    extra = ["--no-ledger"] if fresh_ledger else []
    done = run_cli("sync", *args, "--json", "--multipart-threshold", "4MiB", *extra, env=env)
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return done.returncode, rows, done.stderr


def objects(rows: list[dict[str, Any]]) -> dict[str, tuple[str, str | None]]:
    """source (or destination of a deletion) -> (status, reason)."""
    return {r["source"]: (r["status"], r["reason"]) for r in rows if r["type"] == "object"}


def statuses(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(r["status"] for r in rows if r["type"] == "object")


def keys_in(admin: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in admin.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_a_second_sync_from_another_machine_sends_nothing(
    tmp_path: Path, bucket: str, key_file: KeyFile, server_env: dict[str, str]
) -> None:
    key_path, _ = key_file
    src = tmp_path / "src"
    make_tree(src)
    code, rows, err = sync(src, f"s3://{bucket}/l1/", "--key-file", key_path, env=server_env)
    assert code == 0, err
    assert statuses(rows) == ["ok"] * 4
    assert {r["reason"] for r in rows if r["type"] == "object"} == {"new"}

    # Another machine: the same files copied with their mtimes (cp -p), no ledger.
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(src, elsewhere)  # copy2 keeps the mtimes
    code, rows, err = sync(elsewhere, f"s3://{bucket}/l1", "--key-file", key_path, env=server_env)
    assert code == 0, err
    assert statuses(rows) == ["skipped"] * 4
    assert {r["reason"] for r in rows if r["type"] == "object"} == {"same-sealed"}
    summary = rows[-1]
    assert summary["type"] == "summary"
    assert (summary["ok"], summary["skipped"], summary["bytes"]) == (0, 4, 0)


def test_changes_in_size_mtime_or_content_are_sent(
    tmp_path: Path, bucket: str, key_file: KeyFile, server_env: dict[str, str], admin: Any
) -> None:
    key_path, key = key_file
    src = tmp_path / "src"
    make_tree(src)
    assert sync(src, f"s3://{bucket}/p/", "--key-file", key_path, env=server_env)[0] == 0

    (src / "a.nc").write_bytes(os.urandom(1001))  # size
    st = os.stat(src / "big.bin")
    data = bytearray((src / "big.bin").read_bytes())
    data[0] ^= 0xFF
    (src / "big.bin").write_bytes(bytes(data))  # same size, new mtime, multipart: no CRC
    os.utime(src / "big.bin", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    same = src / "sub/b.nc"
    st = os.stat(same)
    os.utime(same, ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10**9))  # touched, same bytes
    changed = src / "sub/deeper/c.nc"
    st = os.stat(changed)
    changed.write_bytes(os.urandom(3000))  # same size, same mtime, other bytes
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns))

    code, rows, err = sync(src, f"s3://{bucket}/p/", "--key-file", key_path, env=server_env)
    assert code == 0, err
    seen = objects(rows)
    assert seen[str(src / "a.nc")] == ("ok", "size-differs")
    assert seen[str(src / "big.bin")] == ("ok", "mtime-differs")
    assert seen[str(src / "sub/b.nc")] == ("skipped", "same-checksum")
    # Same size and mtime, other bytes: only a content comparison can tell.
    assert seen[str(src / "sub/deeper/c.nc")] == ("skipped", "same-sealed")
    code, rows, err = sync(
        src, f"s3://{bucket}/p/", "--key-file", key_path, "--compare-checksums", env=server_env
    )
    assert code == 0, err
    assert objects(rows)[str(src / "sub/deeper/c.nc")] == ("ok", "checksum-differs")
    got = admin.get_object(Bucket=bucket, Key="p/sub/deeper/c.nc", **sse_params(key))
    assert got["Body"].read() == changed.read_bytes()


def test_download_sync_sets_mtimes_and_then_sends_nothing(
    tmp_path: Path, bucket: str, key_file: KeyFile, server_env: dict[str, str]
) -> None:
    key_path, _ = key_file
    src = tmp_path / "src"
    files = make_tree(src)
    assert sync(src, f"s3://{bucket}/d/", "--key-file", key_path, env=server_env)[0] == 0
    mirror = tmp_path / "mirror"
    code, rows, err = sync(f"s3://{bucket}/d/", mirror, "--key-file", key_path, env=server_env)
    assert code == 0, err
    assert statuses(rows) == ["ok"] * 4
    for rel, data in files.items():
        assert (mirror / rel).read_bytes() == data
        assert os.stat(mirror / rel).st_mtime_ns == os.stat(src / rel).st_mtime_ns
    code, rows, err = sync(f"s3://{bucket}/d/", mirror, "--key-file", key_path, env=server_env)
    assert code == 0, err
    assert statuses(rows) == ["skipped"] * 4


def test_delete_removes_only_what_the_source_lacks_and_dryrun_changes_nothing(
    tmp_path: Path, bucket: str, key_file: KeyFile, server_env: dict[str, str], admin: Any
) -> None:
    key_path, _ = key_file
    src = tmp_path / "src"
    make_tree(src)
    assert sync(src, f"s3://{bucket}/x/", "--key-file", key_path, env=server_env)[0] == 0
    admin.put_object(Bucket=bucket, Key="x-other/keep.txt", Body=b"outside the prefix")
    (src / "a.nc").unlink()
    (src / "new.nc").write_bytes(b"new")

    code, rows, err = sync(
        src, f"s3://{bucket}/x/", "--key-file", key_path, "--delete", "--dryrun", env=server_env
    )
    assert code == 0, err
    seen = objects(rows)
    assert seen[f"s3://{bucket}/x/a.nc"] == ("dryrun", "not-in-source")
    assert seen[str(src / "new.nc")] == ("dryrun", "new")
    assert "x/a.nc" in keys_in(admin, bucket)
    assert "x/new.nc" not in keys_in(admin, bucket)

    code, rows, err = sync(src, f"s3://{bucket}/x/", "--key-file", key_path, "--delete",
                           env=server_env)  # fmt: skip
    assert code == 0, err
    assert keys_in(admin, bucket) == sorted(
        ["x-other/keep.txt", "x/big.bin", "x/new.nc", "x/sub/b.nc", "x/sub/deeper/c.nc"]
    )

    # And the other way: the local mirror loses what the prefix no longer holds.
    mirror = tmp_path / "mirror"
    assert sync(f"s3://{bucket}/x/", mirror, "--key-file", key_path, env=server_env)[0] == 0
    (mirror / "stray.txt").write_bytes(b"not in the bucket")
    (mirror / "kept.tmp").write_bytes(b"excluded, so never deleted")
    code, rows, err = sync(f"s3://{bucket}/x/", mirror, "--key-file", key_path, "--delete",
                           "--exclude", "*.tmp", env=server_env)  # fmt: skip
    assert code == 0, err
    assert objects(rows)[str(mirror / "stray.txt")] == ("ok", "not-in-source")
    assert not (mirror / "stray.txt").exists()
    assert (mirror / "kept.tmp").exists()


def test_a_failed_transfer_holds_back_deletions(
    tmp_path: Path, bucket: str, key_file: KeyFile, server_env: dict[str, str], admin: Any
) -> None:
    key_path, _ = key_file
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.nc").write_bytes(b"a")
    admin.put_object(Bucket=bucket, Key="y/old.nc", Body=b"only at the destination")
    os.mkfifo(src / "pipe")  # cannot be sent: fails, so nothing may be deleted
    code, rows, err = sync(src, f"s3://{bucket}/y/", "--key-file", key_path, "--delete",
                           env=server_env)  # fmt: skip
    assert code == 1
    assert "not deleted: 1 paths only DEST holds" in err
    assert "y/old.nc" in keys_in(admin, bucket)
    assert rows[-1]["deletions_held"] == 1


def test_s3_to_s3_reseals_under_the_target_key(
    tmp_path: Path, bucket: str, key_file: KeyFile, server_env: dict[str, str], admin: Any
) -> None:
    key_path, _ = key_file
    new = SSECustomerKey.generate()
    new_path = tmp_path / "new.key"
    new.write_new_file(new_path)
    src = tmp_path / "src"
    make_tree(src)
    assert sync(src, f"s3://{bucket}/from/", "--key-file", key_path, env=server_env)[0] == 0
    args = (f"s3://{bucket}/from/", f"s3://{bucket}/to/", "--source-key-file", key_path,
            "--key-file", new_path)  # fmt: skip
    code, rows, err = sync(*args, env=server_env)
    assert code == 0, err
    assert statuses(rows) == ["ok"] * 4
    head = admin.head_object(Bucket=bucket, Key="to/a.nc", **sse_params(new))
    facts = facts_in(head["Metadata"], new, bucket, "to/a.nc")
    assert facts is not None
    assert facts.mtime_ns == os.stat(src / "a.nc").st_mtime_ns
    code, rows, err = sync(*args, env=server_env)
    assert code == 0, err
    assert statuses(rows) == ["skipped"] * 4
    # And the local tree, compared with the copies, is the same too.
    code, rows, err = sync(src, f"s3://{bucket}/to/", "--key-file", new_path, env=server_env)
    assert code == 0, err
    assert statuses(rows) == ["skipped"] * 4


def test_the_seal_cannot_be_read_or_forged_without_the_key(
    tmp_path: Path, bucket: str, key_file: KeyFile, server_env: dict[str, str], admin: Any
) -> None:
    key_path, key = key_file
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.nc").write_bytes(b"x" * 4321)
    assert sync(src, f"s3://{bucket}/s/", "--key-file", key_path, env=server_env)[0] == 0
    head = admin.head_object(Bucket=bucket, Key="s/a.nc", **sse_params(key))
    stored = head["Metadata"][METADATA_NAME]
    assert "4321" not in base64.b64decode(stored.split(":", 1)[1]).decode("latin-1")
    assert facts_in(head["Metadata"], SSECustomerKey.generate(), bucket, "s/a.nc") is None

    # Someone with write access but not the key rewrites the metadata (server-side copy of a
    # plain object cannot keep SSE-C, so forge on a fresh upload with a made-up seal).
    forged = {METADATA_NAME: "1:" + base64.b64encode(os.urandom(60)).decode()}
    admin.put_object(Bucket=bucket, Key="s/a.nc", Body=b"y" * 4321, Metadata=forged,
                     **sse_params(key))  # fmt: skip
    code, rows, err = sync(src, f"s3://{bucket}/s/", "--key-file", key_path, env=server_env)
    assert code == 0, err
    # Not trusted: the object is judged by the server's checksum where it keeps one, else by
    # aws's rule (written after the file, so not newer), and said so; with
    # --compare-checksums its content is read and found different.
    assert objects(rows)[str(src / "a.nc")] in (
        ("skipped", "same-size-and-time"),
        ("ok", "checksum-differs"),
    )
    code, rows, err = sync(src, f"s3://{bucket}/s/", "--key-file", key_path,
                           "--compare-checksums", env=server_env)  # fmt: skip
    assert objects(rows)[str(src / "a.nc")] == ("ok", "checksum-differs")
    got = admin.get_object(Bucket=bucket, Key="s/a.nc", **sse_params(key))
    assert got["Body"].read() == b"x" * 4321


def test_objects_of_other_tools_fall_back_to_the_servers_checksum_or_time(
    tmp_path: Path, bucket: str, key_file: KeyFile, server_env: dict[str, str], admin: Any
) -> None:
    key_path, key = key_file
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.nc").write_bytes(b"a" * 100)
    os.utime(src / "a.nc", (1_600_000_000, 1_600_000_000))  # older than any upload
    crc = base64.b64encode(crc32c(b"a" * 100).to_bytes(4, "big")).decode()
    admin.put_object(Bucket=bucket, Key="o/a.nc", Body=b"a" * 100, ChecksumCRC32C=crc,
                     **sse_params(key))  # fmt: skip
    code, rows, err = sync(src, f"s3://{bucket}/o/", "--key-file", key_path, env=server_env)
    assert code == 0, err
    assert objects(rows)[str(src / "a.nc")][0] == "skipped"
    assert objects(rows)[str(src / "a.nc")][1] in ("same-checksum", "same-size-and-time")


def test_wrong_key_fails_each_object_and_sends_nothing(
    tmp_path: Path, bucket: str, key_file: KeyFile, server_env: dict[str, str], admin: Any
) -> None:
    key_path, key = key_file
    src = tmp_path / "src"
    make_tree(src)
    assert sync(src, f"s3://{bucket}/w/", "--key-file", key_path, env=server_env)[0] == 0
    other = tmp_path / "other.key"
    SSECustomerKey.generate().write_new_file(other)
    code, rows, err = sync(src, f"s3://{bucket}/w/", "--key-file", other, env=server_env)
    assert code == 1
    assert statuses(rows) == ["failed"] * 4
    assert "key" in err
    head = admin.head_object(Bucket=bucket, Key="w/a.nc", **sse_params(key))
    assert head["ContentLength"] == 1000


def test_usage_errors(tmp_path: Path, key_file: KeyFile, server_env: dict[str, str]) -> None:
    key_path, _ = key_file
    done = run_cli("sync", tmp_path, tmp_path / "b", "--key-file", key_path, env=server_env)
    assert done.returncode == 2
    assert "s3://" in done.stderr
    done = run_cli("sync", tmp_path / "missing", "s3://b/p/", "--key-file", key_path,
                   env=server_env)  # fmt: skip
    assert done.returncode == 2
    assert "not a folder" in done.stderr


@pytest.mark.parametrize(("src", "dst"), [("a/", "a/"), ("a/", "a/sub/"), ("a/sub", "a")])
def test_overlapping_prefixes_in_one_bucket_are_refused(
    src: str, dst: str, key_file: KeyFile, server_env: dict[str, str]
) -> None:
    key_path, _ = key_file
    done = run_cli("sync", f"s3://b/{src}", f"s3://b/{dst}", "--key-file", key_path,
                   env=server_env)  # fmt: skip
    assert done.returncode == 2
    assert "the sync would copy its own copies" in done.stderr
