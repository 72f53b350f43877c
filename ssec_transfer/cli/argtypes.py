"""argparse value types shared by every command: sizes, rates, counts, durations, choices.

Each turns a bad value into argparse's own error (exit 2, usage printed) with a message
that says what was expected.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

from ssec_transfer.core.units import parse_rate, parse_size

if TYPE_CHECKING:
    from ssec_transfer.apps.watch_config import OnSuccess


def size(text: str) -> int:
    """Bytes, or a unit: 8MiB, 64MB, 1GiB."""
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _whole(text: str, minimum: int, error: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(error)
    return value


def positive_int(text: str) -> int:
    return _whole(text, 1, "must be at least 1")


def non_negative_int(text: str) -> int:
    """A count that may be 0, e.g. the benchmark's --warmup rounds."""
    return _whole(text, 0, "must be 0 or more")


def seconds(text: str) -> float:
    """A finite, non-negative number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError("must be a number of seconds >= 0")
    return value


def positive_seconds(text: str) -> float:
    """A finite number of seconds > 0: a timeout of 0 would mean "wait for ever"."""
    value = seconds(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a number of seconds > 0")
    return value


def on_success(text: str) -> tuple[OnSuccess, Path | None]:
    """watch's --on-success: keep, delete or move:DIR."""
    if text == "keep":
        return "keep", None
    if text == "delete":
        return "delete", None
    if text.startswith("move:") and len(text) > len("move:"):
        return "move", Path(text[len("move:") :])
    raise argparse.ArgumentTypeError("choose keep, delete or move:DIR")


def metadata(text: str) -> dict[str, str]:
    """--metadata NAME=VALUE, or aws's JSON form '{"NAME": "VALUE", ...}'. Names and values
    are checked against S3's rules later, together (`attributes.check_metadata`)."""
    if text.lstrip().startswith("{"):
        import json

        try:
            pairs = json.loads(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None
        if not isinstance(pairs, dict) or not all(isinstance(v, str) for v in pairs.values()):
            raise argparse.ArgumentTypeError(
                'the JSON form is an object of strings: \'{"NAME": "VALUE"}\''
            )
        return pairs
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not NAME=VALUE (e.g. --metadata project=goes-r)"
        )
    return {name: value}


def header_text(text: str) -> str:
    """A value sent as an HTTP header (--content-type): printable ASCII on one line."""
    if not text or not text.isascii() or not text.isprintable():
        raise argparse.ArgumentTypeError(f"{text!r} must be printable ASCII on one line")
    return text


def storage_class(text: str) -> str:
    """--storage-class: passed through as given (servers define their own, e.g. Ceph's
    placement targets), but it must be a name: letters, digits, _ and -."""
    if not text or not all(ch.isascii() and (ch.isalnum() or ch in "_-") for ch in text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a storage class name (e.g. STANDARD_IA, GLACIER_IR)"
        )
    return text


def rate(text: str) -> int | None:
    """--bwlimit: bytes per second (10MiB, 50M, 100Mbit), or None for 0/off (no limit)."""
    from ssec_transfer.core.bandwidth import MIN_RATE

    try:
        value = parse_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value is not None and value < MIN_RATE:
        raise argparse.ArgumentTypeError(
            f"{text!r} is below the lowest limit, 1KiB/s: connections that idle that long "
            "are dropped by servers (give 0 or off for no limit)"
        )
    return value
