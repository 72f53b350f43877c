"""The bucket CORS rule that lets the upload page read the server's answer to its POST.

A page opened from a file sends `Origin: null`. Measured (SeaweedFS 4.48, Ceph RGW 16.2.15):
SeaweedFS answers every origin out of the box, so the page works with no rule; Ceph RGW sends
no CORS headers without a bucket rule, so the browser hides its answer (the object is stored
all the same, and the page cannot say so); with a rule allowing `null` (or `*`) for POST, both
answer with `Access-Control-Allow-Origin` and the page reads 201s and refusals alike.
`grant --cors` installs the rule with the granter's credentials; the rules a bucket already
has are kept, since PutBucketCors replaces the whole configuration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ssec_transfer.core.errors import ErrorContext

# The origin browsers send for a page opened as file://.
FILE_ORIGIN = "null"
RULE_ID = "ssec-transfer-upload-page"


def upload_page_rule() -> dict[str, Any]:
    """One rule: pages opened from a file may POST and read the answer (and its ETag). It
    grants nothing by itself: every POST still needs the grant's signed policy."""
    return {
        "ID": RULE_ID,
        "AllowedOrigins": [FILE_ORIGIN],
        "AllowedMethods": ["POST"],
        "AllowedHeaders": ["*"],
        "ExposeHeaders": ["ETag"],
        "MaxAgeSeconds": 600,
    }


def allows_upload_page(rule: Mapping[str, Any]) -> bool:
    """True when `rule` already lets a file:// page POST and read the answer."""
    origins = rule.get("AllowedOrigins") or []
    methods = [m.upper() for m in rule.get("AllowedMethods") or []]
    return ("POST" in methods) and any(o in (FILE_ORIGIN, "*") for o in origins)


def merged_rules(existing: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
    """The bucket's rules plus ours, or None when a rule already covers the page (nothing
    to change). Keeps every existing rule as it is."""
    if any(allows_upload_page(rule) for rule in existing):
        return None
    return [dict(rule) for rule in existing] + [upload_page_rule()]


@dataclass(frozen=True)
class CorsChange:
    """What `allow_upload_page` did, for the grant command's message."""

    bucket: str
    added: bool  # False: a rule already allowed the page

    def describe(self) -> str:
        if self.added:
            return (
                f"added a CORS rule to bucket {self.bucket} so the upload page, opened from a "
                "file (Origin null), can read the server's answers"
            )
        return f"bucket {self.bucket} already lets the upload page read the server's answers"


async def allow_upload_page(client: Any, bucket: str) -> CorsChange:
    """Make sure `bucket` has a CORS rule for the upload page (GetBucketCors, then
    PutBucketCors with the existing rules kept). Needs the bucket owner's credentials."""
    from ssec_transfer.s3.errors import error_code, translated

    existing: list[dict[str, Any]] = []
    with translated(ErrorContext(operation="GetBucketCors", bucket=bucket), key_sent=False):
        try:
            answer = await client.get_bucket_cors(Bucket=bucket)
            existing = list(answer.get("CORSRules", []))
        except Exception as exc:
            # No configuration yet: 404 NoSuchCORSConfiguration on both servers.
            if error_code(exc) != "NoSuchCORSConfiguration":
                raise
    rules = merged_rules(existing)
    if rules is None:
        return CorsChange(bucket, added=False)
    with translated(ErrorContext(operation="PutBucketCors", bucket=bucket), key_sent=False):
        await client.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
    return CorsChange(bucket, added=True)


def page_can_read_answers(
    endpoint_url: str, bucket: str, *, ca_bundle: str | None = None, timeout: float = 10.0
) -> bool:
    """Ask the server, as a browser would before a POST from a file:// page, whether the page
    may read the answer (a CORS preflight: OPTIONS with `Origin: null`). No credentials and
    no key are sent. False on Ceph RGW without a bucket rule (403, no CORS headers)."""
    import http.client
    import ssl
    from urllib.parse import quote, urlsplit

    parts = urlsplit(endpoint_url)
    if parts.scheme != "https" or not parts.hostname:
        return False
    context = ssl.create_default_context(cafile=ca_bundle)
    conn = http.client.HTTPSConnection(
        parts.hostname, parts.port or 443, context=context, timeout=timeout
    )
    path = parts.path.rstrip("/") + "/" + quote(bucket)
    try:
        conn.request(
            "OPTIONS",
            path,
            headers={"Origin": FILE_ORIGIN, "Access-Control-Request-Method": "POST"},
        )
        answer = conn.getresponse()
        answer.read()
    except OSError:
        return False
    finally:
        conn.close()
    allowed = answer.getheader("Access-Control-Allow-Origin", "")
    return answer.status < 300 and allowed.strip() in (FILE_ORIGIN, "*")
