"""Sealed source facts: readable and trustworthy with the object's key, and with nothing else."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssec_transfer.core.errors import UsageError
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.keys.seal import (
    METADATA_NAME,
    SEAL_BUDGET,
    SourceFacts,
    facts_in,
    reseal,
    seal,
    unseal,
)
from ssec_transfer.transfer.attributes import METADATA_LIMIT, ObjectAttributes

KEY = SSECustomerKey(bytes(range(32)))
OTHER = SSECustomerKey(bytes(range(1, 33)))
FACTS = SourceFacts(size=157286400, mtime_ns=1_767_261_072_123_456_789, crc32c=0xDEADBEEF)

facts = st.builds(
    SourceFacts,
    st.none() | st.integers(0, 5 * 2**40),
    st.none() | st.integers(0, 2**63 - 1),
    st.none() | st.integers(0, 2**32 - 1),
)
names = st.text(min_size=1, max_size=200)


@given(facts, names)
def test_round_trip_and_size_within_budget(sealed: SourceFacts, name: str) -> None:
    value = seal(sealed, KEY, "bucket", name)
    assert unseal(value, KEY, "bucket", name) == sealed
    assert len(METADATA_NAME) + len(value) <= SEAL_BUDGET


def test_another_key_cannot_read_it() -> None:
    value = seal(FACTS, KEY, "b", "k")
    assert unseal(value, OTHER, "b", "k") is None
    # Nothing of the facts is in clear: size, time and checksum are all hidden.
    blob = base64.b64decode(value.split(":", 1)[1])
    for number in (FACTS.size, FACTS.mtime_ns):
        assert str(number).encode() not in blob


def test_a_seal_copied_onto_another_object_does_not_open() -> None:
    value = seal(FACTS, KEY, "b", "a.nc")
    assert unseal(value, KEY, "b", "b.nc") is None
    assert unseal(value, KEY, "other", "a.nc") is None


@given(st.integers(0, 200), st.integers(1, 255))
def test_any_altered_byte_is_refused(position: int, flip: int) -> None:
    value = seal(FACTS, KEY, "b", "k")
    blob = bytearray(base64.b64decode(value.split(":", 1)[1]))
    blob[position % len(blob)] ^= flip
    forged = "1:" + base64.b64encode(bytes(blob)).decode()
    assert unseal(forged, KEY, "b", "k") is None


@pytest.mark.parametrize(
    "value",
    ["", "1:", "1:!!!", "2:" + base64.b64encode(b"x" * 40).decode(), "1:" + "A" * 64, "plain"],
)
def test_values_not_ours_are_untrusted(value: str) -> None:
    assert unseal(value, KEY, "b", "k") is None


def test_forged_plain_facts_are_not_trusted() -> None:
    """Anyone with write access can set metadata; without the key they cannot seal."""
    forged = {METADATA_NAME: "1:" + base64.b64encode(b"\0" * 12 + b'{"size": 1}').decode()}
    assert facts_in(forged, KEY, "b", "k") is None
    assert facts_in({METADATA_NAME: seal(FACTS, KEY, "b", "k")}, None, "b", "k") is None


def test_reseal_moves_the_facts_to_the_target_key_and_name() -> None:
    metadata = {METADATA_NAME: seal(FACTS, KEY, "b", "k"), "team": "ops"}
    moved = reseal(metadata, (KEY, "b", "k"), (OTHER, "c", "k2"))
    assert moved["team"] == "ops"
    assert facts_in(moved, OTHER, "c", "k2") == FACTS
    assert facts_in(moved, KEY, "b", "k") is None


def test_reseal_drops_a_seal_that_does_not_open() -> None:
    metadata = {METADATA_NAME: seal(FACTS, OTHER, "b", "k"), "team": "ops"}
    assert reseal(metadata, (KEY, "b", "k"), (KEY, "b", "k2")) == {"team": "ops"}


def test_report_form() -> None:
    assert FACTS.to_dict() == {
        "size": 157286400,
        "mtime": "2026-01-01T09:51:12.123457+00:00",
        "checksum": "crc32c:3q2+7w==",
    }


def test_user_metadata_leaves_room_for_the_seal() -> None:
    ObjectAttributes(metadata={"a": "x" * (METADATA_LIMIT - SEAL_BUDGET - 1)})
    with pytest.raises(UsageError, match="at most"):
        ObjectAttributes(metadata={"a": "x" * (METADATA_LIMIT - SEAL_BUDGET)})
    with pytest.raises(UsageError, match="reserved"):
        ObjectAttributes(metadata={METADATA_NAME: "x"})
    with pytest.raises(UsageError, match="ASCII"):
        ObjectAttributes(metadata={"a": "é"})
