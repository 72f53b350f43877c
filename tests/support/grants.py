"""Grant documents for the page's tests, built by the product's own `share.grant.build_grant`
(what `ssec-transfer grant` writes), with the server's credentials; a negative `expires_in`
makes a grant that has already expired, which the command itself refuses to write."""

from __future__ import annotations

import time
from typing import Any

from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.servers.base import ServerInfo
from ssec_transfer.share.grant import POST_MAX_SIZE, build_grant


class _Credentials:
    def __init__(self, server: ServerInfo) -> None:
        self.access_key = server.access_key
        self.secret_key = server.secret_key
        self.token: str | None = None


def make_grant(
    server: ServerInfo,
    bucket: str,
    prefix: str,
    key: SSECustomerKey,
    *,
    expires_in: int = 3600,
    min_size: int = 0,
    max_size: int = POST_MAX_SIZE,
) -> dict[str, Any]:
    """The grant document for uploads under `prefix` with `key`."""
    now = time.time()
    if expires_in < 0:  # signed in the past, so it is valid in form and expired now
        now, expires_in = now + 2 * expires_in, -expires_in
    return build_grant(
        endpoint_url=server.endpoint_url, bucket=bucket, prefix=prefix,
        fingerprint=key.fingerprint, credentials=_Credentials(server), region=server.region,
        now=now, expires_in=expires_in, min_size=min_size, max_size=max_size,
    )  # fmt: skip
