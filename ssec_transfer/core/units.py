"""Byte sizes as people write them (`8MiB`, `64MB`, `1GiB`, `1048576`) and as the tool shows
them: binary units everywhere, in bars, finish lines and summaries alike."""

from __future__ import annotations

import re

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Parse a size; decimal units (MB) are powers of 1000, binary units (MiB) of 1024."""
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else None
    if not match or unit not in _UNITS:
        raise ValueError(f"invalid size {text!r}: use bytes or a unit such as 8MiB, 64MB, 1GiB")
    value = float(match.group(1)) * _UNITS[unit]
    if value != int(value):
        raise ValueError(f"invalid size {text!r}: not a whole number of bytes")
    return int(value)


# Link speeds are often written in bits: 100Mbit, 1Gbps (decimal, 8 bits a byte).
_BIT_UNITS = {
    f"{prefix}{suffix}": scale / 8
    for prefix, scale in (("", 1), ("k", 1000), ("m", 1000**2), ("g", 1000**3))
    for suffix in ("bit", "bps")
}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*(/\s*s)?\s*$", re.IGNORECASE)


def parse_rate(text: str) -> int | None:
    """A rate in bytes per second, as `--bwlimit` takes it: a size per second (`10MiB`,
    `50M`, `1.5GiB`, optionally with `/s`) or bits per second (`100Mbit`, `1Gbps`); None for
    no limit (`0`, `off`,
    `none`). Units as in `parse_size`: M is 1000**2, MiB 1024**2."""
    if text.strip().lower() in ("off", "none"):
        return None
    match = _RATE.match(text)
    unit = match.group(2).lower() if match else None
    if not match or (unit not in _UNITS and unit not in _BIT_UNITS):
        raise ValueError(
            f"invalid rate {text!r}: use bytes per second with a unit such as 10MiB, 50M, "
            "1.5GiB, or bits such as 100Mbit; 0 or off for no limit"
        )
    scale = _UNITS[unit] if unit in _UNITS else _BIT_UNITS[unit]
    number = float(match.group(1))
    if number == 0:
        return None  # `0`, `0MiB`: no limit
    return max(1, round(number * scale))


def _scaled(n: float) -> tuple[float, str]:
    """`n` bytes in the largest binary unit (up to TiB) that keeps the figure below 1024."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return n, unit
        n /= 1024
    return n, "TiB"


def format_size(n: float) -> str:
    """Binary units, as S3 limits are written (5 MiB, 5 GiB)."""
    value, unit = _scaled(n)
    return f"{value:.0f} B" if unit == "B" else f"{value:.4g} {unit}"


def human_size(n: float) -> str:
    """A size for people, in one unit family with one decimal: `512 B`, `1.5 KiB`, `150.0 MiB`."""
    value, unit = _scaled(n)
    return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"


def human_rate(size: float, seconds: float) -> str:
    """`size` bytes moved in `seconds`, as `93.1 MiB/s` (a small file: `870.4 KiB/s`, never
    `0.0 MiB/s`); `?` when no time was measured."""
    return f"{human_size(size / seconds)}/s" if seconds > 0 else "?"


_HUMAN_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def listing_size(n: int) -> str:
    """A size as `aws s3 ls --human-readable` prints it, for this tool's `ls`: `0 Bytes`,
    `1 Byte`, `1023 Bytes`, then one decimal in the largest binary unit below which the
    number stays: `1.0 KiB`, `150.0 MiB`. The value is rounded to that decimal, so
    `1023.96 KiB` reads `1024.0 KiB` (as aws's does) rather than jumping a unit."""
    if n < 1024:
        return "1 Byte" if n == 1 else f"{n} Bytes"
    value = float(n)
    for unit in _HUMAN_UNITS:
        value /= 1024
        if value < 1024 or unit == _HUMAN_UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")
