"""SigV4 for S3 data requests, byte-identical to botocore's `S3SigV4Auth`, with the day's
signing key cached.

botocore derives the signing key (four HMACs) and rebuilds its header maps on every request;
here the key is derived once per credentials, day, region and service, and a request costs one
SHA-256 of its canonical form and one HMAC. Payloads are never hashed: data requests go over
HTTPS with `x-amz-content-sha256: UNSIGNED-PAYLOAD`, as the client is configured
(`payload_signing_enabled=False`); Ceph checks that header, so it must be exactly this.
`tests/unit/s3/test_signing.py` proves the equivalence with botocore over generated requests.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Protocol

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
ALGORITHM = "AWS4-HMAC-SHA256"
# botocore's SIGNED_HEADERS_BLACKLIST: hop-by-hop and tracing headers that proxies may change.
_UNSIGNED = frozenset(
    {
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)
# Headers the signer sets itself (botocore removes any earlier value, whatever its case).
_OWN = frozenset({"authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"})


class Credentials(Protocol):
    """botocore's frozen credentials (`ReadOnlyCredentials`)."""

    @property
    def access_key(self) -> str: ...
    @property
    def secret_key(self) -> str: ...
    @property
    def token(self) -> str | None: ...


def amz_date(now: float | None = None) -> str:
    """The X-Amz-Date of a request signed at `now` (seconds since the epoch; default: now)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


def canonical_query(query: str) -> str:
    """The query string (already percent-encoded, as in the URL) with its pairs sorted."""
    if not query:
        return ""
    pairs = sorted(pair.partition("=")[::2] for pair in query.split("&"))
    return "&".join(f"{key}={value}" for key, value in pairs)


class SigV4Signer:
    """Signs requests for one region and service. Holds the signing key of the current day
    (derived from the secret, never the secret itself in anything it prints)."""

    __slots__ = ("_cache", "_region", "_service")

    def __init__(self, region: str, service: str = "s3") -> None:
        self._region = region
        self._service = service
        self._cache: tuple[str, str, str, bytes] | None = None  # access key, day, secret, key

    def __repr__(self) -> str:
        return f"SigV4Signer(region={self._region!r}, service={self._service!r})"

    def signing_key(self, credentials: Credentials, day: str) -> bytes:
        """The day's signing key, for what is signed outside a request: a POST policy
        (`share.grant`)."""
        return self._signing_key(credentials, day)

    def _signing_key(self, credentials: Credentials, day: str) -> bytes:
        cached = self._cache
        secret = credentials.secret_key
        if cached is not None and cached[:3] == (credentials.access_key, day, secret):
            return cached[3]
        key = _hmac(f"AWS4{secret}".encode(), day)
        for part in (self._region, self._service, "aws4_request"):
            key = _hmac(key, part)
        self._cache = (credentials.access_key, day, secret, key)
        return key

    def sign(
        self,
        method: str,
        host: str,
        path: str,
        query: str,
        headers: dict[str, str],
        credentials: Credentials,
        date: str,
    ) -> None:
        """Add X-Amz-Date, X-Amz-Content-SHA256, X-Amz-Security-Token (with a session token)
        and Authorization to `headers`, which then hold every header to send that is signed.

        `host` is the Host header as botocore derives it (lowercase, no default port), `path`
        and `query` the URL's, already percent-encoded exactly as they will be sent."""
        for name in [n for n in headers if n.lower() in _OWN]:
            del headers[name]
        headers["X-Amz-Date"] = date
        if credentials.token:
            headers["X-Amz-Security-Token"] = credentials.token
        headers["X-Amz-Content-SHA256"] = UNSIGNED_PAYLOAD
        signed: dict[str, str] = {}
        for name, value in headers.items():
            lowered = name.lower()
            if lowered in _UNSIGNED:
                continue
            value = " ".join(value.split())
            signed[lowered] = f"{signed[lowered]},{value}" if lowered in signed else value
        signed.setdefault("host", host)
        names = sorted(signed)
        canonical = "\n".join(
            (
                method.upper(),
                path,
                canonical_query(query),
                "".join(f"{name}:{signed[name]}\n" for name in names),
                ";".join(names),
                UNSIGNED_PAYLOAD,
            )
        )
        day = date[:8]
        scope = f"{day}/{self._region}/{self._service}/aws4_request"
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        to_sign = f"{ALGORITHM}\n{date}\n{scope}\n{digest}"
        signature = hmac.new(
            self._signing_key(credentials, day), to_sign.encode(), hashlib.sha256
        ).hexdigest()
        headers["Authorization"] = (
            f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        )


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()
