"""Presigned URLs, without a server: botocore's presigned URL signs exactly the headers
`get --url`/`put --url` send (proved by signing again with botocore's own query signer), the
key is never in the URL, and the local checks (method, fingerprint, expiry, https) refuse
with their exit codes before anything is sent."""

from __future__ import annotations

import datetime
import os
import stat
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import botocore.auth
import botocore.session
import pytest
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from ssec_transfer.core.errors import InsecureEndpointError, UsageError, WrongKeyError
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.share import presign
from ssec_transfer.share.presign import (
    parse_expires,
    parse_presigned_url,
    presign_params,
    with_fragment,
)

ENDPOINT = "https://s3.example.com:8443"
CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")


def _client() -> Any:
    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name="eu-west-1",
        aws_access_key_id=CREDENTIALS.access_key,
        aws_secret_access_key=CREDENTIALS.secret_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def _presigned(key: SSECustomerKey, method: presign.Method, object_key: str = "d/a b+c.nc") -> str:
    operation = "get_object" if method == "GET" else "put_object"
    url = _client().generate_presigned_url(
        operation, Params=presign_params("bkt", object_key, key, method), ExpiresIn=900
    )
    return with_fragment(url, method, key.fingerprint)


@pytest.mark.parametrize("method", ["GET", "PUT"])
@pytest.mark.parametrize("object_key", ["plain.bin", "d/a b+c.nc", "ü/~x=1&y"])
def test_the_headers_sent_are_exactly_those_botocore_signed(
    method: Any, object_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = SSECustomerKey.generate()
    parsed = parse_presigned_url(_presigned(key, method, object_key))
    query = dict(parse_qsl(urlsplit(parsed.url).query))
    # Sign the same request again with botocore's query signer, from what the URL says and
    # the headers `request_headers` would send: the same signature means the server accepts.
    base = parsed.url.split("?", 1)[0]
    request = AWSRequest(method=method, url=base, headers=parsed.request_headers(key))
    # botocore signs at its own clock (`get_current_datetime`), not the request's context:
    # pin it to the URL's X-Amz-Date, or a second ticking between the two signings differs.
    signed_at = datetime.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: signed_at)
    S3SigV4QueryAuth(CREDENTIALS, "s3", "eu-west-1", expires=900).add_auth(request)
    again = dict(parse_qsl(urlsplit(request.url).query))
    assert again["X-Amz-SignedHeaders"] == query["X-Amz-SignedHeaders"]
    assert again["X-Amz-Signature"] == query["X-Amz-Signature"]


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_the_url_signs_the_sse_c_headers_and_holds_no_key(method: Any) -> None:
    key = SSECustomerKey.generate()
    text = _presigned(key, method)
    assert key.export_base64() not in text
    parsed = parse_presigned_url(text)
    signed = set(parsed.signed_headers)
    assert {presign.ALGORITHM_HEADER, presign.MD5_HEADER, "host"} <= signed
    assert (presign.KEY_HEADER in signed) == presign.SIGN_KEY_HEADER
    assert (presign.CHECKSUM_MODE_HEADER in signed) == (method == "GET")
    assert parsed.method == method
    assert parsed.fingerprint == key.fingerprint
    assert parsed.expires_in == 900
    assert parsed.shown == f"{ENDPOINT}/bkt/d/a%20b%2Bc.nc"
    assert parsed.object_name == "a b+c.nc"
    assert "#" not in parsed.url


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1), ("90", 90), ("30m", 1800), ("1h", 3600), ("12H", 43200), ("7d", 604800)],
)
def test_expires_accepts_durations(text: str, seconds: int) -> None:
    assert parse_expires(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [("8d", "longer than 7 days"), ("604801", "longer than 7 days"), ("0s", "at least 1s"),
     ("1w", "not a duration"), ("-1h", "not a duration"), ("soon", "not a duration")],
)  # fmt: skip
def test_expires_refuses_what_sigv4_cannot_sign(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        parse_expires(text)
    assert caught.value.exit_code == 2


def test_expiry_is_read_from_x_amz_date_and_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    key = SSECustomerKey.generate()
    parsed = parse_presigned_url(_presigned(key, "GET"))
    assert parsed.expires_at == parsed.signed_at + 900
    monkeypatch.setattr(presign, "_now", lambda: parsed.expires_at - 1)
    parsed.check_not_expired()
    monkeypatch.setattr(presign, "_now", lambda: parsed.expires_at + 3 * 3600 + 5)
    with pytest.raises(UsageError, match=r"expired at .* \(3h ago\); nothing was sent") as caught:
        parsed.check_not_expired()
    assert caught.value.exit_code == 2


def test_a_key_other_than_the_urls_is_refused_with_exit_3() -> None:
    key, other = SSECustomerKey.generate(), SSECustomerKey.generate()
    parsed = parse_presigned_url(_presigned(key, "GET"))
    parsed.check_key(key)
    with pytest.raises(WrongKeyError) as caught:
        parsed.check_key(other)
    assert caught.value.exit_code == 3
    assert key.fingerprint in str(caught.value)
    assert other.fingerprint in str(caught.value)
    assert other.export_base64() not in str(caught.value)
    # Without the fragment there is nothing to compare: the server is the judge.
    parse_presigned_url(parsed.url).check_key(other)


def test_a_url_is_used_only_for_its_method() -> None:
    parsed = parse_presigned_url(_presigned(SSECustomerKey.generate(), "GET"))
    parsed.check_method("GET")
    with pytest.raises(UsageError, match="presigned for GET, not PUT"):
        parsed.check_method("PUT")


def test_http_is_refused_before_anything_is_sent() -> None:
    text = _presigned(SSECustomerKey.generate(), "GET").replace("https://", "http://")
    with pytest.raises(InsecureEndpointError, match="refusing to send an SSE-C key") as caught:
        parse_presigned_url(text)
    assert caught.value.exit_code == 2
    assert "X-Amz-Signature" not in str(caught.value)


@pytest.mark.parametrize(
    ("transform", "message"),
    [
        (lambda u: u.split("?")[0], "not a SigV4 presigned URL"),
        (lambda u: u.split("&X-Amz-Signature")[0], "X-Amz-Signature"),
        (lambda u: "ftp://" + u.removeprefix("https://"), "is not an https:// URL"),
    ],
)
def test_what_is_not_a_presigned_url_is_refused(transform: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_presigned_url(transform(_presigned(SSECustomerKey.generate(), "GET")))


def test_a_url_not_signed_for_sse_c_is_refused() -> None:
    url = _client().generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k"})
    with pytest.raises(UsageError, match="not presigned for SSE-C"):
        parse_presigned_url(url)


def test_the_headers_file_is_new_and_0600(tmp_path: Path) -> None:
    key = SSECustomerKey.generate()
    headers = parse_presigned_url(_presigned(key, "GET")).request_headers(key)
    text = presign.curl_headers(headers)
    assert text.count("\n") == len(headers)
    assert f"x-amz-server-side-encryption-customer-key: {key.export_base64()}\n" in text
    path = tmp_path / "h"
    presign.write_headers_file(path, text)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_text() == text
    with pytest.raises(UsageError, match="refusing to overwrite"):
        presign.write_headers_file(path, text)


def test_a_download_is_checked_against_the_crc32c_its_upload_sealed() -> None:
    """Where the server keeps no checksum (Ceph RGW), `get --url` checks the bytes against the
    CRC32C the tool's upload sealed for this bucket and key (path-style or virtual-host URL);
    a seal for another object, or under another key, is not trusted."""
    from types import SimpleNamespace

    from ssec_transfer.core.crc import digest_text
    from ssec_transfer.keys.seal import METADATA_NAME, SourceFacts, seal
    from ssec_transfer.share.presign import parse_presigned_url
    from ssec_transfer.share.url_transfer import _expected_crc

    key = SSECustomerKey.generate()
    sealed = seal(SourceFacts(size=3, mtime_ns=None, crc32c=1234), key, "bkt", "d/a b+c.nc")

    def answer(value: str, **more: str) -> Any:
        return SimpleNamespace(headers={f"x-amz-meta-{METADATA_NAME}": value, **more})

    url = parse_presigned_url(_presigned(key, "GET"))
    assert _expected_crc(answer(sealed), url, key) == digest_text(1234)
    stored = {"x-amz-checksum-crc32c": "AAAAAQ=="}  # the server's own checksum comes first
    assert _expected_crc(answer(sealed, **stored), url, key) == "crc32c:AAAAAQ=="
    assert _expected_crc(answer(sealed), url, SSECustomerKey.generate()) is None
    other = seal(SourceFacts(size=3, mtime_ns=None, crc32c=1234), key, "bkt", "elsewhere")
    assert _expected_crc(answer(other), url, key) is None
