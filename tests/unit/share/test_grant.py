"""The grant document without a server: its signature is botocore's, every edit of the file
is caught before sending, and the sender's checks refuse what the server would."""

from __future__ import annotations

import base64
import copy
import datetime
import json
from typing import Any

import pytest
from botocore.auth import S3SigV4PostAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials

from ssec_transfer.cli.main import main
from ssec_transfer.core.errors import InsecureEndpointError, UsageError, WrongKeyError
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.share import grant as g
from ssec_transfer.share.post import parse_error, parse_post_response, refusal

NOW = 1_790_000_000.0  # 2026-09-21T...Z
FINGERPRINT = SSECustomerKey(b"k" * 32).fingerprint


def _build(token: str | None = None, **given: Any) -> dict[str, Any]:
    made: dict[str, Any] = {
        "endpoint_url": "https://s3.example.com:8443/", "bucket": "b", "prefix": "in/",
        "fingerprint": FINGERPRINT, "region": "eu-west-1", "now": NOW, "expires_in": 3600,
        "credentials": ReadOnlyCredentials("AKID", "SECRET/KEY", token),
    }  # fmt: skip
    return g.build_grant(**(made | given))


@pytest.mark.parametrize("token", [None, "SESSION-TOKEN"])
def test_signature_is_botocores_presigned_post(
    token: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    grant = _build(token)
    policy = json.loads(base64.b64decode(grant["fields"]["policy"]))
    signer_own = [c for c in policy["conditions"]
                  if isinstance(c, dict) and next(iter(c)).startswith("x-amz-")
                  and next(iter(c)) not in (g.ALGORITHM_FIELD, g.MD5_FIELD)]  # fmt: skip
    asked = {"expiration": policy["expiration"],
             "conditions": [c for c in policy["conditions"] if c not in signer_own]}  # fmt: skip
    fixed = datetime.datetime.fromtimestamp(NOW, datetime.UTC).replace(tzinfo=None)
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: fixed)
    request = AWSRequest(method="POST", url="https://s3.example.com:8443/b")
    request.context["s3-presign-post-fields"] = {}
    request.context["s3-presign-post-policy"] = asked
    S3SigV4PostAuth(Credentials("AKID", "SECRET/KEY", token), "s3", "eu-west-1").add_auth(request)
    theirs = request.context["s3-presign-post-fields"]
    assert grant["fields"]["policy"] == theirs["policy"]
    assert grant["fields"]["x-amz-signature"] == theirs["x-amz-signature"]
    assert grant["fields"]["x-amz-credential"] == theirs["x-amz-credential"]
    assert grant["fields"].get("x-amz-security-token") == theirs.get("x-amz-security-token")


def test_the_document_follows_the_contract() -> None:
    grant = _build()
    assert grant["url"] == "https://s3.example.com:8443/b"
    assert grant["expires"] == g.utc_text(NOW + 3600)
    assert grant["expires"].endswith("Z")
    assert list(grant["fields"])[:4] == [
        "key", "success_action_status", g.ALGORITHM_FIELD, g.MD5_FIELD,
    ]  # fmt: skip
    assert list(grant["fields"])[-2:] == ["policy", "x-amz-signature"]
    assert grant["fields"]["key"] == "in/${filename}"
    assert "SECRET" not in json.dumps(grant)
    policy = json.loads(base64.b64decode(grant["fields"]["policy"]))
    assert ["starts-with", "$key", "in/"] in policy["conditions"]
    assert ["content-length-range", 0, g.POST_MAX_SIZE] in policy["conditions"]
    assert {g.MD5_FIELD: FINGERPRINT} in policy["conditions"]


def test_http_endpoint_and_impossible_sizes_are_refused() -> None:
    with pytest.raises(InsecureEndpointError):
        _build(endpoint_url="http://s3.example.com")
    with pytest.raises(UsageError, match="5 GiB"):
        _build(max_size=g.POST_MAX_SIZE + 1)
    with pytest.raises(UsageError):
        _build(min_size=10, max_size=5)


@pytest.mark.parametrize(("text", "seconds"), [("30m", 1800), ("24h", 86400), ("7d", 604800),
                                               ("90s", 90), ("2H", 7200)])  # fmt: skip
def test_expires_accepts_durations(text: str, seconds: int) -> None:
    assert g.parse_expires(text) == seconds


@pytest.mark.parametrize(("text", "says"), [("8d", "longer than 7 days"), ("169h", "7 days"),
                                            ("0m", "no time"), ("1w", "30m, 24h or 7d"),
                                            ("soon", "30m")])  # fmt: skip
def test_expires_refuses_what_sigv4_cannot_sign(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        g.parse_expires(text)


def test_folder_prefix() -> None:
    from ssec_transfer.s3.urls import folder_prefix

    assert folder_prefix("in") == "in/"
    assert folder_prefix("in/") == "in/"
    assert folder_prefix("") == ""


def test_a_grant_reads_back() -> None:
    grant = g.parse_grant(_build(), "grant.json")
    assert (grant.bucket, grant.prefix, grant.key_fingerprint) == ("b", "in/", FINGERPRINT)
    assert grant.expires_at == float(int(NOW) + 3600)
    assert grant.object_key("x/y.nc") == "in/x/y.nc"


def _edited(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(_build())
    change(data)
    return data


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda d: d.update(type="other"), "not an ssec-transfer grant"),
        (lambda d: d.update(version=2), "grant version 2"),
        (lambda d: d.update(url="http://s3.example.com/b"), "not an https:// URL"),
        (lambda d: d["fields"].pop("policy"), "form fields missing: policy"),
        (lambda d: d["fields"].update({g.KEY_FIELD: "a2V5"}), "must never carry the key"),
        (
            lambda d: d.update(key_fingerprint=SSECustomerKey(b"o" * 32).fingerprint),
            "not what its signed policy pins",
        ),
        (lambda d: d["fields"].update({g.MD5_FIELD: "x" * 22 + "=="}), "signed policy pins"),
        (lambda d: d.update(prefix=""), "signed policy pins"),
        (lambda d: d.update(bucket="other"), "signed policy pins"),
        (lambda d: d.update(max_size=10), "signed policy pins"),
        (lambda d: d.update(expires="2099-01-01T00:00:00Z"), "signed policy pins"),
        (lambda d: d.update(expires="tomorrow"), "not a UTC time"),
        (lambda d: d["fields"].update(policy="!!"), "not a base64 JSON POST policy"),
    ],
)
def test_edited_grants_are_refused(change: Any, says: str) -> None:
    with pytest.raises(UsageError, match=says) as refused:
        g.parse_grant(_edited(change), "grant.json")
    assert refused.value.exit_code == 2
    assert "nothing was sent" in str(refused.value)


def test_sender_checks() -> None:
    grant = g.parse_grant(_build(max_size=100), "grant.json")
    with pytest.raises(WrongKeyError) as wrong:
        g.check_key(grant, SSECustomerKey(b"o" * 32).fingerprint)
    assert wrong.value.exit_code == 3
    g.check_key(grant, FINGERPRINT)
    g.check_not_expired(grant, NOW + 3599)
    with pytest.raises(UsageError, match="expired at"):
        g.check_not_expired(grant, NOW + 3600)
    g.check_size(grant, "f", 100)
    with pytest.raises(UsageError, match=r"outside the grant's size range 0\.\.100"):
        g.check_size(grant, "f", 101)
    with pytest.raises(UsageError, match="more than the 5 GiB"):
        g.check_size(grant, "f", g.POST_MAX_SIZE + 1)
    assert g.check_name(grant, "2026/a.nc") == "in/2026/a.nc"
    for name in ("", "../a", "/a", "a//b", "a/./b", "a/.."):
        with pytest.raises(UsageError, match="not a name under"):
            g.check_name(grant, name)


def test_post_answers_are_read() -> None:
    ok = (b'<?xml version="1.0"?><PostResponse><Location>https://h/b/in/a</Location>'
          b"<Bucket>b</Bucket><Key>in/a</Key><ETag>\"e\"</ETag></PostResponse>")  # fmt: skip
    assert parse_post_response(ok) == {"Bucket": "b", "Key": "in/a", "ETag": '"e"',
                                       "Location": "https://h/b/in/a"}  # fmt: skip
    assert parse_post_response(b"") == {}
    assert parse_error(b"<Error><Code>AccessDenied</Code><Message>m</Message></Error>")[:2] == (
        "AccessDenied", "m",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("status", "code", "message", "kind", "says"),
    [
        (400, "InvalidArgument", "", "WrongKeyError", "refused the SSE-C key"),  # Ceph
        (
            400,
            "InvalidArgument",
            "The provided customer encryption key MD5 does not match the key.",
            "WrongKeyError",
            "MD5 does not match",
        ),  # SeaweedFS
        (400, "EntityTooLarge", "", "AccessDeniedError", "size range"),
        (
            403,
            "AccessDenied",
            "Invalid according to Policy: Policy expired",
            "AccessDeniedError",
            "expired",
        ),
        (
            403,
            "AccessDenied",
            "Invalid according to Policy: Policy Condition failed",
            "AccessDeniedError",
            "grant's conditions",
        ),
        (403, "SignatureDoesNotMatch", "", "AccessDeniedError", "changed after it was signed"),
        (403, "InvalidAccessKeyId", "", "AccessDeniedError", "does not know the credentials"),
        (404, "NoSuchBucket", "", "NoSuchBucketError", "does not exist"),
        (503, "SlowDown", "", "TransferFailedError", "refused the upload"),
    ],
)
def test_refusals_are_named(status: int, code: str, message: str, kind: str, says: str) -> None:
    from ssec_transfer.core.errors import ErrorContext

    grant = g.parse_grant(_build(), "grant.json")
    error = refusal(status, code, message, ErrorContext("PostObject", "b", "in/a"), grant)
    assert type(error).__name__ == kind
    assert says in str(error)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--expires", "8d"], "longer than 7 days"),
        (["--expires", "24h", "--max-size", "6GiB"], "more than 5GiB"),
    ],
)
def test_grant_options_are_refused_before_any_request(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["grant", "s3://b/in/", "--key-file", "k", *argv])
    assert stopped.value.code == 2
    assert says in capsys.readouterr().err


def test_the_grant_line_fits_the_one_schema() -> None:
    from ssec_transfer.core.report import grant_record
    from tests.support.json_schema import validate_record

    record = grant_record(_build(), file="grant.json", html=None)
    validate_record(record)
    assert "fields" not in record
    assert record["key_fingerprint"] == FINGERPRINT
    assert record["file"] == "grant.json"
