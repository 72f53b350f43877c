"""Presigned URLs for SSE-C objects: what the URL must sign, what it carries, and the checks a
holder of the URL makes before any byte (or the key) leaves the machine.

A presigned URL cannot carry the key: SSE-C still needs its three headers on the request, and
the URL's SigV4 signature covers them (`X-Amz-SignedHeaders`). SeaweedFS 4.48 refuses any
`x-amz-*` header sent with a presigned URL that the URL does not sign (SignatureDoesNotMatch),
the key header included, so the key header is signed (`SIGN_KEY_HEADER`, as botocore and the
AWS SDKs do): the signature is then a function of the key, which gives nothing away (HMAC over a
SHA-256, with a 256-bit key). Ceph RGW 16 accepts both (it checks only signed headers), so
signing the key is the one choice that works on both (`test_sharing_differences.py`).

What the holder needs to check locally rides in the URL's fragment (`#ssec-method=GET&
ssec-fingerprint=...`): browsers, curl and aiohttp never send a fragment, so no server can
refuse it, yet it travels wherever the URL is pasted. A fingerprint in a signed query
parameter was accepted by SeaweedFS too, but an unknown parameter is one more thing each
server may judge differently; the fragment is judged by none. Changing it only changes the
local check: the server still verifies the signed key MD5.

No function here does I/O except `write_headers_file`; none returns the key in anything but
the header map of the request that sends it.
"""

from __future__ import annotations

import calendar
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from ssec_transfer.core.errors import InsecureEndpointError, UsageError, WrongKeyError
from ssec_transfer.keys.customer import ALGORITHM, SSECustomerKey
from ssec_transfer.s3.sse import sse_params

Method = Literal["GET", "PUT"]

# SigV4 presigned URLs live at most 7 days (AWS; SeaweedFS answers 400 beyond it).
MAX_EXPIRES = 7 * 24 * 3600
# Sign the key header itself (see the module docstring): SeaweedFS requires it.
SIGN_KEY_HEADER = True
# A GET URL also signs `x-amz-checksum-mode: ENABLED`, so the server returns the stored
# checksum (where it keeps one) and `get --url` verifies the bytes against it.
SIGN_CHECKSUM_MODE = True

ALGORITHM_HEADER = "x-amz-server-side-encryption-customer-algorithm"
KEY_HEADER = "x-amz-server-side-encryption-customer-key"
MD5_HEADER = "x-amz-server-side-encryption-customer-key-md5"
CHECKSUM_MODE_HEADER = "x-amz-checksum-mode"
# The header names as the headers file and the requests spell them.
_SPELLING = {
    ALGORITHM_HEADER: "x-amz-server-side-encryption-customer-algorithm",
    KEY_HEADER: "x-amz-server-side-encryption-customer-key",
    MD5_HEADER: "x-amz-server-side-encryption-customer-key-MD5",
    CHECKSUM_MODE_HEADER: "x-amz-checksum-mode",
}
FRAGMENT_METHOD = "ssec-method"
FRAGMENT_FINGERPRINT = "ssec-fingerprint"
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_NEW_URL = "ask whoever gave you the URL for a new one (`ssec-transfer presign`)"


def parse_expires(text: str) -> int:
    """`--expires`: seconds, or a number with s, m, h or d (90s, 30m, 1h, 7d), at most 7 days."""
    match = _DURATION.match(text.lower())
    if match is None:
        raise UsageError(
            f"--expires {text!r} is not a duration", hint="write e.g. 30m, 1h, 12h or 7d"
        )
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 1:
        raise UsageError("--expires must be at least 1s")
    if seconds > MAX_EXPIRES:
        raise UsageError(
            f"--expires {text} is longer than 7 days, the longest a SigV4 presigned URL lives",
            hint="give 7d or less, and make a new URL when it runs out",
        )
    return seconds


def presign_params(
    bucket: str, key: str, sse_key: SSECustomerKey, method: Method
) -> dict[str, str]:
    """botocore's `generate_presigned_url` parameters: the SSE-C headers it signs (the key's
    MD5 always; the key itself when `SIGN_KEY_HEADER`) stay headers, never the URL's query.
    They are `s3.sse`'s, the MD5 given, so botocore takes the key as the base64 it is."""
    params: dict[str, str] = {"Bucket": bucket, "Key": key, **sse_params(sse_key)}
    if not SIGN_KEY_HEADER:
        del params["SSECustomerKey"]
    if method == "GET" and SIGN_CHECKSUM_MODE:
        params["ChecksumMode"] = "ENABLED"
    return params


def with_fragment(url: str, method: Method, fingerprint: str) -> str:
    """The URL as handed out: the signed URL and, in its fragment, what local checks need."""
    return f"{url}#" + urlencode(
        {FRAGMENT_METHOD: method, FRAGMENT_FINGERPRINT: fingerprint}, quote_via=quote
    )


def _now() -> float:
    """The clock the expiry is checked against (a function, so tests can move it)."""
    return time.time()


@dataclass(frozen=True)
class PresignedUrl:
    """A SigV4 presigned URL made for SSE-C, as parsed before it is used."""

    url: str  # what is requested: the URL without its fragment
    shown: str  # scheme://host/path: for messages (the query is a bearer credential)
    signed_headers: tuple[str, ...]
    signed_at: int  # X-Amz-Date, seconds since the epoch
    expires_in: int  # X-Amz-Expires
    method: Method | None  # from the fragment, when the URL came from `presign`
    fingerprint: str | None  # likewise

    @property
    def expires_at(self) -> int:
        return self.signed_at + self.expires_in

    @property
    def object_name(self) -> str:
        """The last component of the path: a download's file name in a folder DEST."""
        return unquote(urlsplit(self.url).path.rstrip("/").rsplit("/", 1)[-1])

    def check_method(self, method: Method) -> None:
        if self.method is not None and self.method != method:
            verb = {"GET": "get --url (download)", "PUT": "put --url (upload)"}[self.method]
            raise UsageError(
                f"{self.shown}: this URL was presigned for {self.method}, not {method}; the "
                "server would refuse its signature",
                hint=f"use it with {verb}, or ask for a URL made "
                + ("with `presign --put`" if method == "PUT" else "without --put"),
            )

    def check_not_expired(self) -> None:
        """Refuse an expired URL before the key is sent (exit 2)."""
        now = _now()
        if now >= self.expires_at:
            ago = int(now - self.expires_at)
            raise UsageError(
                f"{self.shown}: the presigned URL expired at {_utc(self.expires_at)} "
                f"({_span(ago)} ago); nothing was sent",
                hint=_NEW_URL,
            )

    def check_key(self, sse_key: SSECustomerKey) -> None:
        """Refuse a key other than the one the URL was made for (exit 3), before sending."""
        if self.fingerprint is not None and self.fingerprint != sse_key.fingerprint:
            raise WrongKeyError(
                f"{self.shown}: the URL was made for the key with fingerprint "
                f"{self.fingerprint}, but {sse_key.source} has fingerprint "
                f"{sse_key.fingerprint}; nothing was sent",
                hint="pass the key the URL was made for with --key-file or --key-env",
            )

    def request_headers(self, sse_key: SSECustomerKey) -> dict[str, str]:
        """Every header the URL signs, with its value: the request must send exactly these
        (SeaweedFS refuses unsigned x-amz-* headers beside them)."""
        values = {
            ALGORITHM_HEADER: ALGORITHM,
            KEY_HEADER: sse_key.export_base64(),
            MD5_HEADER: sse_key.fingerprint,
            CHECKSUM_MODE_HEADER: "ENABLED",
        }
        headers: dict[str, str] = {}
        for name in self.signed_headers:
            if name == "host":
                continue
            if name not in values:
                raise UsageError(
                    f"{self.shown}: the URL signs the header {name}, which this tool cannot supply",
                    hint="use a URL made by `ssec-transfer presign`",
                )
            headers[_SPELLING[name]] = values[name]
        return headers


def parse_presigned_url(text: str) -> PresignedUrl:
    """Parse and refuse what cannot work, before any request: not HTTPS (the key would cross
    the network in clear), not a SigV4 presigned URL, or one that does not sign SSE-C."""
    url, _, fragment = text.strip().partition("#")
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.netloc}{parts.path}"
    if parts.scheme.lower() == "http":
        raise InsecureEndpointError(
            f"refusing to send an SSE-C key to {shown}: the URL is plain http://, and a key "
            "that crossed the network in clear must be considered leaked; nothing was sent",
            hint="ask for a URL on the server's https:// endpoint",
        )
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise UsageError(
            f"{text[:60]!r} is not an https:// URL",
            hint="pass the whole URL `ssec-transfer presign` printed, in single quotes",
        )
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    needed = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
              "X-Amz-SignedHeaders", "X-Amz-Signature")  # fmt: skip
    missing = [name for name in needed if name not in query]
    if missing:
        raise UsageError(
            f"{shown}: not a SigV4 presigned URL (no {', '.join(missing)} in its query)",
            hint="pass the whole URL in single quotes (an unquoted & ends it in the shell)",
        )
    try:
        signed_at = calendar.timegm(time.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
        expires_in = int(query["X-Amz-Expires"])
    except ValueError:
        raise UsageError(
            f"{shown}: its X-Amz-Date or X-Amz-Expires cannot be read", hint=_NEW_URL
        ) from None
    signed = tuple(query["X-Amz-SignedHeaders"].lower().split(";"))
    if ALGORITHM_HEADER not in signed:
        raise UsageError(
            f"{shown}: the URL was not presigned for SSE-C (its signature does not cover the "
            "SSE-C headers, so the server would refuse them)",
            hint="make one with `ssec-transfer presign s3://BUCKET/KEY --key-file KEY`",
        )
    facts = dict(parse_qsl(fragment))
    method = facts.get(FRAGMENT_METHOD, "").upper()
    return PresignedUrl(
        url=url,
        shown=shown,
        signed_headers=signed,
        signed_at=signed_at,
        expires_in=expires_in,
        method=method if method in ("GET", "PUT") else None,  # type: ignore[arg-type]
        fingerprint=facts.get(FRAGMENT_FINGERPRINT) or None,
    )


def curl_headers(headers: Mapping[str, str]) -> str:
    """The headers as `curl -H @FILE` reads them: one `Name: value` a line."""
    return "".join(f"{name}: {value}\n" for name, value in headers.items())


def write_headers_file(path: str | os.PathLike[str], text: str) -> None:
    """Write a new file, mode 0600 (it holds the key); never replace an existing one, whose
    mode and readers this tool cannot vouch for."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise UsageError(
            f"--curl-headers {os.fspath(path)} exists; refusing to overwrite it (it would hold "
            "the key, and an existing file may be readable by others)",
            hint="remove it first, or give a new file name",
        ) from None
    except OSError as exc:
        raise UsageError(
            f"cannot create --curl-headers {os.fspath(path)}: {exc.strerror}"
        ) from None
    try:
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _span(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def expiry_text(epoch: float) -> str:
    """An expiry as the output shows it (UTC, ISO 8601)."""
    return _utc(epoch)
