"""Which ledger record names the key of a listed object version (`listing._recorded`)."""

from __future__ import annotations

from datetime import UTC, datetime

from ssec_transfer.s3.listing import CLOCK_SLACK, ListedObject, _recorded

T = 1_800_000_000.0
ISO = datetime.fromtimestamp(T, UTC).isoformat()


def obj(version: str | None = None, etag: str | None = '"aa"', size: int = 10) -> ListedObject:
    return ListedObject("b", "k", size, version, True, ISO, etag)


def test_a_version_id_matches_that_version_only() -> None:
    records = [("v2", '"x"', 10, "FP2", T, "upload"), ("v1", '"x"', 10, "FP1", T, "upload")]
    assert _recorded(obj("v1"), records) == "FP1"
    assert _recorded(obj("v3"), records) is None


def test_unversioned_objects_match_on_etag_and_size_after_the_last_write() -> None:
    assert _recorded(obj(), [(None, '"aa"', 10, "FP", T + 5, "download")]) == "FP"
    assert _recorded(obj(etag="aa"), [(None, '"aa"', 10, "FP", T + 5, "download")]) == "FP"
    # a record from before the object's last write describes an earlier object
    assert _recorded(obj(), [(None, '"aa"', 10, "FP", T - 2 * CLOCK_SLACK, "upload")]) is None


def test_a_listing_without_the_objects_etag_falls_back_to_the_write_that_made_it() -> None:
    """SeaweedFS lists the null version of an unversioned bucket with another ETag."""
    write = (None, '"aa"', 10, "FP", T + 1, "upload")
    assert _recorded(obj(etag='"other"'), [write]) == "FP"
    # not a read, not another size, not a write long before or after
    assert _recorded(obj(etag='"other"'), [(None, '"aa"', 10, "FP", T + 1, "download")]) is None
    assert _recorded(obj(etag='"other"', size=11), [write]) is None
    late = (None, '"aa"', 10, "FP", T + 2 * CLOCK_SLACK, "upload")
    assert _recorded(obj(etag='"other"'), [late]) is None
