"""Whole-object CRC32C from the CRCs of its parts, computed in any order.

Parts are checksummed independently (in parallel, as they are sent or fetched). Combining
their CRCs gives the CRC32C of the whole object without another pass over the data: the same
`crc32_combine` algebra zlib uses, over GF(2), for the Castagnoli polynomial.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

import google_crc32c

_POLY = 0x82F63B78  # CRC32C, reflected


def _gf2_times(matrix: list[int], vector: int) -> int:
    total = 0
    i = 0
    while vector:
        if vector & 1:
            total ^= matrix[i]
        vector >>= 1
        i += 1
    return total


def _gf2_square(matrix: list[int]) -> list[int]:
    return [_gf2_times(matrix, matrix[n]) for n in range(32)]


def crc32c_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC32C of A+B given crc(A), crc(B) and len(B)."""
    if len2 <= 0:
        return crc1
    odd = [_POLY] + [1 << n for n in range(31)]  # operator for one zero bit
    even = _gf2_square(odd)  # two zero bits
    odd = _gf2_square(even)  # four zero bits
    while True:
        even = _gf2_square(odd)  # apply len2's bits, one zero byte at a time at first
        if len2 & 1:
            crc1 = _gf2_times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = _gf2_square(even)
        if len2 & 1:
            crc1 = _gf2_times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2


def crc32c(data: bytes, previous: int = 0) -> int:
    return int(google_crc32c.extend(previous, data))


def combine_parts(parts: Iterable[tuple[int, int]]) -> int:
    """CRC32C of consecutive parts, given (crc, length) of each in order."""
    total = 0
    for crc, length in parts:
        total = crc32c_combine(total, crc, length)
    return total


def digest_text(crc: int) -> str:
    """How a whole-object digest is written in results and records: `crc32c:BASE64`."""
    return "crc32c:" + base64.b64encode(crc.to_bytes(4, "big")).decode("ascii")
