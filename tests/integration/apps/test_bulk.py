"""Many files in one run: directories, prefixes and manifests under one scheduler."""

from __future__ import annotations

import contextlib
import ctypes
import filecmp
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from ssec_transfer.core.plan import MiB
from ssec_transfer.s3.sse import sse_params
from tests.support.helpers import make_key_file, random_file, run_cli

pytestmark = pytest.mark.integration


def _lines(stdout: str) -> tuple[list[dict], dict]:  # type: ignore[type-arg]
    rows = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    summaries = [r for r in rows if r["type"] == "summary"]
    assert len(summaries) == 1
    return [r for r in rows if r["type"] != "summary"], summaries[0]


def _same_tree(a: Path, b: Path) -> None:
    compared = filecmp.dircmp(a, b)
    assert not compared.left_only
    assert not compared.right_only
    assert not compared.diff_files
    for sub in compared.common_dirs:
        _same_tree(a / sub, b / sub)
    for name in compared.common_files:
        assert filecmp.cmp(a / name, b / name, shallow=False)


def test_thousand_small_files_and_a_few_large_in_one_run(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    key_path, key = key_file
    tree = tmp_path / "tree"
    for i in range(1000):
        folder = tree / f"d{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"small-{i}.bin").write_bytes(os.urandom(i * 37 % 4096))
    for i in range(3):
        random_file(tree / "big" / f"large-{i}.nc", 12 * MiB + i)
    budget, limit = 24 * MiB, 6
    up = run_cli(
        "put", tree, f"s3://{bucket}/run/", "--recursive", "--key-file", key_path,
        "--concurrency", str(limit), "--max-memory", "24MiB", "--part-size", "5MiB", "--json",
        env=server_env,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr[-3000:]
    rows, summary = _lines(up.stdout)
    assert summary["ok"] == 1003
    assert summary["failed"] == 0
    assert 0 < summary["peak_requests_in_flight"] <= limit
    assert 0 < summary["peak_bytes_reserved"] <= budget
    assert {r["destination"] for r in rows} >= {
        f"s3://{bucket}/run/d7/small-7.bin",
        f"s3://{bucket}/run/big/large-2.nc",
    }
    assert all(r["key_fingerprint"] == key.fingerprint for r in rows)

    out = tmp_path / "out"
    down = run_cli(
        "get", f"s3://{bucket}/run", out, "--recursive", "--key-file", key_path,
        "--concurrency", str(limit), "--max-memory", "24MiB", "--part-size", "5MiB", "--json",
        env=server_env,
    )  # fmt: skip
    assert down.returncode == 0, down.stderr[-3000:]
    _, down_summary = _lines(down.stdout)
    assert down_summary["ok"] == 1003
    assert down_summary["peak_requests_in_flight"] <= limit
    assert down_summary["peak_bytes_reserved"] <= budget
    _same_tree(tree, out)


def test_filters_map_like_aws_s3_cp(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file, admin
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    tree = tmp_path / "t"
    for name in ("a.nc", "b.tmp", "sub/c.nc", "sub/keep.tmp"):
        random_file(tree / name, 100)
    result = run_cli(
        "put", tree, f"s3://{bucket}/p", "--recursive", "--exclude", "*.tmp",
        "--include", "sub/keep.tmp", "--no-default-excludes", "--key-file", key_path,
        env=server_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    keys = sorted(o["Key"] for o in admin.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["p/a.nc", "p/sub/c.nc", "p/sub/keep.tmp"]

    out = tmp_path / "out"
    got = run_cli("get", f"s3://{bucket}/p/", out, "--recursive", "--exclude", "sub/*",
                  "--key-file", key_path, env=server_env)  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == ["a.nc"]


def test_put_recursive_skips_dot_and_partial_files_unless_told(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file, admin
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    tree = tmp_path / "t"
    for name in ("a.nc", ".hidden", "x.tmp", ".git/config", "sub/b.nc.part"):
        random_file(tree / name, 10)
    skipped = run_cli("-v", "put", tree, f"s3://{bucket}/d/", "--recursive", "--key-file",
                      key_path, "--include", "*.nc", env=server_env)  # fmt: skip
    assert skipped.returncode == 0, skipped.stderr
    assert "1 transferred, 0 skipped, 0 failed, 4 excluded" in skipped.stderr
    assert "excluded (dot file or partial file, see --no-default-excludes): x.tmp" in skipped.stderr
    assert "--include '*.nc' comes before any --exclude, so it changes nothing" in skipped.stderr
    keys = sorted(o["Key"] for o in admin.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["d/a.nc"]
    sent = run_cli("put", tree, f"s3://{bucket}/all/", "--recursive", "--key-file", key_path,
                   "--no-default-excludes", env=server_env)  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    keys = sorted(o["Key"] for o in admin.list_objects_v2(Bucket=bucket, Prefix="all/")["Contents"])
    assert keys == ["all/.git/config", "all/.hidden", "all/a.nc", "all/sub/b.nc.part", "all/x.tmp"]


def test_one_failure_does_not_stop_the_others(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    other_path, _ = make_key_file(tmp_path, "other.key")
    files = [random_file(tmp_path / f"f{i}.bin", 1000 + i) for i in range(4)]
    manifest = tmp_path / "up.jsonl"
    lines = [{"source": str(f), "destination": f"s3://{bucket}/m/{f.name}"} for f in files]
    lines.insert(2, {"source": str(tmp_path / "vanished.bin"), "destination": f"s3://{bucket}/x"})
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    up = run_cli("put", "--manifest", manifest, "--key-file", key_path, "--json", env=server_env)
    assert up.returncode == 1
    rows, summary = _lines(up.stdout)
    assert (summary["ok"], summary["failed"]) == (4, 1)
    failed = [r for r in rows if r["status"] == "failed"]
    assert failed[0]["source"].endswith("vanished.bin")
    assert "failed: " in up.stderr
    assert "vanished.bin" in up.stderr

    # Downloads, one entry with the wrong key (a CSV manifest this time).
    out = tmp_path / "out"
    csv_lines = ["source,destination,key_file"]
    csv_lines += [f"s3://{bucket}/m/{f.name},{out / f.name},{key_path}" for f in files]
    csv_lines[2] = f"s3://{bucket}/m/{files[1].name},{out / files[1].name},{other_path}"
    (tmp_path / "down.csv").write_text("\n".join(csv_lines) + "\n")
    down = run_cli("get", "--manifest", tmp_path / "down.csv", "--json", env=server_env)
    assert down.returncode == 1
    rows, summary = _lines(down.stdout)
    assert (summary["ok"], summary["failed"]) == (3, 1)
    bad = next(r for r in rows if r["status"] == "failed")
    assert bad["exit_code"] == 3
    assert "does not match" in bad["error"]
    assert not (out / files[1].name).exists()
    for f in files[:1] + files[2:]:
        assert (out / f.name).read_bytes() == f.read_bytes()


def test_skip_existing_sends_only_what_changed(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    tree = tmp_path / "t"
    files = [random_file(tree / f"f{i}.bin", 2000 * (i + 1)) for i in range(5)]
    files.append(random_file(tree / "large.bin", 11 * MiB))
    args = ["put", tree, f"s3://{bucket}/s/", "--recursive", "--key-file", key_path,
            "--skip-existing", "--part-size", "5MiB", "--json"]  # fmt: skip
    first = run_cli(*args, env=server_env)
    assert first.returncode == 0, first.stderr
    assert _lines(first.stdout)[1]["ok"] == 6
    again = run_cli(*args, env=server_env)
    assert again.returncode == 0, again.stderr
    assert _lines(again.stdout)[1]["skipped"] == 6
    # Same bytes, new mtime: still skipped (the digest proves it); changed bytes: sent.
    os.utime(files[0], (1, 1))
    files[5].write_bytes(files[5].read_bytes()[:-1] + b"!")
    third = run_cli(*args, env=server_env)
    rows, summary = _lines(third.stdout)
    assert (summary["ok"], summary["skipped"]) == (1, 5)
    assert [r["source"] for r in rows if r["status"] == "ok"] == [str(files[5])]


def test_download_refuses_keys_that_escape_dest(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file, admin
) -> None:  # type: ignore[no-untyped-def]
    key_path, key = key_file
    admin.put_object(Bucket=bucket, Key="p/ok.bin", Body=b"x", **sse_params(key))
    with contextlib.suppress(ClientError):  # SeaweedFS refuses such keys itself
        admin.put_object(Bucket=bucket, Key="p/../../evil.bin", Body=b"x", **sse_params(key))
    out = tmp_path / "deep" / "out"
    result = run_cli("get", f"s3://{bucket}/p/", out, "--recursive", "--key-file", key_path,
                     env=server_env)  # fmt: skip
    listed = {o["Key"] for o in admin.list_objects_v2(Bucket=bucket)["Contents"]}
    if "p/../../evil.bin" in listed:  # some servers normalise such keys away
        assert result.returncode == 1
        assert "outside" in result.stderr
    assert (out / "ok.bin").read_bytes() == b"x"
    assert not (tmp_path / "evil.bin").exists()
    assert not (tmp_path / "deep" / "evil.bin").exists()


# -- every source accounted for ------------------------------------------------------------------


def _without_permission_override() -> None:
    """In the child, before exec: as root, give up CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH,
    so a folder or file of mode 000 is unreadable to the CLI as to any other user."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _run_cli_unprivileged(
    *args: str | os.PathLike[str], env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`run_cli` where permissions apply even to root (the suite may run as root)."""
    try:
        return subprocess.run(
            [sys.executable, "-m", "ssec_transfer", *map(str, args)],
            env=env, capture_output=True, text=True, timeout=timeout, check=False,
            preexec_fn=_without_permission_override,  # only prctl: safe before exec
        )  # fmt: skip
    except subprocess.SubprocessError as exc:
        if isinstance(exc, subprocess.TimeoutExpired):
            raise
        pytest.skip(f"cannot drop root's permission override here: {exc}")


def _messy_tree(root: Path) -> dict[str, bytes]:
    """Good files (returned, by object key suffix) beside one of each path that cannot be sent."""
    good = {"a.bin": os.urandom(1500), "sub/b.bin": os.urandom(2500)}
    for name, data in good.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / "dangling").symlink_to("/nonexistent-volume/product.nc")
    (root / "sub" / "up").symlink_to(root)
    os.mkfifo(root / "pipe")
    (root / "locked").mkdir()
    (root / "locked" / "secret.bin").write_bytes(b"never read")
    (root / "locked").chmod(0)
    (root / os.fsdecode(b"caf\xe9.bin")).write_bytes(b"latin-1 name")
    (root / "skip.tmp").write_bytes(b"excluded on purpose")
    (root / "linked.bin").symlink_to(root / "a.bin")  # followed, as aws does
    good["linked.bin"] = good["a.bin"]
    return good


def test_put_recursive_reports_every_path_it_cannot_send(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file, admin
) -> None:  # type: ignore[no-untyped-def]
    key_path, key = key_file
    tree = tmp_path / "tree"
    good = _messy_tree(tree)
    try:
        up = _run_cli_unprivileged(
            "put", tree, f"s3://{bucket}/m/", "--recursive", "--exclude", "*.tmp",
            "--key-file", key_path, "--json", env=server_env, timeout=120,
        )  # fmt: skip
    finally:
        (tree / "locked").chmod(0o700)
    assert up.returncode == 1, up.stderr
    rows, summary = _lines(up.stdout)
    reasons = {r["source"][len(str(tree)) + 1 :]: r["reason"] for r in rows if r["reason"]}
    assert reasons == {
        "dangling": "dangling-link",
        "sub/up": "loop",
        "pipe": "special-file",
        "locked": "unreadable",
        "caf\\xe9.bin": "not-encodable",
    }
    for row in rows:
        if row["reason"]:
            assert (row["status"], row["exit_code"]) == ("failed", 1)
            assert row["error"].startswith(
                {"dangling-link": "dangling symbolic link: ", "loop": "symbolic link loop: ",
                 "special-file": "special file: ", "unreadable": "unreadable: ",
                 "not-encodable": "not encodable as an object key: "}[row["reason"]]
            )  # fmt: skip
    assert (summary["ok"], summary["failed"], summary["excluded"]) == (3, 5, 1)
    assert summary["reasons"] == {
        "dangling-link": 1, "loop": 1, "not-encodable": 1, "special-file": 1, "unreadable": 1,
    }  # fmt: skip
    # The human lines: the summary with the reasons, and each path with its reason.
    counted = (
        "3 transferred, 0 skipped, 5 failed (1 dangling link, 1 loop, 1 not encodable, "
        "1 special file, 1 unreadable), 1 excluded"
    )
    assert counted in up.stderr
    dangling = (
        f"failed: {tree / 'dangling'}: dangling symbolic link: its target "
        "/nonexistent-volume/product.nc does not exist"
    )
    assert dangling in up.stderr
    assert f"failed: {tree / 'locked'}: unreadable: cannot list the folder" in up.stderr
    assert "put - s3://BUCKET/KEY < FIFO" in up.stderr
    # The good files arrived, whole; nothing else did.
    keys = sorted(o["Key"] for o in admin.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == sorted(f"m/{name}" for name in good)
    for name, data in good.items():
        got = admin.get_object(Bucket=bucket, Key=f"m/{name}", **sse_params(key))["Body"]
        assert got.read() == data


def test_no_follow_symlinks_leaves_links_out_on_purpose(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file, admin
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    tree = tmp_path / "tree"
    random_file(tree / "real" / "a.bin", 100)
    (tree / "dangling").symlink_to(tree / "gone")
    (tree / "file-link").symlink_to(tree / "real" / "a.bin")
    (tree / "folder-link").symlink_to(tree / "real")
    up = run_cli(
        "-v", "put", tree, f"s3://{bucket}/n/", "--recursive", "--no-follow-symlinks",
        "--key-file", key_path, "--json", env=server_env,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    rows, summary = _lines(up.stdout)
    assert [r["destination"] for r in rows] == [f"s3://{bucket}/n/real/a.bin"]
    assert (summary["ok"], summary["failed"], summary["excluded"]) == (1, 0, 3)
    assert "1 transferred, 0 skipped, 0 failed, 3 excluded" in up.stderr
    assert "excluded (symbolic link, --no-follow-symlinks): dangling" in up.stderr  # at -v
    keys = [o["Key"] for o in admin.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["n/real/a.bin"]


def test_manifest_entries_that_cannot_be_sent_fail_with_their_reason(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file, admin
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    good = random_file(tmp_path / "good.bin", 3000)
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone.bin")
    locked = random_file(tmp_path / "locked.bin", 10)
    locked.chmod(0)
    sources = {
        good: None,
        tmp_path / "pipe": "special-file",  # opening it would wait for a writer forever
        tmp_path / "dangling": "dangling-link",
        locked: "unreadable",
        tmp_path: "directory",
        tmp_path / "never-there.bin": "vanished",
    }
    manifest = tmp_path / "up.jsonl"
    manifest.write_text(
        "".join(
            json.dumps({"source": str(s), "destination": f"s3://{bucket}/q/{i}"}) + "\n"
            for i, s in enumerate(sources)
        )
    )
    up = _run_cli_unprivileged(
        "put", "--manifest", manifest, "--key-file", key_path, "--json", env=server_env,
        timeout=120,
    )  # fmt: skip
    assert up.returncode == 1, up.stderr
    rows, summary = _lines(up.stdout)
    assert {Path(r["source"]): r["reason"] for r in rows} == sources
    assert (summary["ok"], summary["failed"]) == (1, 5)
    assert [o["Key"] for o in admin.list_objects_v2(Bucket=bucket)["Contents"]] == ["q/0"]


def test_put_of_a_fifo_is_refused_before_any_request(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    os.mkfifo(tmp_path / "pipe")
    result = run_cli(
        "put", tmp_path / "pipe", f"s3://{bucket}/p", "--key-file", key_path,
        env=server_env, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "is a FIFO (named pipe), not a regular file" in result.stderr
    assert f"ssec-transfer put - s3://BUCKET/KEY < {tmp_path / 'pipe'}" in result.stderr
