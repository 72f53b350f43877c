"""`put/get --manifest` through the CLI: a manifest in another shape than JSON lines or CSV with
a header, or with two lines writing one destination, is refused whole (exit 2) before any
request; a byte-order mark is accepted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.helpers import random_file, run_cli

pytestmark = pytest.mark.integration

BOM = "\ufeff"


def _objects(admin, bucket: str) -> list[str]:  # type: ignore[no-untyped-def]
    listed = admin.list_objects_v2(Bucket=bucket).get("Contents", [])
    uploads = admin.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return [o["Key"] for o in listed] + [f"(multipart) {u['Key']}" for u in uploads]


@pytest.mark.parametrize(
    ("shape", "lines"),
    [
        ("one-line CSV without a header", [1]),
        ("JSON array", [1]),
        ("mixed shapes, a duplicate, an unknown field", [2, 3, 4]),
        ("empty", []),
    ],
)
def test_a_manifest_in_another_shape_is_refused_and_nothing_is_sent(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file, admin,
    shape: str, lines: list[int],
) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    key_path, _ = key_file
    a, b = random_file(tmp_path / "a.bin", 1000), random_file(tmp_path / "b.bin", 2000)
    good = {"source": str(a), "destination": f"s3://{bucket}/m/"}
    text = {
        "one-line CSV without a header": f"{a},s3://{bucket}/m/a.bin\n",
        "JSON array": json.dumps([good]) + "\n",
        "mixed shapes, a duplicate, an unknown field": "\n".join([
            json.dumps(good),
            f"{b},s3://{bucket}/m/b.bin",
            json.dumps({"source": str(b), "destination": f"s3://{bucket}/m/a.bin"}),
            json.dumps({**good, "destination": f"s3://{bucket}/x", "keyfile": str(key_path)}),
        ]) + "\n",
        "empty": "\n\n",
    }[shape]  # fmt: skip
    manifest = tmp_path / "todo.jsonl"
    manifest.write_text(text)
    put = run_cli("put", "--manifest", manifest, "--key-file", key_path, "--json", env=server_env)
    assert put.returncode == 2, put.stderr
    assert _objects(admin, bucket) == []
    [error] = [json.loads(line) for line in put.stdout.splitlines()]
    assert (error["type"], error["command"]) == ("error", "put")
    assert error["exit_code"] == 2
    assert "source,destination,key_file" in error["hint"]
    if lines:
        assert "refused, nothing was sent" in put.stderr
        assert sorted({p["line"] for p in error["problems"]}) == lines
        for line in lines:
            assert f"line {line}:" in put.stderr or f"lines {line}" in put.stderr
    else:
        assert "names no transfer" in put.stderr
    if shape.startswith("mixed"):
        assert "is also that of line 1" in put.stderr
        assert "unknown field 'keyfile'" in put.stderr


def test_bom_manifests_run_and_duplicate_downloads_are_refused(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file, admin
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    files = [random_file(tmp_path / f"f{i}.bin", 1000 + i) for i in range(4)]
    # JSON lines and CSV, each with the byte-order mark a Windows editor or Excel adds.
    jsonl = tmp_path / "up.jsonl"
    jsonl.write_text(
        BOM + "".join(
            json.dumps({"source": str(f), "destination": f"s3://{bucket}/m/"}) + "\n"
            for f in files[:2]
        ),
        encoding="utf-8",
    )  # fmt: skip
    up = run_cli("put", "--manifest", jsonl, "--key-file", key_path, "--json", env=server_env)
    assert up.returncode == 0, up.stderr
    table = tmp_path / "up.csv"
    rows = [f"{f},s3://{bucket}/m/{f.name},{key_path}" for f in files[2:]]
    table.write_text(BOM + "source,destination,key_file\r\n" + "\r\n".join(rows) + "\r\n")
    up = run_cli("put", "--manifest", table, "--json", env=server_env)
    assert up.returncode == 0, up.stderr
    assert sorted(_objects(admin, bucket)) == [f"m/{f.name}" for f in files]

    # Two objects to one file, spelled differently: refused before any request.
    out = tmp_path / "out"
    out.mkdir()
    down = tmp_path / "down.csv"
    down.write_text(
        "source,destination,key_file\n"
        f"s3://{bucket}/m/f0.bin,{out / 'x.bin'},{key_path}\n"
        f"s3://{bucket}/m/f1.bin,{out / 'y.bin'},{key_path}\n"
        f"s3://{bucket}/m/f2.bin,{out}/sub/../x.bin,{key_path}\n"
        f"s3://{bucket}/m/x.bin,{out},{key_path}\n"  # a directory: out/x.bin
    )
    get = run_cli("get", "--manifest", down, env=server_env)
    assert get.returncode == 2, get.stderr
    assert "lines 4-5: the destination '" in get.stderr
    assert "x.bin' is also that of line 2" in get.stderr
    assert list(out.iterdir()) == []
