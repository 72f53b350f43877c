"""Many files in one run: directories, prefixes and manifests under one scheduler."""

from __future__ import annotations

import contextlib
import filecmp
import json
import os
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from ssec_transfer.core.plan import MiB
from ssec_transfer.s3.sse import sse_params
from tests.support.helpers import make_key_file, random_file, run_cli

pytestmark = pytest.mark.integration


def _lines(stdout: str) -> tuple[list[dict], dict]:  # type: ignore[type-arg]
    rows = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    summaries = [r for r in rows if r.get("summary")]
    assert len(summaries) == 1
    return [r for r in rows if not r.get("summary")], summaries[0]


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
        "--include", "sub/keep.tmp", "--key-file", key_path, env=server_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    keys = sorted(o["Key"] for o in admin.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["p/a.nc", "p/sub/c.nc", "p/sub/keep.tmp"]

    out = tmp_path / "out"
    got = run_cli("get", f"s3://{bucket}/p/", out, "--recursive", "--exclude", "sub/*",
                  "--key-file", key_path, env=server_env)  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == ["a.nc"]


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
