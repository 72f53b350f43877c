"""`rm` planning without a server: which keys and versions go, DeleteObjects batches of at
most 1000 keys, and each answer read back into one outcome per key."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssec_transfer.apps.remove import (
    MAX_KEYS_PER_REQUEST,
    RemovalTarget,
    RemoveOutcome,
    batches,
    delete_request,
    outcomes_of,
    select,
)
from ssec_transfer.core.errors import AccessDeniedError, NoSuchVersionError, TransferFailedError
from ssec_transfer.s3.listing import ListedObject
from ssec_transfer.s3.urls import folder_prefix


def obj(
    key: str, version: str | None = None, *, marker: bool = False, size: int = 3
) -> ListedObject:
    return ListedObject("b", key, 0 if marker else size, version, True, None, None, marker)


@given(st.integers(min_value=0, max_value=5000), st.integers(min_value=1, max_value=1500))
def test_batches_cover_every_item_once_in_order_and_stay_within_the_limit(
    n: int, size: int
) -> None:
    items = list(range(n))
    cut = batches(items, size)
    assert [i for batch in cut for i in batch] == items
    assert all(1 <= len(batch) <= size for batch in cut)
    assert all(len(batch) == size for batch in cut[:-1])  # only the last one is short
    assert len(cut) == -(-n // size)  # ceil(n / size) requests, no more


def test_the_default_batch_is_s3s_limit_of_1000_keys() -> None:
    cut = batches(list(range(2001)))
    assert MAX_KEYS_PER_REQUEST == 1000
    assert [len(b) for b in cut] == [1000, 1000, 1]
    with pytest.raises(ValueError, match="at least 1"):
        batches([1], 0)


def test_a_recursive_prefix_is_a_folder() -> None:
    assert folder_prefix("data") == "data/"
    assert folder_prefix("data/") == "data/"
    assert folder_prefix("") == ""


def test_select_applies_the_rules_to_keys_relative_to_the_prefix() -> None:
    listed = [obj("l1/a.nc"), obj("l1/b.tmp"), obj("l1/sub/c.nc"), obj("l1/sub/d.tmp")]
    plan = select(listed, "l1/", [("exclude", "*.tmp")], versions=False)
    assert [t.key for t in plan.targets] == ["l1/a.nc", "l1/sub/c.nc"]
    assert plan.excluded == 2
    # later rules win, as for put/get --recursive
    plan = select(listed, "l1/", [("exclude", "*"), ("include", "sub/*")], versions=False)
    assert [t.key for t in plan.targets] == ["l1/sub/c.nc", "l1/sub/d.tmp"]
    assert all(t.version_id is None for t in plan.targets)


def test_select_with_versions_names_every_version_and_marker_and_the_null_version() -> None:
    listed = [
        obj("k", "v2", marker=True), obj("k", "v1"), obj("k", None), obj("x.tmp", "v9"),
    ]  # fmt: skip
    plan = select(listed, "", [("exclude", "*.tmp")], versions=True)
    assert [(t.key, t.version_id, t.delete_marker) for t in plan.targets] == [
        ("k", "v2", True), ("k", "v1", False), ("k", "null", False),
    ]  # fmt: skip
    assert plan.targets[0].size is None  # a delete marker has no size
    assert plan.excluded == 1  # one key, however many versions


def test_delete_request_names_versions_only_where_given() -> None:
    request = delete_request([RemovalTarget("b", "a"), RemovalTarget("b", "k", "v1")])
    assert request == {"Objects": [{"Key": "a"}, {"Key": "k", "VersionId": "v1"}], "Quiet": False}


def test_outcomes_name_each_failed_key_with_the_servers_code_and_message() -> None:
    batch = [
        RemovalTarget("b", "ok"),
        RemovalTarget("b", "locked", "v1"),
        RemovalTarget("b", "gone", "v2"),
        RemovalTarget("b", "unmentioned"),
    ]
    answer = {
        "Deleted": [{"Key": "ok", "DeleteMarker": True, "DeleteMarkerVersionId": "m1"}],
        "Errors": [
            {"Key": "locked", "VersionId": "v1", "Code": "AccessDenied",
             "Message": "Access Denied because object protected by object lock."},
            {"Key": "gone", "VersionId": "v2", "Code": "NoSuchVersion", "Message": "no such"},
        ],
    }  # fmt: skip
    ok, locked, gone, unmentioned = outcomes_of(batch, answer)
    assert ok.status == "ok"
    assert ok.created_delete_marker == "m1"
    assert locked.status == "failed"
    assert isinstance(locked.error, AccessDeniedError)
    assert locked.error_code == "AccessDenied"
    text = str(locked.error)
    assert text.startswith("DeleteObjects s3://b/locked: AccessDenied: Access Denied because")
    assert "(version v1)" in text
    assert isinstance(gone.error, NoSuchVersionError)
    assert unmentioned.status == "failed"
    assert isinstance(unmentioned.error, TransferFailedError)
    assert "does not mention this key" in str(unmentioned.error)
    assert [o.error.exit_code for o in (locked, gone, unmentioned) if o.error] == [1, 1, 1]


def test_an_answer_without_version_ids_still_matches_plain_deletes() -> None:
    [outcome] = outcomes_of([RemovalTarget("b", "k")], {"Deleted": [{"Key": "k"}]})
    assert outcome.status == "ok"
    assert outcome.created_delete_marker is None
    # ... but never a specific version to an entry for another one
    [outcome] = outcomes_of(
        [RemovalTarget("b", "k", "v1")], {"Deleted": [{"Key": "k", "VersionId": "v2"}]}
    )
    assert outcome.status == "failed"


def test_the_json_line_keeps_the_bulk_fields() -> None:
    target = RemovalTarget("b", "dir/x.nc", "v1", size=10, etag='"e"')
    line = RemoveOutcome(target, "ok", seconds=0.5).to_dict()
    bulk_fields = {
        "source", "destination", "status", "version_id", "size", "etag", "key_fingerprint",
        "checksum", "seconds", "error", "exit_code", "reason",
    }  # fmt: skip
    assert bulk_fields <= set(line)
    assert line["source"] == "s3://b/dir/x.nc"
    assert line["operation"] == "delete"
    assert line["exit_code"] == 0
    assert line["error"] is None
    json.dumps(line)  # serializable as it is
    assert target.describe() == "s3://b/dir/x.nc (version v1)"
    marker = RemovalTarget("b", "k", "m", delete_marker=True)
    assert marker.describe() == "s3://b/k (delete marker m)"
