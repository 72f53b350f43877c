"""Grant documents for tests, built exactly as the grant format says (botocore's presigned POST
with the SSE-C conditions). The one place to swap for `ssec-transfer grant --out/--html` once
that command exists: the browser tests only call `make_grant`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.servers.base import ServerInfo

FIVE_GIB = 5 * 1024**3
SSE_ALGORITHM = "x-amz-server-side-encryption-customer-algorithm"
SSE_KEY_MD5 = "x-amz-server-side-encryption-customer-key-MD5"
SSE_KEY = "x-amz-server-side-encryption-customer-key"


def presign_client(server: ServerInfo) -> Any:
    import botocore.session
    from botocore.config import Config

    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name=server.region,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        verify=str(server.ca_bundle),
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def make_grant(
    server: ServerInfo,
    bucket: str,
    prefix: str,
    key: SSECustomerKey,
    *,
    expires_in: int = 3600,
    min_size: int = 0,
    max_size: int = FIVE_GIB,
) -> dict[str, Any]:
    """The grant document for uploads under `prefix` with `key` (a negative `expires_in`
    makes an already-expired policy)."""
    client = presign_client(server)
    conditions: list[Any] = [
        {"success_action_status": "201"},
        {SSE_ALGORITHM: "AES256"},
        {SSE_KEY_MD5: key.fingerprint},
        # The uploader adds the key itself as a form field; a policy must name every field
        # (SeaweedFS refuses "Extra input fields" otherwise); the MD5 condition pins its value.
        ["starts-with", "$" + SSE_KEY, ""],
        ["content-length-range", min_size, max_size],
    ]
    fields = {
        "success_action_status": "201",
        SSE_ALGORITHM: "AES256",
        SSE_KEY_MD5: key.fingerprint,
    }
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    post = client.generate_presigned_post(
        Bucket=bucket,
        Key=prefix + "${filename}",
        Fields=fields,
        Conditions=conditions,
        ExpiresIn=expires_in,
    )
    got: dict[str, str] = post["fields"]
    order = ["key", "success_action_status", SSE_ALGORITHM, SSE_KEY_MD5, "x-amz-algorithm",
             "x-amz-credential", "x-amz-date", "x-amz-security-token", "policy",
             "x-amz-signature"]  # fmt: skip
    ordered = {name: got[name] for name in order if name in got}
    assert set(ordered) == set(got), f"unexpected presigned POST fields: {sorted(got)}"
    expires = now + dt.timedelta(seconds=expires_in)
    return {
        "type": "ssec-transfer-grant",
        "version": 1,
        "url": f"{server.endpoint_url.rstrip('/')}/{bucket}",
        "bucket": bucket,
        "prefix": prefix,
        "key_fingerprint": key.fingerprint,
        "algorithm": "AES256",
        "expires": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "min_size": min_size,
        "max_size": max_size,
        "fields": ordered,
    }
