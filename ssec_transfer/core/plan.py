"""Pure planning: how an object is cut into parts and ranges. No I/O, property-tested.

S3 multipart limits: every part but the last is 5 MiB..5 GiB, at most 10,000 parts. The part
size grows by itself for huge objects (like aws-c-s3's `aws_s3_calculate_optimal_mpu_part_size`)
and fails loudly when nothing fits.
"""

from __future__ import annotations

from dataclasses import dataclass

from ssec_transfer.core.errors import PlanError
from ssec_transfer.core.units import format_size

MiB = 1024 * 1024
GiB = 1024 * MiB
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10_000
MAX_OBJECT_SIZE = MAX_PART_SIZE * MAX_PARTS
MAX_SINGLE_PUT = 5 * GiB


@dataclass(frozen=True, slots=True)
class Part:
    """One contiguous byte range; `number` is the 1-based S3 part number."""

    number: int
    offset: int
    length: int

    @property
    def end(self) -> int:
        """Exclusive end offset."""
        return self.offset + self.length

    @property
    def http_range(self) -> str:
        return f"bytes={self.offset}-{self.end - 1}"


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def choose_part_size(size: int, preferred: int) -> int:
    """The preferred part size, grown (to whole MiB) when the object would need > 10,000 parts."""
    if size < 0:
        raise PlanError(f"object size cannot be negative ({size})")
    if size > MAX_OBJECT_SIZE:
        raise PlanError(
            f"{format_size(size)} exceeds what S3 multipart upload can hold "
            f"({MAX_PARTS:,} parts of at most {format_size(MAX_PART_SIZE)})"
        )
    part_size = max(preferred, MIN_PART_SIZE)
    if _ceil_div(size, part_size) > MAX_PARTS:
        part_size = _ceil_div(_ceil_div(size, MAX_PARTS), MiB) * MiB
    return min(part_size, MAX_PART_SIZE)


def check_part_size(size: int, part_size: int) -> None:
    """Reject an explicit part size that S3 cannot accept for this object, saying why."""
    if part_size < MIN_PART_SIZE:
        raise PlanError(
            f"part size {format_size(part_size)} is below the S3 minimum of "
            f"{format_size(MIN_PART_SIZE)} (only the last part may be smaller)",
            hint="use --part-size 5MiB or more, or leave it out to let the tool choose",
        )
    if part_size > MAX_PART_SIZE:
        raise PlanError(
            f"part size {format_size(part_size)} is above the S3 maximum of "
            f"{format_size(MAX_PART_SIZE)}",
            hint="use --part-size 5GiB or less, or leave it out to let the tool choose",
        )
    parts = _ceil_div(size, part_size)
    if parts > MAX_PARTS:
        needed = _ceil_div(_ceil_div(size, MAX_PARTS), MiB) * MiB
        raise PlanError(
            f"part size {format_size(part_size)} would cut {format_size(size)} into "
            f"{parts:,} parts; S3 allows at most {MAX_PARTS:,}",
            hint=f"use --part-size {needed // MiB}MiB or more, or leave it out",
        )


def plan_parts(size: int, part_size: int) -> list[Part]:
    """Cut [0, size) into consecutive parts of `part_size`; the last one may be shorter.

    An empty object is one empty part, so callers never special-case zero.
    """
    if part_size <= 0:
        raise PlanError(f"part size must be positive, got {part_size}")
    if size == 0:
        return [Part(1, 0, 0)]
    return [
        Part(i + 1, offset, min(part_size, size - offset))
        for i, offset in enumerate(range(0, size, part_size))
    ]


def plan_upload(size: int, *, part_size: int | None, preferred: int) -> list[Part]:
    """Parts for a multipart upload, with the S3 limits enforced."""
    if part_size is None:
        part_size = choose_part_size(size, preferred)
    else:
        check_part_size(size, part_size)
    return plan_parts(size, part_size)
