"""Whole-object CRC32C from the CRCs of its parts, computed in any order.

Parts are checksummed independently (in parallel, as they are sent or fetched). Combining
their CRCs gives the CRC32C of the whole object without another pass over the data: the same
`crc32_combine` algebra zlib uses, over GF(2), for the Castagnoli polynomial.
"""

from __future__ import annotations

import base64
import functools
import os
from collections.abc import Iterable, Sequence

import google_crc32c

_POLY = 0x82F63B78  # CRC32C, reflected


def _gf2_times(matrix: Sequence[int], vector: int) -> int:
    total = 0
    i = 0
    while vector:
        if vector & 1:
            total ^= matrix[i]
        vector >>= 1
        i += 1
    return total


def _gf2_square(matrix: Sequence[int]) -> list[int]:
    return [_gf2_times(matrix, matrix[n]) for n in range(32)]


@functools.lru_cache(maxsize=64)
def _zeros_operator(length: int) -> tuple[int, ...]:
    """The GF(2) matrix that appends `length` zero bytes to a CRC register.

    Parts of one object share a length (all but the last), so this is computed about twice
    per object and each combine is then a single 32x32 matrix-vector product.
    """
    one_bit = [_POLY] + [1 << n for n in range(31)]
    power = _gf2_square(_gf2_square(_gf2_square(one_bit)))  # one zero byte (8 bits)
    result = [1 << n for n in range(32)]  # identity
    while length:
        if length & 1:
            result = [_gf2_times(power, column) for column in result]
        length >>= 1
        if length:
            power = _gf2_square(power)
    return tuple(result)


def crc32c_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC32C of A+B given crc(A), crc(B) and len(B)."""
    if len2 <= 0:
        return crc1
    return _gf2_times(_zeros_operator(len2), crc1) ^ crc2


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


def file_digest(path: str | os.PathLike[str]) -> str:
    """A file's CRC32C as `digest_text` writes it, read in 1 MiB pieces. Blocking."""
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            crc = crc32c(chunk, crc)
    return digest_text(crc)
