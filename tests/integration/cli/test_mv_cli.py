"""`mv` as users of `aws s3 mv` type it, against the real server: the new copy byte-identical,
the source gone only once the copy was verified, and every failure leaving the source."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.sse import sse_params
from tests.support.faultproxy import FaultPlan, FaultProxy, ScriptedFault
from tests.support.helpers import make_key_file, random_file, run_cli

pytestmark = pytest.mark.integration


def keys_left(admin: Any, bucket: str) -> list[str]:
    return sorted(
        o["Key"]
        for page in admin.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    )


def versions_left(admin: Any, bucket: str) -> list[tuple[str, str, bool]]:
    found = []
    for page in admin.get_paginator("list_object_versions").paginate(Bucket=bucket):
        found += [(v["Key"], v["VersionId"], False) for v in page.get("Versions", [])]
        found += [(m["Key"], m["VersionId"], True) for m in page.get("DeleteMarkers", [])]
    return sorted(found)


def read(admin: Any, bucket: str, key: str, sse: SSECustomerKey, **extra: str) -> bytes:
    body: bytes = admin.get_object(Bucket=bucket, Key=key, **sse_params(sse), **extra)[
        "Body"
    ].read()
    return body


def json_lines(stdout: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    [summary] = [r for r in rows if r["type"] == "summary"]
    return [r for r in rows if r["type"] != "summary"], summary


@pytest.fixture
def versioned_bucket(admin: Any) -> Iterator[str]:
    name = f"v-{uuid.uuid4().hex[:20]}"
    admin.create_bucket(Bucket=name)
    admin.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    yield name
    for key, version, _ in versions_left(admin, name):
        admin.delete_object(Bucket=name, Key=key, VersionId=version)
    admin.delete_bucket(Bucket=name)


# -- local to S3 -----------------------------------------------------------------------------------


def test_mv_a_file_to_s3_uploads_verifies_and_removes_it(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, key = key_file
    src = random_file(tmp_path / "out" / "data.nc", 300_000)
    data = src.read_bytes()

    moved = run_cli("mv", src, f"s3://{bucket}/l1/", "--key-file", key_path, "--json",
                    env=server_env)  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    row = json.loads(moved.stdout)
    assert row["operation"] == "move"
    assert row["status"] == "ok"
    assert row["source_removed"] is True
    assert row["destination"] == f"s3://{bucket}/l1/data.nc"
    assert row["key_fingerprint"] == key.fingerprint
    assert read(admin, bucket, "l1/data.nc", key) == data
    assert not src.exists()
    assert src.parent.is_dir()  # the emptied folder stays, as with aws


def test_mv_recursive_to_s3_moves_every_file_and_leaves_what_it_must(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, key = key_file
    tree = tmp_path / "outbox"
    files = {
        "a.bin": random_file(tree / "a.bin", 1000),
        "sub/deep/b.bin": random_file(tree / "sub" / "deep" / "b.bin", 9 * 1024 * 1024),
        "c.bin": random_file(tree / "c.bin", 0),
    }
    data = {rel: p.read_bytes() for rel, p in files.items()}
    (tree / "skip.tmp").write_bytes(b"excluded")
    (tree / "link.bin").symlink_to(files["a.bin"])

    moved = run_cli("mv", tree, f"s3://{bucket}/in", "--recursive", "--exclude", "*.tmp",
                    "--key-file", key_path, "--json", env=server_env)  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    rows, summary = json_lines(moved.stdout)
    assert {r["destination"] for r in rows} == {f"s3://{bucket}/in/{rel}" for rel in files}
    assert all(r["operation"] == "move" and r["source_removed"] for r in rows)
    assert summary["ok"] == 3
    assert summary["excluded"] == 2  # the rule and the link
    assert summary["command"] == "mv"
    assert "3 moved, 0 skipped, 0 failed" in moved.stderr
    for rel, content in data.items():
        assert read(admin, bucket, f"in/{rel}", key) == content
        assert not files[rel].exists()
    assert keys_left(admin, bucket) == sorted(f"in/{rel}" for rel in files)
    # Left: what was excluded, the link (and so the file it points to is gone, not the link),
    # and the emptied folders.
    assert (tree / "skip.tmp").read_bytes() == b"excluded"
    assert (tree / "link.bin").is_symlink()
    assert (tree / "sub" / "deep").is_dir()


def test_a_failed_upload_leaves_the_local_files(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, _ = key_file
    src = random_file(tmp_path / "one.bin", 1000)
    missing = f"s3://{bucket}-missing/x/"
    single = run_cli("mv", src, missing, "--key-file", key_path, env=server_env)
    assert single.returncode == 1
    assert "does not exist" in single.stderr
    assert src.exists()

    tree = tmp_path / "tree"
    random_file(tree / "a.bin", 1000)
    random_file(tree / "b" / "c.bin", 1000)
    bulk = run_cli("mv", tree, missing, "--recursive", "--key-file", key_path, env=server_env)
    assert bulk.returncode == 1
    assert "0 moved, 0 skipped, 2 failed" in bulk.stderr
    assert (tree / "a.bin").exists()
    assert (tree / "b" / "c.bin").exists()


def test_a_symlink_and_a_directory_without_recursive_are_refused(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, _ = key_file
    target = random_file(tmp_path / "t.bin", 10)
    (tmp_path / "l.bin").symlink_to(target)
    link = run_cli("mv", tmp_path / "l.bin", f"s3://{bucket}/", "--key-file", key_path,
                   env=server_env)  # fmt: skip
    assert link.returncode == 2
    assert "is a symbolic link" in link.stderr
    folder = run_cli("mv", tmp_path, f"s3://{bucket}/", "--key-file", key_path, env=server_env)
    assert folder.returncode == 2
    assert "add --recursive" in folder.stderr
    assert target.exists()
    assert (tmp_path / "l.bin").is_symlink()


def test_the_key_file_of_the_run_is_never_moved_away(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str]
) -> None:
    tree = tmp_path / "outbox"
    random_file(tree / "a.bin", 100)
    key_path, _ = make_key_file(tree, "sse-c.key")
    single = run_cli("mv", key_path, f"s3://{bucket}/", "--key-file", key_path, env=server_env)
    assert single.returncode == 2
    assert "is the key file of this run" in single.stderr
    bulk = run_cli("mv", tree, f"s3://{bucket}/o/", "--recursive", "--key-file", key_path,
                   env=server_env)  # fmt: skip
    assert bulk.returncode == 1
    assert "1 moved, 0 skipped, 1 failed" in bulk.stderr
    assert "is the key file of this run" in bulk.stderr
    assert key_path.exists()
    assert not (tree / "a.bin").exists()


# -- S3 to local -----------------------------------------------------------------------------------


def test_mv_an_object_here_downloads_and_deletes_it(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, key = key_file
    data = os.urandom(200_000)
    admin.put_object(Bucket=bucket, Key="l1/x.nc", Body=data, **sse_params(key))
    admin.put_object(Bucket=bucket, Key="l1/stays.nc", Body=b"s", **sse_params(key))

    moved = run_cli("mv", f"s3://{bucket}/l1/x.nc", tmp_path, "--key-file", key_path,
                    env=server_env)  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    assert f"moved s3://{bucket}/l1/x.nc to {tmp_path / 'x.nc'}" in moved.stderr
    assert (tmp_path / "x.nc").read_bytes() == data
    assert keys_left(admin, bucket) == ["l1/stays.nc"]


def test_mv_recursive_here_downloads_and_deletes_each_object(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, key = key_file
    objects = {"a.bin": os.urandom(5000), "d/b.bin": os.urandom(9 * 1024 * 1024), "c.log": b"c"}
    for rel, body in objects.items():
        admin.put_object(Bucket=bucket, Key=f"p/{rel}", Body=body, **sse_params(key))
    admin.put_object(Bucket=bucket, Key="p-other/z", Body=b"z", **sse_params(key))

    moved = run_cli("mv", f"s3://{bucket}/p", tmp_path / "here", "--recursive",
                    "--exclude", "*.log", "--key-file", key_path, "--json",
                    env=server_env)  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    rows, summary = json_lines(moved.stdout)
    assert summary["ok"] == 2
    assert all(r["status"] == "ok" and r["source_removed"] for r in rows)
    for rel in ("a.bin", "d/b.bin"):
        assert (tmp_path / "here" / rel).read_bytes() == objects[rel]
    assert keys_left(admin, bucket) == ["p-other/z", "p/c.log"]


def test_a_wrong_key_leaves_the_object_and_writes_nothing(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str], key_file: Any
) -> None:
    _, key = key_file
    wrong_path, _ = make_key_file(tmp_path, "wrong.key")
    admin.put_object(Bucket=bucket, Key="k/x", Body=b"secret" * 100, **sse_params(key))
    dest = tmp_path / "dl"
    dest.mkdir()

    single = run_cli("mv", f"s3://{bucket}/k/x", dest / "x", "--key-file", wrong_path,
                     env=server_env)  # fmt: skip
    assert single.returncode == 3
    assert "does not match" in single.stderr
    bulk = run_cli("mv", f"s3://{bucket}/k/", dest, "--recursive", "--key-file", wrong_path,
                   "--json", env=server_env)  # fmt: skip
    assert bulk.returncode == 1
    [row], _ = json_lines(bulk.stdout)
    assert row["exit_code"] == 3
    assert row["source_removed"] is False
    assert list(dest.iterdir()) == []
    assert read(admin, bucket, "k/x", key) == b"secret" * 100


def test_on_a_versioned_bucket_only_the_version_read_is_deleted(
    tmp_path: Path, versioned_bucket: str, admin: Any, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, key = key_file
    b = versioned_bucket
    old = admin.put_object(Bucket=b, Key="x", Body=b"old", **sse_params(key))["VersionId"]
    new = admin.put_object(Bucket=b, Key="x", Body=b"new", **sse_params(key))["VersionId"]

    moved = run_cli("mv", f"s3://{b}/x", tmp_path / "x", "--key-file", key_path, "--json",
                    env=server_env)  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    row = json.loads(moved.stdout)
    assert row["source_version_id"] == new
    assert (tmp_path / "x").read_bytes() == b"new"
    # Exactly that version went, for good; the older one is untouched (and current again).
    assert versions_left(admin, b) == [("x", old, False)]
    assert read(admin, b, "x", key) == b"old"


# -- S3 to S3 --------------------------------------------------------------------------------------


def test_mv_between_objects_copies_verifies_and_deletes(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str], key_file: Any
) -> None:
    old_path, old = key_file
    new_path, new = make_key_file(tmp_path, "new.key")
    objects = {"a": os.urandom(1000), "s/b": os.urandom(300_000), "c.tmp": b"c"}
    for rel, body in objects.items():
        admin.put_object(Bucket=bucket, Key=f"src/{rel}", Body=body, **sse_params(old))

    one = run_cli("mv", f"s3://{bucket}/src/a", f"s3://{bucket}/dst/", "--source-key-file",
                  old_path, "--key-file", new_path, "--json", env=server_env)  # fmt: skip
    assert one.returncode == 0, one.stderr
    row = json.loads(one.stdout)
    assert row["destination"] == f"s3://{bucket}/dst/a"
    assert row["key_fingerprint"] == new.fingerprint
    assert read(admin, bucket, "dst/a", new) == objects["a"]

    many = run_cli("mv", f"s3://{bucket}/src", f"s3://{bucket}/dst2", "--recursive",
                   "--exclude", "*.tmp", "--source-key-file", old_path, "--key-file", new_path,
                   "--json", env=server_env)  # fmt: skip
    assert many.returncode == 0, many.stderr
    rows, summary = json_lines(many.stdout)
    assert [r["destination"] for r in rows] == [f"s3://{bucket}/dst2/s/b"]
    assert summary["ok"] == 1
    assert summary["excluded"] == 1
    assert read(admin, bucket, "dst2/s/b", new) == objects["s/b"]
    assert keys_left(admin, bucket) == ["dst/a", "dst2/s/b", "src/c.tmp"]


def test_a_move_onto_itself_is_refused(bucket: str, admin: Any, server_env: dict[str, str]) -> None:
    admin.put_object(Bucket=bucket, Key="d/x", Body=b"x")
    for args in (
        (f"s3://{bucket}/d/x", f"s3://{bucket}/d/x"),
        (f"s3://{bucket}/d/x", f"s3://{bucket}/d/"),
        (f"s3://{bucket}/d/", f"s3://{bucket}/d/sub/", "--recursive"),
        (f"s3://{bucket}/d", f"s3://{bucket}/d", "--recursive"),
    ):
        refused = run_cli("mv", *args, env=server_env)
        assert refused.returncode == 2, args
        assert "nothing was moved" in refused.stderr
    assert keys_left(admin, bucket) == ["d/x"]


# -- what is never lost ----------------------------------------------------------------------------


def test_dryrun_changes_nothing(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, key = key_file
    local = random_file(tmp_path / "t" / "f.bin", 100)
    admin.put_object(Bucket=bucket, Key="o/g.bin", Body=b"g", **sse_params(key))
    runs = [
        ("mv", local, f"s3://{bucket}/up/"),
        ("mv", tmp_path / "t", f"s3://{bucket}/up/", "--recursive"),
        ("mv", f"s3://{bucket}/o/g.bin", tmp_path / "down.bin"),
        ("mv", f"s3://{bucket}/o/", tmp_path / "down", "--recursive"),
        ("mv", f"s3://{bucket}/o/g.bin", f"s3://{bucket}/o2/"),
        ("mv", f"s3://{bucket}/o/", f"s3://{bucket}/o2/", "--recursive"),
    ]
    for args in runs:
        dry = run_cli(*args, "--key-file", key_path, "--dryrun", env=server_env)
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.startswith("(dryrun) move: "), args
        assert "1 would be moved (dry run: nothing was sent or removed)" in dry.stderr
    one = run_cli("mv", local, f"s3://{bucket}/up/", "--key-file", key_path, "--dryrun",
                  env=server_env)  # fmt: skip
    assert one.stdout == f"(dryrun) move: {local} to s3://{bucket}/up/f.bin\n"
    assert local.exists()
    assert not (tmp_path / "down.bin").exists()
    assert not (tmp_path / "down").exists()
    assert keys_left(admin, bucket) == ["o/g.bin"]


def test_a_delete_that_fails_after_a_verified_copy_keeps_both_and_says_so(
    s3_server: Any, tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str],
    key_file: Any,
) -> None:  # fmt: skip
    key_path, key = key_file
    admin.put_object(Bucket=bucket, Key="x", Body=b"payload", **sse_params(key))
    plan = FaultPlan.scripted(
        *(ScriptedFault("internal_error", nth=n, method="DELETE") for n in range(1, 10))
    )
    with FaultProxy(s3_server.endpoint_url, s3_server.ca_bundle, plan) as proxy:
        env = dict(server_env, AWS_ENDPOINT_URL=proxy.endpoint_url,
                   AWS_CA_BUNDLE=str(proxy.ca_bundle))  # fmt: skip
        failed = run_cli("mv", f"s3://{bucket}/x", tmp_path / "x", "--key-file", key_path,
                         "--max-attempts", "1", env=env)  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    assert "both copies exist now, nothing was lost" in failed.stderr
    assert f"ssec-transfer rm s3://{bucket}/x" in failed.stderr
    assert (tmp_path / "x").read_bytes() == b"payload"
    assert read(admin, bucket, "x", key) == b"payload"


@pytest.mark.anyio
async def test_an_object_replaced_after_it_was_read_is_not_deleted(
    tmp_path: Path, bucket: str, admin: Any, engine_kwargs: dict[str, str], key_file: Any
) -> None:
    """Without versioning, the source is deleted only if it still has the ETag that was read:
    an object rewritten between the download and the delete is kept (and so is the file)."""
    from ssec_transfer.apps import move
    from ssec_transfer.engine import TransferEngine

    _, key = key_file
    admin.put_object(Bucket=bucket, Key="x", Body=b"first", **sse_params(key))
    async with TransferEngine(ledger=None, journal=None, **engine_kwargs) as engine:
        result = await engine.download(bucket, "x", tmp_path / "x", sse_key=key)
        admin.put_object(Bucket=bucket, Key="x", Body=b"second!", **sse_params(key))
        outcome = await move.finish_download(engine, result, key, 0.0)
    assert outcome.status == "failed"
    assert outcome.source_removed is False
    assert "was replaced after it was read" in str(outcome.error)
    assert (tmp_path / "x").read_bytes() == b"first"
    assert read(admin, bucket, "x", key) == b"second!"
