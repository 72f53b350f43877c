"""Pure planning of bulk runs: filters, key/path mapping, manifests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssec_transfer.apps.bulk import (
    is_included,
    plan_directory_upload,
    read_manifest,
    safe_relative,
)
from ssec_transfer.core.errors import KeyFileError, UsageError
from ssec_transfer.keys.customer import SSECustomerKey


def test_filters_later_rules_win() -> None:
    rules = [("exclude", "*.tmp"), ("include", "keep/*.tmp")]
    assert is_included("a.nc", rules)
    assert not is_included("b.tmp", rules)
    assert is_included("keep/c.tmp", rules)
    assert is_included("anything", [])


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("p/a.nc", "a.nc"),
        ("p/sub/b.nc", "sub/b.nc"),
        ("p/../evil", None),
        ("p/a/../../evil", None),
        ("p/./x", "./x"),  # harmless: still inside DEST
        ("p/dir/", None),
        ("p/", None),
    ],
)
def test_safe_relative(key: str, expected: str | None) -> None:
    assert safe_relative(key, "p/") == expected


def test_directory_upload_maps_like_aws_cli(tmp_path: Path) -> None:
    for name in ("a.nc", "sub/b.nc", "sub/c.tmp"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    key = SSECustomerKey.generate()
    jobs = plan_directory_upload(tmp_path, "b", "pre", sse_key=key, rules=[("exclude", "*.tmp")])
    assert [j.key for j in jobs] == ["pre/a.nc", "pre/sub/b.nc"]
    assert all(j.size == 1 and j.sse_key == key for j in jobs)
    with pytest.raises(UsageError, match="not a directory"):
        plan_directory_upload(tmp_path / "a.nc", "b", "", sse_key=key)


def test_manifest_json_lines_and_per_entry_keys(tmp_path: Path) -> None:
    good = tmp_path / "good.key"
    SSECustomerKey.generate().write_new_file(good)
    bad = tmp_path / "bad.key"
    bad.write_bytes(b"short")
    bad.chmod(0o600)
    lines = [
        {"source": "s3://b/x.nc", "destination": str(tmp_path / "x.nc"), "key_file": str(good)},
        {"source": "s3://b/y.nc", "destination": str(tmp_path / "y.nc"), "key_file": str(bad)},
        {"source": "s3://b/z.nc", "destination": str(tmp_path / "z.nc"), "version_id": "v1"},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(line) for line in lines))
    default = SSECustomerKey.generate()
    jobs = read_manifest(manifest, operation="download", default_key=default)
    assert jobs[0].sse_key == SSECustomerKey.from_file(good)
    assert isinstance(jobs[1].problem, KeyFileError)
    assert jobs[2].sse_key == default
    assert jobs[2].version_id == "v1"


def test_manifest_direction_is_checked(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("source,destination\ns3://b/x,local.bin\n")
    with pytest.raises(UsageError, match="must be an s3:// URL"):
        read_manifest(manifest, operation="upload", default_key=None)
