"""`mv` without a server: which way a move goes, what is refused before any request, how
prefixes map, the per-object JSON line, and the local file's removal only while it is the
file that was uploaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ssec_transfer.apps.bulk import JobOutcome, TransferJob
from ssec_transfer.apps.move import (
    FileIdentity,
    MoveOutcome,
    direction_of,
    identify,
    object_key_for,
    plan_copies,
    refuse_local_dest,
    refuse_local_source,
    refuse_onto_itself,
    unlink_if_unchanged,
)
from ssec_transfer.core.errors import LocalIOError, UsageError
from ssec_transfer.core.report import OBJECT_FIELDS
from ssec_transfer.core.results import TransferResult


def test_direction_of_each_pair() -> None:
    assert direction_of("a.nc", "s3://b/k") == "upload"
    assert direction_of("s3://b/k", "a.nc") == "download"
    assert direction_of("s3://b/k", "s3://c/k") == "copy"
    # An http(s) URL is a remote side, so parse_s3_url can explain it, never a local file.
    assert direction_of("https://host/b/k", "a.nc") == "download"


@pytest.mark.parametrize(
    ("source", "dest", "says"),
    [
        ("a", "b", "both local paths"),
        ("-", "s3://b/k", "cannot move a stream"),
        ("s3://b/k", "-", "cannot move a stream"),
    ],
)
def test_direction_refusals(source: str, dest: str, says: str) -> None:
    with pytest.raises(UsageError, match=says) as refused:
        direction_of(source, dest)
    assert refused.value.exit_code == 2
    assert refused.value.hint


def test_object_key_for_takes_the_base_name_for_a_folder() -> None:
    assert object_key_for("data.nc", "l1/") == "l1/data.nc"
    assert object_key_for("data.nc", "") == "data.nc"
    assert object_key_for("a/b/data.nc", "l1/") == "l1/data.nc"
    assert object_key_for("data.nc", "l1/renamed.nc") == "l1/renamed.nc"


@pytest.mark.parametrize(
    ("src", "dst", "recursive"),
    [
        ("k", "k", False),
        ("d/", "d/sub/", True),
        ("d", "d/", True),
        ("", "x/", True),  # the whole bucket into a prefix of itself
    ],
)
def test_a_move_onto_itself_or_into_its_own_prefix_is_refused(
    src: str, dst: str, recursive: bool
) -> None:
    with pytest.raises(UsageError, match="nothing was moved"):
        refuse_onto_itself("b", src, "b", dst, recursive=recursive)


@pytest.mark.parametrize(
    ("src", "dst_bucket", "dst", "recursive"),
    [
        ("k", "b", "k2", False),
        ("k", "other", "k", False),
        ("d/sub/", "b", "d/", True),  # out of a sub-prefix: sources are never overwritten
        ("data/", "b", "data-old/", True),  # a prefix is a folder: data-old/ is not inside
        ("d/", "other", "d/", True),
    ],
)
def test_other_moves_are_allowed(src: str, dst_bucket: str, dst: str, recursive: bool) -> None:
    refuse_onto_itself("b", src, dst_bucket, dst, recursive=recursive)


def test_plan_copies_maps_like_cp_recursive_and_applies_the_rules() -> None:
    keys = ["p/a.nc", "p/sub/b.nc", "p/c.tmp"]
    plan = plan_copies(keys, "p", "q", [("exclude", "*.tmp")])
    assert plan.pairs == [("p/a.nc", "q/a.nc"), ("p/sub/b.nc", "q/sub/b.nc")]
    assert plan.excluded == 1
    assert plan_copies(["a", "b/c"], "", "").pairs == [("a", "a"), ("b/c", "b/c")]


def _result(**fields: object) -> TransferResult:
    base: dict[str, object] = dict(
        operation="upload", bucket="b", key="k", path="/x", size=3, etag='"e"',
        version_id="v1", key_fingerprint="fp", parts=1, seconds=0.5, checksum="crc32c:AAAAAA==",
    )  # fmt: skip
    base.update(fields)
    return TransferResult(**base)  # type: ignore[arg-type]


def test_the_json_line_has_every_object_field_plus_what_a_move_adds() -> None:
    line = MoveOutcome("/x", "s3://b/k", "ok", _result(), seconds=0.5, source_removed=True)
    data = line.to_dict()
    assert set(OBJECT_FIELDS) <= set(data)
    assert data["operation"] == "move"
    assert data["version_id"] == "v1"
    assert data["source_removed"] is True
    assert data["exit_code"] == 0
    job = TransferJob("upload", Path("/x"), "b", "k", size=3)
    failed = MoveOutcome.of_job(JobOutcome(job, "failed", error=LocalIOError("gone")))
    assert failed.to_dict()["status"] == "failed"
    assert failed.to_dict()["exit_code"] == 1
    assert failed.to_dict()["size"] == 3
    assert failed.source_removed is False


def test_a_file_unchanged_since_it_was_read_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    before = identify(path)
    unlink_if_unchanged(path, before, "s3://b/f")
    assert not path.exists()
    unlink_if_unchanged(path, before, "s3://b/f")  # gone already: nothing to do


def test_a_file_written_to_or_replaced_after_the_upload_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    before = identify(path)
    with path.open("ab") as f:
        f.write(b"d")
    with pytest.raises(LocalIOError, match="changed after it was uploaded") as kept:
        unlink_if_unchanged(path, before, "s3://b/f")
    assert "size went from 3 to 4 bytes" in str(kept.value)
    assert "the file was kept" in str(kept.value)
    assert path.read_bytes() == b"abcd"

    before = identify(path)
    other = tmp_path / "g"
    other.write_bytes(b"abcd")
    os.utime(other, ns=(before.mtime_ns, before.mtime_ns))
    os.replace(other, path)  # same size and mtime, another file
    with pytest.raises(LocalIOError, match="it is another file now"):
        unlink_if_unchanged(path, before, "s3://b/f")
    assert path.exists()


def test_only_what_was_stat_ed_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    with pytest.raises(LocalIOError, match="could not be stat-ed"):
        unlink_if_unchanged(path, None, "s3://b/f")
    assert path.exists()


def test_identity_changes_are_named() -> None:
    before = FileIdentity(1, 2, 3, 4, 5)
    assert FileIdentity(1, 2, 3, 4, 5).changes_since(before) == []
    assert FileIdentity(1, 2, 3, 4, 6).changes_since(before) == [
        "it was written to or its attributes were changed"
    ]


def test_local_sources_that_are_not_regular_files_are_refused(tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.write_bytes(b"x")
    (tmp_path / "l").symlink_to(target)
    os.mkfifo(tmp_path / "fifo")
    for name, says in [
        ("l", "is a symbolic link"),
        ("fifo", "not a regular file"),
        ("missing", "does not exist"),
    ]:
        with pytest.raises(UsageError, match=says):
            refuse_local_source(tmp_path / name)
    with pytest.raises(UsageError, match="add --recursive"):
        refuse_local_source(tmp_path)
    refuse_local_source(target)


def test_the_key_file_of_the_run_is_never_moved(tmp_path: Path) -> None:
    from ssec_transfer.keys.customer import SSECustomerKey

    path = tmp_path / "sse-c.key"
    SSECustomerKey.generate().write_new_file(path)
    SSECustomerKey.from_file(path)  # loading it makes it this run's key file
    with pytest.raises(UsageError, match="is the key file of this run"):
        refuse_local_source(path)
    with pytest.raises(LocalIOError, match="the file was kept"):
        unlink_if_unchanged(path, identify(path), "s3://b/sse-c.key")
    assert path.exists()


def test_a_download_must_land_in_a_file_to_delete_the_object(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    for dest in ("/dev/null", tmp_path / "fifo"):
        with pytest.raises(UsageError, match="would delete its only copy"):
            refuse_local_dest(dest)
    (tmp_path / "f").write_bytes(b"")
    for fine in (tmp_path, tmp_path / "f", tmp_path / "new"):
        refuse_local_dest(fine)
