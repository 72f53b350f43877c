"""Planning arithmetic: parts cover the object exactly and stay inside the S3 limits."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssec_transfer.core.errors import PlanError
from ssec_transfer.core.plan import (
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    MiB,
    check_part_size,
    choose_part_size,
    plan_parts,
    plan_upload,
)
from ssec_transfer.core.units import format_size, parse_size

sizes = st.one_of(
    st.integers(min_value=0, max_value=64 * MiB),
    st.integers(min_value=0, max_value=MAX_OBJECT_SIZE),
    st.sampled_from([0, 1, MIN_PART_SIZE - 1, MIN_PART_SIZE, MIN_PART_SIZE + 1, MAX_OBJECT_SIZE]),
)
preferred = st.integers(min_value=1, max_value=MAX_PART_SIZE)


def assert_exact_cover(parts, size):  # type: ignore[no-untyped-def]
    assert parts[0].offset == 0
    assert parts[-1].end == size
    for before, after in itertools.pairwise(parts):
        assert before.end == after.offset  # no gap, no overlap
    assert [p.number for p in parts] == list(range(1, len(parts) + 1))


@given(size=sizes, preferred=preferred)
def test_automatic_plan_covers_object_within_limits(size: int, preferred: int) -> None:
    parts = plan_upload(size, part_size=None, preferred=preferred)
    assert_exact_cover(parts, size)
    assert len(parts) <= MAX_PARTS
    for part in parts[:-1]:
        assert MIN_PART_SIZE <= part.length <= MAX_PART_SIZE
    assert parts[-1].length <= MAX_PART_SIZE


@given(size=sizes, preferred=preferred)
def test_part_size_only_grows_when_needed(size: int, preferred: int) -> None:
    chosen = choose_part_size(size, preferred)
    floor = max(preferred, MIN_PART_SIZE)
    if -(-size // floor) <= MAX_PARTS:
        assert chosen == min(floor, MAX_PART_SIZE)
    else:
        assert chosen > floor
        assert -(-size // chosen) <= MAX_PARTS


@given(size=st.integers(min_value=0, max_value=10**12), part=st.integers(1, 10**10))
def test_plan_parts_is_an_exact_partition(size: int, part: int) -> None:
    if -(-size // part) > 200_000:
        return  # keep examples fast; the arithmetic is the same
    parts = plan_parts(size, part)
    assert_exact_cover(parts, size)
    assert all(p.length == part for p in parts[:-1])
    assert 0 < parts[-1].length <= part or size == 0


@given(size=sizes, part=st.integers(min_value=1, max_value=2 * MAX_PART_SIZE))
def test_explicit_part_size_accepted_iff_it_fits(size: int, part: int) -> None:
    fits = MIN_PART_SIZE <= part <= MAX_PART_SIZE and -(-size // part) <= MAX_PARTS
    if fits:
        check_part_size(size, part)
    else:
        with pytest.raises(PlanError):
            check_part_size(size, part)


def test_empty_object_is_one_empty_part() -> None:
    assert [(p.number, p.offset, p.length) for p in plan_parts(0, MiB)] == [(1, 0, 0)]


def test_three_parts_with_short_last() -> None:
    parts = plan_parts(2 * 5 * MiB + 123, 5 * MiB)
    assert [p.length for p in parts] == [5 * MiB, 5 * MiB, 123]
    assert parts[2].http_range == f"bytes={10 * MiB}-{10 * MiB + 122}"


def test_errors_say_why() -> None:
    with pytest.raises(PlanError, match="below the S3 minimum of 5 MiB"):
        check_part_size(100 * MiB, 4 * MiB)
    with pytest.raises(PlanError, match="above the S3 maximum of 5 GiB"):
        check_part_size(100 * MiB, 6 * 1024 * MiB)
    with pytest.raises(PlanError, match="at most 10,000") as info:
        check_part_size(100_000 * MiB, 5 * MiB)
    assert info.value.hint is not None
    assert "10MiB" in info.value.hint
    with pytest.raises(PlanError, match="exceeds"):
        choose_part_size(MAX_OBJECT_SIZE + 1, 8 * MiB)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("8MiB", 8 * MiB),
        ("64MB", 64_000_000),
        ("1GiB", 1024 * MiB),
        ("1048576", MiB),
        ("1.5KiB", 1536),
        ("5 mib", 5 * MiB),
    ],
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "MiB", "8 parsecs", "-1", "0.3B"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid size"):
        parse_size(text)


def test_format_size() -> None:
    assert format_size(5 * MiB) == "5 MiB"
    assert format_size(12) == "12 B"
