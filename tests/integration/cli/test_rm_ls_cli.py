"""`rm` and `ls` as users of `aws s3 rm` / `aws s3 ls` type them, against the real server:
exit codes, the lines printed, and what is left on the server afterwards."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.helpers import run_cli, run_cli_bytes
from tests.support.json_schema import validate_lines

pytestmark = pytest.mark.integration

FINGERPRINT = re.compile(r"^[A-Za-z0-9+/]{22}==$")


def keys_left(admin: Any, bucket: str) -> list[str]:
    return [
        o["Key"]
        for page in admin.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    ]


def versions_left(admin: Any, bucket: str) -> list[tuple[str, str, bool]]:
    """(key, version id, is a delete marker) of everything the bucket still holds."""
    found = []
    for page in admin.get_paginator("list_object_versions").paginate(Bucket=bucket):
        found += [(v["Key"], v["VersionId"], False) for v in page.get("Versions", [])]
        found += [(m["Key"], m["VersionId"], True) for m in page.get("DeleteMarkers", [])]
    return sorted(found)


def json_lines(stdout: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    rows = validate_lines(stdout)
    summaries = [r for r in rows if r["type"] == "summary"]
    assert len(summaries) <= 1
    return [r for r in rows if r["type"] != "summary"], (summaries[0] if summaries else None)


def no_tty_cli(
    *args: str | os.PathLike[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """The CLI with stdin a pipe, as in a script or cron job (never the test's terminal)."""
    done = run_cli_bytes(*args, env=env, input=b"")
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def put_tree(tmp_path: Path, bucket: str, prefix: str, names: list[str], env: dict[str, str],
             key_path: Path) -> None:  # fmt: skip
    """Upload files named `names` under s3://bucket/prefix with SSE-C, as users do."""
    tree = tmp_path / f"tree-{uuid.uuid4().hex[:6]}"
    for name in names:
        path = tree / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(100 + len(name)))
    # --no-default-excludes: these tests want *.tmp objects too, which put skips by default.
    up = run_cli("put", tree, f"s3://{bucket}/{prefix}", "--recursive", "--key-file", key_path,
                 "--no-default-excludes", env=env)  # fmt: skip
    assert up.returncode == 0, up.stderr


@pytest.fixture
def versioned_bucket(admin: Any) -> Iterator[str]:
    name = f"v-{uuid.uuid4().hex[:20]}"
    admin.create_bucket(Bucket=name)
    admin.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    yield name
    for key, version, _ in versions_left(admin, name):
        admin.delete_object(Bucket=name, Key=key, VersionId=version)
    admin.delete_bucket(Bucket=name)


# -- rm ------------------------------------------------------------------------------------------


def test_rm_one_sse_c_object_without_its_key_and_again_once_it_is_gone(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, _ = key_file
    put_tree(tmp_path, bucket, "l1/", ["a.nc", "b.nc"], server_env, key_path)

    gone = run_cli("rm", f"s3://{bucket}/l1/a.nc", env=server_env)  # no key: none is needed
    assert gone.returncode == 0, gone.stderr
    assert gone.stdout == f"delete: s3://{bucket}/l1/a.nc\n"
    assert "1 deleted, 0 failed" in gone.stderr
    assert keys_left(admin, bucket) == ["l1/b.nc"]

    # S3 deletes are idempotent: a missing object is "deleted" again, as with aws s3 rm.
    again = run_cli("rm", f"s3://{bucket}/l1/a.nc", "--json", env=server_env)
    assert again.returncode == 0, again.stderr
    [row], summary = json_lines(again.stdout)
    assert row["status"] == "ok"
    assert row["source"] == f"s3://{bucket}/l1/a.nc"
    assert row["exit_code"] == 0
    assert summary is not None
    assert summary["ok"] == 1
    assert summary["failed"] == 0
    assert keys_left(admin, bucket) == ["l1/b.nc"]


def test_rm_refuses_buckets_and_prefixes_without_recursive(
    bucket: str, admin: Any, server_env: dict[str, str]
) -> None:
    admin.put_object(Bucket=bucket, Key="dir/x", Body=b"x")
    for target, says in [
        (f"s3://{bucket}", "is a bucket: rm does not delete buckets"),
        (f"s3://{bucket}/", "names the whole bucket, not an object"),
        (f"s3://{bucket}/dir/", "names a prefix, not an object"),
    ]:
        refused = run_cli("rm", target, env=server_env)
        assert refused.returncode == 2, target
        assert says in refused.stderr
        assert refused.stdout == ""
    assert keys_left(admin, bucket) == ["dir/x"]
    admin.head_bucket(Bucket=bucket)  # still there


def test_rm_recursive_with_filters_dryrun_first(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, key = key_file
    put_tree(tmp_path, bucket, "l1/", ["a.nc", "b.tmp", "sub/c.nc", "sub/d.tmp"], server_env,
             key_path)  # fmt: skip
    admin.put_object(Bucket=bucket, Key="l1-old/x.nc", Body=b"x")  # beside the folder, not in it
    before = sorted(keys_left(admin, bucket))

    dry = run_cli("rm", f"s3://{bucket}/l1", "--recursive", "--exclude", "*.tmp", "--dryrun",
                  env=server_env)  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        f"(dryrun) delete: s3://{bucket}/l1/a.nc",
        f"(dryrun) delete: s3://{bucket}/l1/sub/c.nc",
    ]
    assert "2 would be deleted (dry run: nothing was deleted), 0 failed, 2 excluded" in dry.stderr
    assert sorted(keys_left(admin, bucket)) == before

    done = run_cli("rm", f"s3://{bucket}/l1", "--recursive", "--exclude", "*.tmp", "--json",
                   env=server_env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows, summary = json_lines(done.stdout)
    assert sorted(r["source"] for r in rows) == [
        f"s3://{bucket}/l1/a.nc", f"s3://{bucket}/l1/sub/c.nc",
    ]  # fmt: skip
    assert {r["status"] for r in rows} == {"ok"}
    assert {r["key_fingerprint"] for r in rows} == {key.fingerprint}  # what the ledger knew
    assert summary is not None
    assert (summary["ok"], summary["failed"], summary["excluded"]) == (2, 0, 2)
    assert sorted(keys_left(admin, bucket)) == ["l1-old/x.nc", "l1/b.tmp", "l1/sub/d.tmp"]


def test_rm_recursive_of_more_than_one_request_of_keys(
    bucket: str, admin: Any, server_env: dict[str, str]
) -> None:
    """1001 keys: two DeleteObjects requests (1000 + 1), every key reported once."""
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: admin.put_object(Bucket=bucket, Key=f"many/{i:04}", Body=b""),
                      range(1001)))  # fmt: skip
    done = run_cli("rm", f"s3://{bucket}/many/", "--recursive", "--json", env=server_env)
    assert done.returncode == 0, done.stderr[-2000:]
    rows, summary = json_lines(done.stdout)
    assert len(rows) == 1001
    assert len({r["source"] for r in rows}) == 1001
    assert summary is not None
    assert summary["ok"] == 1001
    assert keys_left(admin, bucket) == []


def test_rm_versions_markers_and_all_versions(
    versioned_bucket: str, admin: Any, server_env: dict[str, str]
) -> None:
    b = versioned_bucket
    v1 = admin.put_object(Bucket=b, Key="k", Body=b"one")["VersionId"]
    v2 = admin.put_object(Bucket=b, Key="k", Body=b"two")["VersionId"]
    admin.put_object(Bucket=b, Key="other", Body=b"x")

    # A plain delete on a versioned bucket adds a delete marker; every version stays.
    marked = run_cli("rm", f"s3://{b}/k", env=server_env)
    assert marked.returncode == 0, marked.stderr
    [(marker,)] = [
        (vid,) for key, vid, is_marker in versions_left(admin, b) if key == "k" and is_marker
    ]
    assert marked.stdout == f"delete: s3://{b}/k (delete marker {marker} added)\n"
    assert {(vid, m) for key, vid, m in versions_left(admin, b) if key == "k"} == {
        (v1, False), (v2, False), (marker, True),
    }  # fmt: skip

    # --version-id deletes exactly that version, for good.
    one = run_cli("rm", f"s3://{b}/k", "--version-id", v1, env=server_env)
    assert one.returncode == 0, one.stderr
    assert one.stdout == f"delete: s3://{b}/k (version {v1})\n"
    assert {vid for key, vid, _ in versions_left(admin, b) if key == "k"} == {v2, marker}

    # --all-versions in a script: refused without --force, before anything is deleted.
    refused = no_tty_cli("rm", f"s3://{b}/k", "--all-versions", env=server_env)
    assert refused.returncode == 2
    assert "stdin is not a terminal: nothing was deleted" in refused.stderr
    assert "--force" in refused.stderr
    assert {vid for key, vid, _ in versions_left(admin, b) if key == "k"} == {v2, marker}

    # --dryrun shows what would go without asking; nothing goes.
    dry = no_tty_cli("rm", f"s3://{b}/k", "--all-versions", "--dryrun", env=server_env)
    assert dry.returncode == 0, dry.stderr
    assert sorted(dry.stdout.splitlines()) == sorted([
        f"(dryrun) delete: s3://{b}/k (version {v2})",
        f"(dryrun) delete: s3://{b}/k (delete marker {marker})",
    ])  # fmt: skip

    forced = no_tty_cli("rm", f"s3://{b}/k", "--all-versions", "--force", "--json", env=server_env)
    assert forced.returncode == 0, forced.stderr
    rows, summary = json_lines(forced.stdout)
    assert {(r["version_id"], r["delete_marker"], r["status"]) for r in rows} == {
        (v2, False, "ok"), (marker, True, "ok"),
    }  # fmt: skip
    assert summary is not None
    assert summary["ok"] == 2
    assert [key for key, _, _ in versions_left(admin, b)] == ["other"]


def test_rm_recursive_all_versions_takes_every_version_and_marker_under_the_prefix(
    versioned_bucket: str, admin: Any, server_env: dict[str, str]
) -> None:
    b = versioned_bucket
    for key in ("p/a", "p/a", "p/sub/b", "q/c"):
        admin.put_object(Bucket=b, Key=key, Body=b"x")
    admin.delete_object(Bucket=b, Key="p/sub/b")  # a delete marker under the prefix
    done = no_tty_cli("rm", f"s3://{b}/p/", "--recursive", "--all-versions", "--force",
                      env=server_env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 4  # two versions of p/a, p/sub/b and its marker
    assert "4 deleted, 0 failed" in done.stderr
    assert [key for key, _, _ in versions_left(admin, b)] == ["q/c"]


def _in_a_terminal(args: list[str], env: dict[str, str], answer: bytes) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as stdin, answer its question; (exit code, stderr)."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ssec_transfer", *args], env=env, stdin=follower,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        os.close(follower)
        os.write(leader, answer)
        _out, err = proc.communicate(timeout=120)
    finally:
        os.close(leader)
    return proc.returncode, err.decode()


def test_rm_all_versions_asks_on_a_terminal(
    versioned_bucket: str, admin: Any, server_env: dict[str, str]
) -> None:
    b = versioned_bucket
    admin.put_object(Bucket=b, Key="k", Body=b"one")
    admin.put_object(Bucket=b, Key="k", Body=b"two")
    code, err = _in_a_terminal(["rm", f"s3://{b}/k", "--all-versions"], server_env, b"no\n")
    assert code == 1
    assert "--all-versions will delete 2 version(s) and delete marker(s)" in err
    assert "nothing was deleted" in err
    assert len(versions_left(admin, b)) == 2

    code, err = _in_a_terminal(["rm", f"s3://{b}/k", "--all-versions"], server_env, b"yes\n")
    assert code == 0, err
    assert "2 deleted, 0 failed" in err
    assert versions_left(admin, b) == []


def test_rm_names_each_key_the_server_refuses(admin: Any, server_env: dict[str, str]) -> None:
    """A version under object-lock retention: DeleteObjects refuses that key and deletes the
    others; the refused one is named with the server's code and message, exit 1."""
    b = f"l-{uuid.uuid4().hex[:20]}"
    try:
        admin.create_bucket(Bucket=b, ObjectLockEnabledForBucket=True)
    except ClientError as exc:
        pytest.skip(f"this server has no object lock: {exc}")
    try:
        admin.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
        until = datetime.now(UTC) + timedelta(days=1)
        try:
            locked = admin.put_object(
                Bucket=b, Key="p/locked", Body=b"x", ObjectLockMode="GOVERNANCE",
                ObjectLockRetainUntilDate=until,
            )["VersionId"]  # fmt: skip
        except ClientError as exc:
            pytest.skip(f"this server refuses object-lock retention: {exc}")
        free = admin.put_object(Bucket=b, Key="p/free", Body=b"y")["VersionId"]
        done = no_tty_cli("rm", f"s3://{b}/p/", "--recursive", "--all-versions", "--force",
                          "--json", env=server_env)  # fmt: skip
        held = {vid for _, vid, _ in versions_left(admin, b)}
        if locked not in held:
            pytest.skip("this server accepted the retention but does not enforce it")
        assert done.returncode == 1, done.stderr
        rows, summary = json_lines(done.stdout)
        by_version = {r["version_id"]: r for r in rows}
        assert by_version[free]["status"] == "ok"
        refused = by_version[locked]
        assert refused["status"] == "failed"
        assert refused["exit_code"] == 1
        assert refused["error_code"]  # the server's code, e.g. AccessDenied
        assert refused["error_code"] in refused["error"]
        assert f"failed: s3://{b}/p/locked (version {locked}): DeleteObjects s3://{b}/p/locked: " \
            f"{refused['error_code']}" in done.stderr  # fmt: skip
        assert summary is not None
        assert (summary["ok"], summary["failed"]) == (1, 1)
        assert held == {locked}
    finally:
        for key, vid, _ in versions_left(admin, b):
            admin.delete_object(Bucket=b, Key=key, VersionId=vid, BypassGovernanceRetention=True)
        admin.delete_bucket(Bucket=b)


# -- ls ------------------------------------------------------------------------------------------


def test_ls_without_an_argument_lists_buckets(bucket: str, server_env: dict[str, str]) -> None:
    for argv in (["ls"], ["ls", "s3://"]):
        listed = run_cli(*argv, env=server_env)
        assert listed.returncode == 0, listed.stderr
        line = next(x for x in listed.stdout.splitlines() if x.endswith(f" {bucket}"))
        assert re.fullmatch(rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d {bucket}", line)
    as_json = run_cli("ls", "--json", env=server_env)
    rows = [json.loads(x) for x in as_json.stdout.splitlines()]
    assert {"entry": "bucket", "bucket": bucket} in [
        {"entry": r["entry"], "bucket": r["bucket"]} for r in rows
    ]


def test_ls_one_level_with_pre_lines_recursive_human_and_summarize(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file: Any, admin: Any
) -> None:
    key_path, key = key_file
    put_tree(tmp_path, bucket, "l1/", ["a.nc", "ab.nc", "sub/c.nc", "sub/deep/d.nc"], server_env,
             key_path)  # fmt: skip
    admin.put_object(Bucket=bucket, Key="top.bin", Body=b"z" * (3 * 1024 * 1024 // 2))

    root = run_cli("ls", f"s3://{bucket}", env=server_env)
    assert root.returncode == 0, root.stderr
    lines = root.stdout.splitlines()
    assert [x.split()[-1] for x in lines] == ["l1/", "top.bin"]
    assert lines[0].split() == ["PRE", "l1/"]
    top = lines[1].split()
    assert top[2] == str(3 * 1024 * 1024 // 2)
    assert top[3] == "?"  # written by another tool: the ledger does not know its key
    # names start in the same column whatever the line
    assert lines[0].index("l1/") == lines[1].index("top.bin")

    inside = run_cli("ls", f"s3://{bucket}/l1/", env=server_env)
    assert inside.returncode == 0, inside.stderr
    rows = [x.split() for x in inside.stdout.splitlines()]
    assert [r[-1] for r in rows] == ["sub/", "a.nc", "ab.nc"]  # relative to the folder
    assert all(r[3] == key.fingerprint for r in rows[1:])  # the ledger knows these

    # aws's prefix semantics: s3://b/l1/a lists what in l1/ starts with "a"
    starting = run_cli("ls", f"s3://{bucket}/l1/a", env=server_env)
    assert [x.split()[-1] for x in starting.stdout.splitlines()] == ["a.nc", "ab.nc"]

    deep = run_cli("ls", f"s3://{bucket}/l1/", "--recursive", "--summarize", "--human-readable",
                   env=server_env)  # fmt: skip
    assert deep.returncode == 0, deep.stderr
    out = deep.stdout.splitlines()
    assert [x.split()[-1] for x in out[:4]] == [
        "l1/a.nc", "l1/ab.nc", "l1/sub/c.nc", "l1/sub/deep/d.nc",
    ]  # fmt: skip
    assert all(" Bytes " in x for x in out[:4])
    assert out[4:] == [
        "",
        "Total Objects: 4",
        f"   Total Size: {sum_size(admin, bucket, 'l1/')} Bytes",
    ]

    human = run_cli("ls", f"s3://{bucket}/top", "--human-readable", "--summarize", env=server_env)
    assert human.stdout.splitlines()[0].split()[2:4] == ["1.5", "MiB"]
    assert human.stdout.splitlines()[-1] == "   Total Size: 1.5 MiB"

    as_json = run_cli("ls", f"s3://{bucket}/", "--json", "--summarize", env=server_env)
    rows_json, summary = json_lines(as_json.stdout)
    assert rows_json[0] == {
        "schema": 1, "type": "listing", "entry": "prefix", "bucket": bucket, "prefix": "l1/"
    }  # fmt: skip
    assert (rows_json[1]["type"], rows_json[1]["entry"]) == ("listing", "object")
    assert rows_json[1]["key"] == "top.bin"
    assert rows_json[1]["key_fingerprint"] is None
    assert summary == {"schema": 1, "type": "summary", "command": "ls", "objects": 1,
                       "bytes": 3 * 1024 * 1024 // 2, "delete_markers": 0,
                       "prefixes": 1}  # fmt: skip


def sum_size(admin: Any, bucket: str, prefix: str) -> int:
    return sum(
        o["Size"]
        for page in admin.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    )


def test_ls_versions_shows_ids_null_and_the_fingerprints_the_ledger_knows(
    tmp_path: Path, bucket: str, versioned_bucket: str, server_env: dict[str, str],
    key_file: Any, admin: Any,
) -> None:  # fmt: skip
    key_path, key = key_file
    src = tmp_path / "f.bin"
    for b in (bucket, versioned_bucket):
        for content in (b"first", b"second"):
            src.write_bytes(content)
            up = run_cli("put", src, f"s3://{b}/f.bin", "--key-file", key_path, env=server_env)
            assert up.returncode == 0, up.stderr
    admin.delete_object(Bucket=versioned_bucket, Key="f.bin")  # a delete marker on top

    plain = run_cli("ls", f"s3://{bucket}/", "--versions", env=server_env)
    assert plain.returncode == 0, plain.stderr
    [line] = plain.stdout.splitlines()
    assert "None" not in line
    assert line.split()[3:] == [key.fingerprint, "null", "f.bin"]

    versioned = run_cli("ls", f"s3://{versioned_bucket}/", "--versions", env=server_env)
    assert versioned.returncode == 0, versioned.stderr
    lines = versioned.stdout.splitlines()
    ids = [vid for _, vid, _ in sorted(versions_left(admin, versioned_bucket))]
    assert len(lines) == 3
    assert lines[0].endswith("f.bin (delete marker)")
    assert lines[0].split()[2:4] == ["-", "-"]
    for line in lines[1:]:
        _size, fingerprint, version, name = line.split()[2:]
        assert fingerprint == key.fingerprint  # each version's key, from the ledger
        assert version in ids
        assert name == "f.bin"
    assert "None" not in versioned.stdout

    # without --versions: the current object; here it is deleted, so nothing is listed
    current = run_cli("ls", f"s3://{versioned_bucket}/", env=server_env)
    assert current.stdout == ""
    as_json = run_cli("ls", f"s3://{bucket}/", "--versions", "--json", env=server_env)
    [row] = [json.loads(x) for x in as_json.stdout.splitlines()]
    assert row["version_id"] is None
    assert row["key_fingerprint"] == key.fingerprint
    assert FINGERPRINT.match(row["key_fingerprint"])
    assert time.time() - datetime.fromisoformat(row["last_modified"]).timestamp() < 3600
