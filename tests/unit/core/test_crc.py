"""Combining part CRCs gives the CRC of the whole, for any split."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ssec_transfer.core.crc import combine_parts, crc32c, crc32c_combine, digest_text


@given(a=st.binary(max_size=2000), b=st.binary(max_size=2000))
def test_combine_two(a: bytes, b: bytes) -> None:
    assert crc32c_combine(crc32c(a), crc32c(b), len(b)) == crc32c(a + b)


@given(chunks=st.lists(st.binary(max_size=500), max_size=12))
def test_combine_many(chunks: list[bytes]) -> None:
    whole = b"".join(chunks)
    assert combine_parts((crc32c(c), len(c)) for c in chunks) == crc32c(whole)


def test_known_value_and_text() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert digest_text(0xE3069283) == "crc32c:4waSgw=="
