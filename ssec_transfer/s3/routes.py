"""Where a bucket's objects are addressed, learned from the requests aiobotocore sends.

botocore decides per bucket between path style (`https://host/bucket/key`) and virtual hosts
(`https://bucket.host/key`), follows region redirects, and signs for the region its endpoint
rules give. Rather than re-implement those rules, the data plane watches the client's own
requests (a `before-send` hook): a SigV4-signed HTTPS request that names a bucket tells the
bucket's base URL and the region and service it is signed for. A bucket the client has not
yet spoken to (or has not spoken to over HTTPS with SigV4) has no route, and its data requests
go through aiobotocore until it has one.

Keys are quoted as botocore quotes them (`quote(key, safe="/~")`): S3 signs the path exactly
as sent, so a key quoted any other way is refused with SignatureDoesNotMatch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

# What the hooks leave in botocore's request context: the request's bucket and key.
_OBJECT = "ssec_transfer.object"
_SCOPE = re.compile(r"^AWS4-HMAC-SHA256 Credential=[^/,]+/\d{8}/([^/,]+)/([^/,]+)/aws4_request,")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def quote_key(key: str) -> str:
    """An object key as botocore puts it in the URL path (UnicodeEncodeError if it cannot)."""
    return quote(key.encode("utf-8"), safe="/~")


def signing_host(url: str) -> str:
    """The Host botocore signs for `url`: lowercase, without userinfo or a default port."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


@dataclass(frozen=True, slots=True)
class Route:
    """How one bucket's objects are reached: base URL (with the bucket in the host or the
    path), and the region and service requests are signed for."""

    base: str  # https://HOST[:PORT][/PATH], no trailing slash
    host: str  # as signed
    path: str  # the base URL's path ("" or "/bucket" ...)
    region: str
    service: str

    @classmethod
    def of(cls, base: str, region: str, service: str) -> Route:
        return cls(base, signing_host(base), urlsplit(base).path, region, service)

    def locate(self, key: str, query: str) -> tuple[str, str]:
        """The URL of `key` with `query`, and its path (as signed)."""
        quoted = quote_key(key)
        url = f"{self.base}/{quoted}"
        return (f"{url}?{query}" if query else url), f"{self.path}/{quoted}"


def route_from_request(url: str, authorization: str, key: str | None) -> Route | None:
    """The route a request botocore signed reveals, or None if it reveals none we can use: not
    HTTPS, not SigV4 for S3 itself (S3 Express signs with session credentials of its own), or a
    URL that does not end with the key as botocore quotes it."""
    match = _SCOPE.match(authorization)
    if match is None or url[:8].lower() != "https://":
        return None
    region, service = match.groups()
    if service != "s3":
        return None
    base = url.split("?", 1)[0]
    if key:
        try:
            tail = "/" + quote_key(key)
        except UnicodeEncodeError:
            return None
        if not base.endswith(tail):
            return None
        base = base[: -len(tail)]
    else:
        base = base.rstrip("/")
    if len(base) <= len("https://"):
        return None
    return Route.of(base, region, service)


class Routes:
    """The routes of the buckets one client has addressed (see the module docstring)."""

    def __init__(self) -> None:
        self._known: dict[str, Route] = {}

    def install(self, events: Any) -> None:
        events.register("before-parameter-build.s3", self._note)
        events.register("before-send.s3", self._learn)

    def get(self, bucket: str) -> Route | None:
        return self._known.get(bucket)

    def forget(self, bucket: str) -> None:
        """The bucket answered from elsewhere (a redirect): learn it again from aiobotocore."""
        self._known.pop(bucket, None)

    def _note(self, params: Any, context: dict[str, Any], **_: Any) -> None:
        if isinstance(params, dict) and isinstance(params.get("Bucket"), str):
            key = params.get("Key")
            context[_OBJECT] = (params["Bucket"], key if isinstance(key, str) else None)

    def _learn(self, request: Any, **_: Any) -> None:
        context = getattr(request, "context", None)
        noted = context.get(_OBJECT) if isinstance(context, dict) else None
        if noted is None:
            return
        bucket, key = noted
        authorization = request.headers.get("Authorization")
        if isinstance(authorization, bytes):
            authorization = authorization.decode("ascii", "replace")
        if not isinstance(authorization, str):
            return
        route = route_from_request(str(request.url), authorization, key)
        if route is not None and self._known.get(bucket) != route:
            self._known[bucket] = route
