"""`ls` lines and `rm` refusals without a server: aws's columns with the fingerprint kept
aligned, binary sizes, and every rm that must not run refused before any connection."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssec_transfer.cli import rm_command
from ssec_transfer.cli.ls_command import (
    Layout,
    Totals,
    bucket_line,
    display_name,
    listing_base,
    local_time,
    object_line,
    prefix_line,
)
from ssec_transfer.cli.main import main
from ssec_transfer.core.units import listing_size, parse_size
from ssec_transfer.s3.listing import ListedBucket, ListedObject, ListedPrefix

WHEN = "2026-11-30T12:00:00+00:00"
FP = "q2Nkw9Ymx3Bp1c2u4dwxVA=="  # a fingerprint's shape: 24 characters


def listed(key: str, size: int = 5, **kw: Any) -> ListedObject:
    fields: dict[str, Any] = {"version_id": None, "is_latest": True, "last_modified": WHEN,
                              "etag": '"e"', "key_fingerprint": FP}  # fmt: skip
    fields.update(kw)
    return ListedObject("b", key, size, **fields)


def test_human_sizes_read_like_aws() -> None:
    assert listing_size(0) == "0 Bytes"
    assert listing_size(1) == "1 Byte"
    assert listing_size(1023) == "1023 Bytes"
    assert listing_size(1024) == "1.0 KiB"
    assert listing_size(150 * 1024**2) == "150.0 MiB"
    assert listing_size(5 * 1024**4) == "5.0 TiB"


@given(st.integers(min_value=1024, max_value=2**70))
def test_human_sizes_stay_within_half_a_tenth_of_their_unit(n: int) -> None:
    text = listing_size(n)
    value, unit = text.split()
    assert unit in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    assert 1.0 <= float(value) <= 1024.0 or unit == "EiB"
    scale = parse_size(f"1{unit}") if unit in ("KiB", "MiB", "GiB", "TiB") else 1024 ** (
        ("PiB", "EiB").index(unit) + 5
    )  # fmt: skip
    assert abs(float(value) * scale - n) <= 0.05 * scale + 1e-9 * n
    assert len(text) <= 10 or unit == "EiB"  # aws's column width


def test_object_and_prefix_lines_keep_the_names_in_one_column() -> None:
    for layout in (Layout(), Layout(human=True), Layout(versions=True), Layout(True, True)):
        obj = object_line(listed("l1/a b.nc", 157286400, version_id="v1"), layout, "l1/")
        unknown = object_line(listed("l1/c.nc", key_fingerprint=None), layout, "l1/")
        marker = object_line(
            listed("l1/d.nc", 0, delete_marker=True, key_fingerprint=None), layout, "l1/"
        )
        pre = prefix_line(ListedPrefix("b", "l1/sub/"), layout, "l1/")
        column = obj.index("a b.nc")
        assert unknown.index("c.nc") == marker.index("d.nc") == pre.index("sub/") == column
        assert pre.split() == ["PRE", "sub/"]
        assert f" {FP} " in obj
        assert " ? " in unknown
        assert marker.endswith("d.nc (delete marker)")
    assert " 157286400 " in object_line(listed("k", 157286400), Layout())
    assert " 150.0 MiB " in object_line(listed("k", 157286400), Layout(human=True))


def test_versions_show_null_never_none() -> None:
    line = object_line(listed("k", version_id=None), Layout(versions=True))
    assert " null " in line
    assert "None" not in line
    assert " v1 " in object_line(listed("k", version_id="v1"), Layout(versions=True))


def test_names_are_relative_to_the_folder_listed_like_aws() -> None:
    assert listing_base("l1/") == "l1/"
    assert listing_base("l1/ab") == "l1/"
    assert listing_base("ab") == ""
    assert display_name("l1/abc.nc", "l1/") == "abc.nc"
    assert display_name("l1/abc.nc", "") == "l1/abc.nc"


def test_dates_are_local_time_to_the_second_and_buckets_show_theirs() -> None:
    assert len(local_time(WHEN)) == 19
    assert local_time(None) == " " * 19
    assert bucket_line(ListedBucket("data", WHEN)).endswith(" data")


def test_totals_count_objects_and_bytes_apart_from_markers() -> None:
    totals = Totals()
    totals.add(listed("a", 1024))
    totals.add(listed("b", 2048))
    totals.add(listed("c", 0, delete_marker=True))
    assert totals.lines(Layout()) == ["", "Total Objects: 2", "   Total Size: 3072",
                                      "Delete Markers: 1"]  # fmt: skip
    assert totals.lines(Layout(human=True))[2] == "   Total Size: 3.0 KiB"
    assert totals.to_dict()["objects"] == 2


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if rm gets as far as opening an engine."""

    def refuse(args: Any) -> Any:
        raise AssertionError("rm tried to connect")

    monkeypatch.setattr(rm_command, "engine_for", refuse)


@pytest.mark.usefixtures("no_engine")
@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["rm", "s3://b"], "s3://b is a bucket: rm does not delete buckets"),
        (["rm", "s3://b/"], "names the whole bucket, not an object"),
        (["rm", "s3://b/dir/"], "names a prefix, not an object"),
        (["rm", "s3://b/k", "--exclude", "*.tmp"], "--include/--exclude choose among"),
        (["rm", "s3://b/d/", "--recursive", "--version-id", "v"], "cannot go with --recursive"),
        (["rm", "s3://b/k", "--all-versions"], "stdin is not a terminal: nothing was deleted"),
        (["rm", "s3://b/d/", "-r", "--all-versions"], "stdin is not a terminal"),
        (["rm", "b/k"], "is not an s3:// URL"),
    ],
)
def test_rm_refuses_before_any_request(
    capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    assert main([*argv, "--endpoint-url", "https://127.0.0.1:9"]) == 2
    assert says in capsys.readouterr().err


def test_rm_help_says_no_key_is_needed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["rm", "--help"])
    out = capsys.readouterr().out
    assert "No SSE-C key is needed" in out
    usage = out.split("\n\n", 1)[0]
    assert "--key" not in usage  # rm takes no key option
