"""The one record builder behind every --json line: flat error fields, the schema, no keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssec_transfer.apps.bulk import JobOutcome, TransferJob
from ssec_transfer.apps.remove import RemovalTarget, RemoveOutcome
from ssec_transfer.apps.sources import problem
from ssec_transfer.apps.watch import WatchEvent
from ssec_transfer.core.errors import ErrorContext, LocalIOError, UsageError, WrongKeyError
from ssec_transfer.core.report import (
    ERROR_FIELDS,
    OBJECT_FIELDS,
    SCHEMA_VERSION,
    error_fields,
    error_record,
    event_record,
    interrupted_record,
    listing_record,
    object_record,
    result_record,
    summary_record,
)
from ssec_transfer.core.results import TransferResult
from ssec_transfer.keys.customer import SSECustomerKey
from tests.support.json_schema import validate_record

KEY = SSECustomerKey.generate()
WRONG_KEY = WrongKeyError(
    "the object is encrypted under a different key",
    hint="pass the key it was uploaded with",
    context=ErrorContext("HeadObject", "b", "dir/x.nc", status=403, request_id="tx-1"),
)
RESULT = TransferResult(
    operation="upload", bucket="b", key="dir/x.nc", path="local/x.nc", size=3 * 1048576,
    etag='"e"', version_id="v1", key_fingerprint=KEY.fingerprint, parts=1, seconds=1.5,
    checksum="crc32c:AAAAAA==",
)  # fmt: skip


def test_an_error_is_split_into_flat_fields_without_the_hint_in_its_text() -> None:
    fields = error_fields(WRONG_KEY)
    assert fields == {
        "error": "HeadObject s3://b/dir/x.nc: the object is encrypted under a different key "
        "(HTTP 403, request id tx-1)",
        "error_type": "WrongKeyError",
        "hint": "pass the key it was uploaded with",
        "request": "HeadObject",
        "part": None,
        "http_status": 403,
        "request_id": "tx-1",
        "exit_code": 3,
    }
    assert "\n" not in fields["error"]
    assert str(WRONG_KEY) == fields["error"] + "\n  hint: pass the key it was uploaded with"


def test_no_error_is_every_error_field_null_and_exit_code_0() -> None:
    assert error_fields(None) == dict.fromkeys(ERROR_FIELDS) | {"exit_code": 0}


def test_a_plain_exception_or_message_still_fails_with_exit_code_1() -> None:
    plain = error_fields(OSError("disk full"))
    assert (plain["error"], plain["error_type"], plain["exit_code"]) == ("disk full", "OSError", 1)
    text = error_fields("cancelled: stopped before the upload finished")
    assert (text["error"], text["error_type"], text["exit_code"]) == (
        "cancelled: stopped before the upload finished", None, 1,
    )  # fmt: skip


def test_an_object_record_has_every_field_in_the_schema_and_computes_the_rate() -> None:
    record = result_record(RESULT)
    validate_record(record)
    assert set(OBJECT_FIELDS) | set(ERROR_FIELDS) <= set(record)
    assert (record["schema"], record["type"], record["status"]) == (SCHEMA_VERSION, "object", "ok")
    assert (record["source"], record["destination"]) == ("local/x.nc", "s3://b/dir/x.nc")
    assert (record["path"], record["size"], record["mib_per_s"]) == ("local/x.nc", 3145728, 2.0)
    assert record["resumed_parts"] == 0
    download = result_record(
        TransferResult(**{**RESULT.__dict__, "operation": "download", "resumed_parts": 0})
    )
    assert (download["operation"], download["source"], download["destination"]) == (
        "download", "s3://b/dir/x.nc", "local/x.nc",
    )  # fmt: skip
    assert download["resumed_parts"] == 0


def test_a_failed_object_record_has_no_rate_and_the_errors_exit_code() -> None:
    record = object_record(
        "download", "failed", source="s3://b/dir/x.nc", destination="x.nc", size=10,
        seconds=0.2, error=WRONG_KEY,
    )  # fmt: skip
    validate_record(record)
    assert record["mib_per_s"] is None
    assert (record["exit_code"], record["http_status"], record["request_id"]) == (3, 403, "tx-1")


def test_deletes_have_no_rate_and_extras_cannot_replace_common_fields() -> None:
    record = object_record("delete", "ok", source="s3://b/k", size=10, seconds=1.0)
    assert record["mib_per_s"] is None
    with pytest.raises(ValueError, match="status"):
        object_record("delete", "ok", extra={"status": "gone"})


def test_no_key_material_in_any_record() -> None:
    outcome = JobOutcome(
        TransferJob("upload", Path("x.nc"), "b", "dir/x.nc", KEY), "ok", result=RESULT, seconds=2
    )
    failed = JobOutcome(
        TransferJob("download", Path("y"), "b", "k", KEY), "failed", error=WRONG_KEY
    )
    text = json.dumps([outcome.to_dict(), failed.to_dict(), error_record("get", WRONG_KEY)])
    assert KEY.export_base64() not in text
    assert KEY.fingerprint in text  # the fingerprint, which names the key without revealing it


def test_the_bulk_line_of_a_source_that_cannot_be_sent() -> None:
    issue = problem("special-file", "a FIFO (named pipe)", hint="read it with put -")
    outcome = JobOutcome(
        TransferJob("upload", Path("in/pipe"), "b", "in/pipe", problem=issue), "failed",
        error=issue,
    )  # fmt: skip
    record = outcome.to_dict()
    validate_record(record)
    assert (record["reason"], record["hint"], record["exit_code"]) == (
        "special-file", "read it with put -", 1,
    )  # fmt: skip
    assert record["error"] == "special file: a FIFO (named pipe)"
    assert (record["source"], record["destination"]) == ("in/pipe", "s3://b/in/pipe")


def test_watch_and_rm_lines_use_the_same_names() -> None:
    event = WatchEvent(
        path="a/x.nc", bucket="b", object_key="in/a/x.nc", status="uploaded", size=5,
        seconds=0.5, local_path="outbox/a/x.nc", key_fingerprint=KEY.fingerprint,
    )  # fmt: skip
    line = event.to_dict()
    validate_record(line)
    assert (line["operation"], line["status"], line["key"], line["relative_path"]) == (
        "upload", "ok", "in/a/x.nc", "a/x.nc",
    )  # fmt: skip
    assert (line["source"], line["destination"]) == ("outbox/a/x.nc", "s3://b/in/a/x.nc")
    failed = WatchEvent(
        path="x", bucket="b", object_key="x", status="failed", error=str(WRONG_KEY),
        problem=WRONG_KEY,
    )  # fmt: skip
    assert failed.to_dict()["http_status"] == 403
    gone = RemoveOutcome(
        RemovalTarget("b", "k", "v1"), "failed", LocalIOError("x"), error_code="AccessDenied"
    ).to_dict()
    validate_record(gone)
    assert (gone["operation"], gone["error_code"], gone["destination"]) == (
        "delete", "AccessDenied", None,
    )  # fmt: skip


def test_every_other_record_type_fits_the_schema() -> None:
    for record in (
        summary_record("put", files=2, ok=1, skipped=0, failed=1, bytes=5, seconds=1.0,
                       mib_per_s=0.0, reasons={"loop": 1}, exit_code=1),
        event_record("watch", "started"),
        error_record("put", UsageError("put needs SRC")),
        interrupted_record("get", "SIGINT", 130),
        listing_record("prefix", bucket="b", prefix="a/"),
        listing_record("bucket", bucket="b", creation_date=None),
    ):  # fmt: skip
        validate_record(record)
        assert record["schema"] == SCHEMA_VERSION


def test_the_schema_rejects_what_readers_must_not_see() -> None:
    good = result_record(RESULT)
    for bad in (
        {**good, "status": "uploaded"},  # watch's old word
        {**good, "mib_per_s": "2.0"},
        {**good, "status": "failed"},  # failed without an error
        {**good, "error": "boom"},  # ok with an error
        {k: v for k, v in good.items() if k != "hint"},
        {**good, "schema": 2},
    ):
        with pytest.raises(AssertionError):
            validate_record_or_assert(bad)


def validate_record_or_assert(record: dict[str, object]) -> None:
    import jsonschema

    try:
        validate_record(record)
    except jsonschema.ValidationError as exc:
        raise AssertionError(exc.message) from None


def test_docs_json_md_documents_every_common_field() -> None:
    docs = (Path(__file__).parents[3] / "docs" / "json.md").read_text()
    for name in (*OBJECT_FIELDS, *ERROR_FIELDS):
        assert f"`{name}`" in docs, name
    assert f"# JSON output (`--json`), schema {SCHEMA_VERSION}" in docs
