"""The README's server-differences rows for presigned URLs, measured on each server: what the
tool's choices rest on (`presign` signs the key header; an expired URL's refusal may name no
reason). The POST rows are the page's and `post`'s own tests (CORS, refusals)."""

from __future__ import annotations

import base64
import hashlib
import os
import ssl
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from ssec_transfer.servers.base import ServerInfo

pytestmark = pytest.mark.integration

ALGORITHM = "x-amz-server-side-encryption-customer-algorithm"
KEY = "x-amz-server-side-encryption-customer-key"
KEY_MD5 = "x-amz-server-side-encryption-customer-key-MD5"

# row -> what the server answers, per server (AWS, for reference, from its documentation).
PRESIGN_DIFFERENCES: dict[str, dict[str, str]] = {
    "unsigned_key_header": {"seaweedfs": "403 SignatureDoesNotMatch", "ceph": "200",
                            "aws": "200"},
    "expired": {"seaweedfs": "403 AccessDenied", "ceph": "403 AccessDenied",
                "aws": "403 AccessDenied"},
    # The refusal's words, which `get --url` reads to say "expired" outright (else it names
    # every cause); Ceph gives none.
    "expired_message": {"seaweedfs": "Request has expired", "ceph": "",
                        "aws": "Request has expired"},
    "bad_content_md5": {"seaweedfs": "400 BadDigest", "ceph": "400 BadDigest",
                        "aws": "400 BadDigest"},
}  # fmt: skip


def _headers(raw: bytes) -> dict[str, str]:
    return {
        ALGORITHM: "AES256",
        KEY: base64.b64encode(raw).decode(),
        KEY_MD5: base64.b64encode(hashlib.md5(raw).digest()).decode(),
    }


def _presign(
    server: ServerInfo, method: str, url: str, signed: dict[str, str], expires: int
) -> str:
    from botocore.auth import S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url, headers=dict(signed))
    credentials = Credentials(server.access_key, server.secret_key)
    S3SigV4QueryAuth(credentials, "s3", server.region, expires=expires).add_auth(request)
    return str(request.url)


def _send(server: ServerInfo, method: str, url: str, headers: dict[str, str],
          body: bytes | None = None) -> tuple[str, str]:  # fmt: skip
    """('STATUS' or 'STATUS Code', the error's Message or '')."""
    import xml.etree.ElementTree as ET

    context = ssl.create_default_context(cafile=str(server.ca_bundle))
    # Only https URLs of the test server are opened; its answers are trusted test fixtures.
    request = urllib.request.Request(url, method=method, headers=headers, data=body)  # noqa: S310
    try:
        with urllib.request.urlopen(request, context=context) as answer:  # noqa: S310
            return str(answer.status), ""
    except urllib.error.HTTPError as refusal:
        root = ET.fromstring(refusal.read())  # noqa: S314
        return f"{refusal.code} {root.findtext('Code')}", root.findtext("Message") or ""


def test_presigned_url_answers(s3_server: ServerInfo, bucket: str, admin: Any) -> None:
    raw = os.urandom(32)
    sse = _headers(raw)
    admin.put_object(Bucket=bucket, Key="o", Body=b"hello", SSECustomerAlgorithm="AES256",
                     SSECustomerKey=sse[KEY], SSECustomerKeyMD5=sse[KEY_MD5])  # fmt: skip
    url = f"{s3_server.endpoint_url.rstrip('/')}/{bucket}/o"
    found: dict[str, str] = {}
    pinned = {ALGORITHM: sse[ALGORITHM], KEY_MD5: sse[KEY_MD5]}
    unpinned_key = _presign(s3_server, "GET", url, pinned, 600)
    found["unsigned_key_header"] = _send(s3_server, "GET", unpinned_key, sse)[0]
    short = _presign(s3_server, "GET", url, sse, 1)
    time.sleep(2.5)
    found["expired"], found["expired_message"] = _send(s3_server, "GET", short, sse)
    put_url = _presign(s3_server, "PUT", url.replace("/o", "/p"), sse, 600)
    wrong_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    bad_md5 = {**sse, "Content-MD5": wrong_md5}
    found["bad_content_md5"] = _send(s3_server, "PUT", put_url, bad_md5, b"x" * 100)[0]
    for row, expected in PRESIGN_DIFFERENCES.items():
        assert found[row] == expected[s3_server.name], (row, found[row])
    # Nothing was stored by the refused PUT.
    assert [o["Key"] for o in admin.list_objects_v2(Bucket=bucket)["Contents"]] == ["o"]
