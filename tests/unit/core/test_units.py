"""Sizes and rates as the tool shows them: one binary unit family, one decimal, never a
rate of 0.0 for a transfer that moved bytes."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssec_transfer.core.units import human_rate, human_size, parse_rate, parse_size

_SHOWN = re.compile(r"^(\d+(?:\.\d)?) (B|KiB|MiB|GiB|TiB)$")
_FACTOR = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (150 * 1024**2, "150.0 MiB"),
        (157286400, "150.0 MiB"),
        (5 * 1024**3, "5.0 GiB"),
        (3 * 1024**5, "3072.0 TiB"),
    ],
)
def test_sizes_are_binary_with_one_decimal(size: int, shown: str) -> None:
    assert human_size(size) == shown


@given(st.integers(min_value=0, max_value=1024**5))
def test_a_shown_size_reads_back_within_its_rounding(size: int) -> None:
    match = _SHOWN.match(human_size(size))
    assert match is not None
    value, unit = float(match.group(1)), match.group(2)
    assert abs(value * _FACTOR[unit] - size) <= 0.05 * _FACTOR[unit] + 0.5
    assert unit == "TiB" or value < 1024.05  # the largest unit that keeps the figure small


def test_rates_name_their_unit_and_never_round_a_small_file_to_zero() -> None:
    assert human_rate(262144, 0.3) == "853.3 KiB/s"
    assert human_rate(100 * 1024**2, 1.0) == "100.0 MiB/s"
    assert human_rate(10, 0.0) == "?"


def test_shown_sizes_parse_back() -> None:
    assert parse_size(human_size(150 * 1024**2).replace(" ", "")) == 150 * 1024**2


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("10MiB", 10 * 1024**2),
        ("10MiB/s", 10 * 1024**2),
        ("50M", 50_000_000),
        ("1.5GiB", 3 * 1024**3 // 2),
        ("64k", 64_000),
        ("100Mbit", 12_500_000),
        ("1Gbps", 125_000_000),
        ("2 MiB / s", 2 * 1024**2),
        ("0", None),
        ("0MiB", None),
        ("off", None),
        ("OFF", None),
    ],
)
def test_rates_read_as_rclone_and_aws_users_write_them(text: str, rate: int | None) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "fast", "-1MiB", "10MiB/h", "1.5x", "10 MiB per s"])
def test_a_bad_rate_says_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match=r"10MiB, 50M, 1\.5GiB, or bits such as 100Mbit"):
        parse_rate(text)
