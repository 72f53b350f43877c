"""`sync`'s verdicts: what is proven equal, what is sent, and the reason given for each."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ssec_transfer.apps.sync_plan import REASONS, Facts, Verdict, extra, needs_inspection, verdict
from ssec_transfer.core.crc import digest_text
from ssec_transfer.keys.seal import SourceFacts

S = 10**9
sizes = st.integers(0, 2**40)
times = st.integers(0, 2**62)
crcs = st.none() | st.integers(0, 2**32 - 1)


def sealed_object(size: int, mtime: int, crc: int | None = None, at: int = 0) -> Facts:
    return Facts(size, at, sealed=SourceFacts(size, mtime, crc))


@given(sizes, times, crcs, st.booleans())
def test_a_file_that_matches_its_seal_is_skipped_in_both_directions(
    size: int, mtime: int, crc: int | None, checksum: bool
) -> None:
    local = Facts(size, mtime)
    obj = sealed_object(size, mtime, crc)
    for direction, pair in (("upload", (local, obj)), ("download", (obj, local))):
        said = verdict(*pair, direction=direction, checksum=checksum)  # type: ignore[arg-type]
        assert said.action == "skip"
        if checksum:  # proven by content: the CRC32C sealed, or the object read
            assert said.reason == "same-checksum"
            assert said.verify == (digest_text(crc) if crc is not None else None)
            assert said.read_object == (crc is None)
        else:
            assert said == Verdict("skip", "same-sealed")


@given(sizes, sizes, times, times)
def test_sizes_that_differ_are_always_sent(a: int, b: int, t1: int, t2: int) -> None:
    if a == b:
        b += 1
    for direction in ("upload", "download", "copy"):
        said = verdict(Facts(a, t1), sealed_object(b, t2), direction=direction)  # type: ignore[arg-type]
        assert said == Verdict("send", "size-differs")


@given(sizes, times, st.integers(1, 10**12))
def test_a_new_mtime_without_a_sealed_crc_is_sent(size: int, mtime: int, later: int) -> None:
    said = verdict(Facts(size, mtime + later), sealed_object(size, mtime), direction="upload")
    assert said == Verdict("send", "mtime-differs")


def test_a_new_mtime_with_a_sealed_crc_asks_for_the_files_crc() -> None:
    said = verdict(Facts(5, 2 * S), sealed_object(5, 1 * S, 0xCAFE), direction="upload")
    assert said == Verdict("skip", "same-checksum", verify=digest_text(0xCAFE))


def test_unsealed_objects_use_a_recorded_checksum_then_awss_time_rule() -> None:
    recorded = Facts(5, 10 * S, checksum="crc32c:AAAAAA==")
    said = verdict(Facts(5, 99 * S), recorded, direction="upload")
    assert said == Verdict("skip", "same-checksum", verify="crc32c:AAAAAA==")
    # aws: an upload sends a file newer than the object; a download an object newer than the file.
    older_file, newer_object = Facts(5, 5 * S), Facts(5, 10 * S)
    assert verdict(older_file, newer_object, direction="upload").reason == "same-size-and-time"
    assert verdict(newer_object, older_file, direction="download").reason == "newer"
    assert verdict(Facts(5, 11 * S), newer_object, direction="upload").reason == "newer"
    # LastModified has whole seconds.
    assert verdict(Facts(5, 10 * S + 999), newer_object, direction="upload").action == "skip"
    # --compare-checksums: nothing recorded, so the object is read.
    said = verdict(older_file, newer_object, direction="upload", checksum=True)
    assert said.read_object


def test_a_forged_or_foreign_seal_is_no_seal() -> None:
    """The caller passes `sealed=None` when the seal does not open under the key."""
    said = verdict(Facts(5, 20 * S), Facts(5, 10 * S, sealed=None), direction="upload")
    assert said == Verdict("send", "newer")


@given(sizes, times, crcs)
def test_copies_compare_sealed_facts_of_both_objects(
    size: int, mtime: int, crc: int | None
) -> None:
    a, b = sealed_object(size, mtime, crc, at=1), sealed_object(size, mtime, crc, at=99 * S)
    assert verdict(a, b, direction="copy").action == "skip"
    other = sealed_object(size, mtime + 1, None if crc is None else crc ^ 1)
    assert verdict(a, other, direction="copy").action == "send"


def test_new_paths_and_deletions() -> None:
    assert verdict(Facts(1, 1), None, direction="upload") == Verdict("send", "new")
    assert not needs_inspection(Facts(1), None)
    assert not needs_inspection(Facts(1), Facts(2))
    assert needs_inspection(Facts(2), Facts(2))
    assert extra(["a", "b"], {"b": Facts(1), "c": Facts(1), "a/x": Facts(1)}) == ["a/x", "c"]


def test_every_reason_is_explained() -> None:
    reasons = {"new", "size-differs", "mtime-differs", "checksum-differs", "newer",
               "same-sealed", "same-checksum", "same-size-and-time", "not-in-source"}  # fmt: skip
    assert set(REASONS) == reasons
