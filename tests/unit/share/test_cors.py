"""Planning the upload page's bucket CORS rule: added once, the bucket's own rules kept."""

from __future__ import annotations

from ssec_transfer.share.cors import merged_rules, upload_page_rule

OTHER = {"AllowedOrigins": ["https://app.example.org"], "AllowedMethods": ["GET"]}


def test_a_bucket_without_rules_gets_the_page_rule() -> None:
    assert merged_rules([]) == [upload_page_rule()]
    assert upload_page_rule()["AllowedOrigins"] == ["null"]  # a page opened from a file


def test_existing_rules_are_kept() -> None:
    assert merged_rules([OTHER]) == [OTHER, upload_page_rule()]


def test_a_rule_that_already_allows_the_page_changes_nothing() -> None:
    assert merged_rules([OTHER, upload_page_rule()]) is None
    assert merged_rules([{"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "post"]}]) is None


def test_a_null_origin_rule_without_post_is_not_enough() -> None:
    get_only = {"AllowedOrigins": ["null"], "AllowedMethods": ["GET"]}
    assert merged_rules([get_only]) == [get_only, upload_page_rule()]
