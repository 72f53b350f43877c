"""The grant document: a presigned S3 POST policy pinned to one prefix, the SSE-C algorithm,
one key's fingerprint, a size range and an expiry, that lets someone without S3 credentials
upload under that key (`ssec-transfer post`, the browser page).

Pure: building the policy and its SigV4 signature from given credentials and a given time,
and reading a grant file back with every check a sender makes before any byte leaves. The
signature is botocore's `S3SigV4PostAuth` (base64 policy, HMAC-SHA256 with the day's signing
key, `tests/unit/share/test_grant.py` proves them equal), built here rather than through
`generate_presigned_post` so that the conditions and the order of the form fields are exactly
the documented ones and a test can fix the clock. The grant holds no key and no secret: only
the access key id (in `x-amz-credential`), as any presigned request does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ssec_transfer.core.errors import InsecureEndpointError, UsageError
from ssec_transfer.s3.signing import ALGORITHM, Credentials, SigV4Signer

GRANT_TYPE = "ssec-transfer-grant"
GRANT_VERSION = 1
POST_MAX_SIZE = 5 * 1024**3  # S3 refuses a POST body over 5 GiB
MAX_EXPIRES = 7 * 24 * 3600  # SigV4 signatures live at most 7 days on AWS
SSE_ALGORITHM = "AES256"
ALGORITHM_FIELD = "x-amz-server-side-encryption-customer-algorithm"
MD5_FIELD = "x-amz-server-side-encryption-customer-key-MD5"
KEY_FIELD = "x-amz-server-side-encryption-customer-key"  # added by the sender, never stored
FILENAME = "${filename}"

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$", re.IGNORECASE)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_FINGERPRINT = re.compile(r"^[A-Za-z0-9+/]{22}==$")
# What the sender needs in `fields`, besides the optional session token.
_REQUIRED_FIELDS = (
    "key", "success_action_status", ALGORITHM_FIELD, MD5_FIELD, "x-amz-algorithm",
    "x-amz-credential", "x-amz-date", "policy", "x-amz-signature",
)  # fmt: skip
_GRANT_HINT = "ask whoever gave you the grant for a new one (`ssec-transfer grant ...`)"


def parse_expires(text: str) -> int:
    """`--expires`: 30m, 24h, 7d (or seconds: 90s) as a number of seconds, at most 7 days."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(
            f"invalid duration {text!r}: use a number and a unit, such as 30m, 24h or 7d"
        )
    seconds = int(match.group(1)) * _SECONDS[match.group(2).lower()]
    if seconds <= 0:
        raise ValueError(f"{text!r} is no time at all: give a duration such as 30m, 24h or 7d")
    if seconds > MAX_EXPIRES:
        raise ValueError(
            f"{text!r} is longer than 7 days, the longest a SigV4 signature may live on AWS: "
            "give 7d or less, and a new grant when it runs out"
        )
    return seconds


def utc_text(seconds: float) -> str:
    """An instant as the policy and the grant write it: UTC, whole seconds, `Z`."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _parse_utc(text: str) -> float:
    import calendar

    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))


def require_https(endpoint_url: str) -> None:
    """A grant for http:// would have its uploader send the key in clear: refused."""
    if not endpoint_url.lower().startswith("https://"):
        raise InsecureEndpointError(
            f"refusing to grant uploads to {endpoint_url}: the SSE-C key would cross the "
            "network in clear (and must then be considered leaked); no grant was written",
            hint="give the server's https:// endpoint with --endpoint-url",
        )


def policy_conditions(
    bucket: str, prefix: str, fingerprint: str, min_size: int, max_size: int
) -> list[Any]:
    """The conditions every upload through the grant must meet (before the signer's own)."""
    return [
        {"bucket": bucket},
        ["starts-with", "$key", prefix],
        {"success_action_status": "201"},
        {ALGORITHM_FIELD: SSE_ALGORITHM},
        {MD5_FIELD: fingerprint},
        # Every form field needs a condition (SeaweedFS: "Extra input fields"), the key's
        # too; any value passes here, and the server refuses a key that is not the MD5's.
        ["starts-with", f"${KEY_FIELD}", ""],
        ["content-length-range", min_size, max_size],
    ]


def build_grant(
    *,
    endpoint_url: str,
    bucket: str,
    prefix: str,
    fingerprint: str,
    credentials: Credentials,
    region: str,
    now: float,
    expires_in: int,
    min_size: int = 0,
    max_size: int = POST_MAX_SIZE,
) -> dict[str, Any]:
    """The grant document (README "Sharing without credentials"): where to POST, what it
    pins, and the signed form fields in the order to send them. An http:// endpoint is
    refused: whoever uses the grant would send the key in clear."""
    require_https(endpoint_url)
    if not 0 <= min_size <= max_size <= POST_MAX_SIZE:
        raise UsageError(
            f"size range {min_size}..{max_size} bytes is not within 0..{POST_MAX_SIZE} "
            "(5 GiB, the largest object a POST may carry)",
            hint="give --max-size 5GiB or less (and --min-size no larger than it)",
        )
    date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    scope = f"{date[:8]}/{region}/s3/aws4_request"
    credential = f"{credentials.access_key}/{scope}"
    expires = utc_text(now + expires_in)
    conditions = policy_conditions(bucket, prefix, fingerprint, min_size, max_size)
    fields: dict[str, str] = {
        "key": prefix + FILENAME,
        "success_action_status": "201",
        ALGORITHM_FIELD: SSE_ALGORITHM,
        MD5_FIELD: fingerprint,
        "x-amz-algorithm": ALGORITHM,
        "x-amz-credential": credential,
        "x-amz-date": date,
    }
    conditions += [
        {"x-amz-algorithm": ALGORITHM},
        {"x-amz-credential": credential},
        {"x-amz-date": date},
    ]
    if credentials.token:
        fields["x-amz-security-token"] = credentials.token
        conditions.append({"x-amz-security-token": credentials.token})
    policy = {"expiration": expires, "conditions": conditions}
    encoded = base64.b64encode(json.dumps(policy).encode()).decode("ascii")
    signing_key = SigV4Signer(region).signing_key(credentials, date[:8])
    fields["policy"] = encoded
    fields["x-amz-signature"] = hmac.new(signing_key, encoded.encode(), hashlib.sha256).hexdigest()
    return {
        "type": GRANT_TYPE,
        "version": GRANT_VERSION,
        "url": f"{endpoint_url.rstrip('/')}/{bucket}",
        "bucket": bucket,
        "prefix": prefix,
        "key_fingerprint": fingerprint,
        "algorithm": SSE_ALGORITHM,
        "expires": expires,
        "min_size": min_size,
        "max_size": max_size,
        "fields": fields,
    }


@dataclass(frozen=True)
class Grant:
    """A grant file read back and checked: what a sender may rely on."""

    source: str  # where it was read from, for messages
    url: str
    bucket: str
    prefix: str
    key_fingerprint: str
    expires: str
    expires_at: float
    min_size: int
    max_size: int
    fields: dict[str, str]  # in the order to send them

    def object_key(self, name: str) -> str:
        """The object a file named `name` (relative to the prefix) is stored as."""
        return self.prefix + name


def _bad(source: str, what: str, hint: str = _GRANT_HINT) -> UsageError:
    return UsageError(f"grant {source}: {what}; nothing was sent", hint=hint)


def parse_grant(data: Any, source: str) -> Grant:
    """A grant document (already JSON-decoded) checked for everything that can be known
    without the clock: its type and version, https, the fields, and that the fingerprint,
    bucket, prefix and size range it states are the ones its signed policy pins."""
    if not isinstance(data, Mapping) or data.get("type") != GRANT_TYPE:
        raise _bad(source, f"this is not an ssec-transfer grant (no \"type\": \"{GRANT_TYPE}\")",
                   "give the file `ssec-transfer grant ... --out FILE` wrote")  # fmt: skip
    if data.get("version") != GRANT_VERSION:
        raise _bad(source, f"grant version {data.get('version')!r} is not one this ssec-transfer "
                   f"reads (it reads version {GRANT_VERSION})",
                   "upgrade ssec-transfer, or ask for a grant of version 1")  # fmt: skip
    fields = data.get("fields")
    if not isinstance(fields, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in fields.items()
    ):
        raise _bad(source, '"fields" is not an object of strings')
    missing = [name for name in _REQUIRED_FIELDS if name not in fields]
    if missing:
        raise _bad(source, f"form fields missing: {', '.join(missing)}")
    if KEY_FIELD.lower() in (name.lower() for name in fields):
        raise _bad(source, "it holds an SSE-C key field: a grant must never carry the key",
                   "treat that key as exposed; make a new key and a new grant")  # fmt: skip
    url, bucket, prefix = data.get("url"), data.get("bucket"), data.get("prefix")
    fingerprint, expires = data.get("key_fingerprint"), data.get("expires")
    min_size, max_size = data.get("min_size"), data.get("max_size")
    if not isinstance(url, str) or not isinstance(bucket, str) or not isinstance(prefix, str):
        raise _bad(source, '"url", "bucket" and "prefix" must be strings')
    if not url.lower().startswith("https://"):
        raise _bad(
            source,
            f"it points to {url.split('?', 1)[0]}, not an https:// URL: the SSE-C key would "
            "cross the network in clear",
            "ask for a grant made with the server's https:// endpoint",
        )
    if not isinstance(fingerprint, str) or not _FINGERPRINT.match(fingerprint):
        raise _bad(source, '"key_fingerprint" is not the base64 MD5 of a key')
    if not isinstance(min_size, int) or not isinstance(max_size, int):
        raise _bad(source, '"min_size" and "max_size" must be whole numbers of bytes')
    try:
        expires_at = _parse_utc(expires) if isinstance(expires, str) else None
    except ValueError:
        expires_at = None
    if expires_at is None:
        raise _bad(source, '"expires" is not a UTC time such as 2026-12-01T17:00:00Z')
    try:
        policy = json.loads(base64.b64decode(fields["policy"], validate=True))
        conditions = policy["conditions"]
    except (ValueError, TypeError, KeyError):
        raise _bad(source, 'its "policy" field is not a base64 JSON POST policy') from None
    pinned = policy_conditions(bucket, prefix, fingerprint, min_size, max_size)
    if (
        fields[MD5_FIELD] != fingerprint
        or fields[ALGORITHM_FIELD] != SSE_ALGORITHM
        or any(condition not in conditions for condition in pinned)
        or policy.get("expiration") != expires
    ):
        raise _bad(
            source,
            "what it states (bucket, prefix, key fingerprint, size range or expiry) is not what "
            "its signed policy pins: the file was edited",
        )
    return Grant(
        source=source, url=url, bucket=bucket, prefix=prefix, key_fingerprint=fingerprint,
        expires=expires, expires_at=expires_at, min_size=min_size, max_size=max_size,
        fields=dict(fields),
    )  # fmt: skip


def load_grant(path: str) -> Grant:
    """Read and check a grant file (`parse_grant`); every problem is a UsageError (exit 2)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise _bad(path, "no such file", "give the path of the grant file you were sent") from None
    except OSError as exc:
        raise _bad(
            path, f"cannot be read ({exc.strerror})", "check its path and permissions"
        ) from None
    except ValueError as exc:
        raise _bad(path, f"not valid JSON ({exc})", "give the file as it was sent") from None
    return parse_grant(data, path)


def check_not_expired(grant: Grant, now: float) -> None:
    """An expired grant is refused before any byte is sent (the server would refuse it too)."""
    if now >= grant.expires_at:
        raise _bad(grant.source, f"it expired at {grant.expires}",
                   "ask whoever gave it to you for a new grant")  # fmt: skip


def check_key(grant: Grant, fingerprint: str) -> None:
    """The key must be the one the grant pins: else nothing is sent (exit 3)."""
    from ssec_transfer.core.errors import WrongKeyError

    if fingerprint != grant.key_fingerprint:
        raise WrongKeyError(
            f"grant {grant.source} expects the key with fingerprint {grant.key_fingerprint}, "
            f"but the key given has fingerprint {fingerprint}; nothing was sent",
            hint="give the key file the grant was made for (`ssec-transfer keyring list` shows "
            "fingerprints)",
        )


def check_name(grant: Grant, name: str) -> str:
    """The object key for `name` (relative to the grant's prefix), refused when it could
    leave the prefix or is no name at all."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise UsageError(
            f"{name!r} is not a name under the grant's prefix {grant.prefix!r}; nothing was sent",
            hint="give --name as a relative path without empty, '.' or '..' parts, e.g. "
            "--name 2026/obs.nc",
        )
    key = grant.object_key(name)
    if not key.startswith(grant.prefix) or len(key.encode()) > 1024:
        raise UsageError(f"object key {key!r} does not fit the grant; nothing was sent",
                         hint="choose a shorter name")  # fmt: skip
    return key


def check_size(grant: Grant, path: str, size: int) -> None:
    """The file must fit the grant's size range and a POST's 5 GiB."""
    from ssec_transfer.core.units import human_size

    if size > POST_MAX_SIZE:
        raise UsageError(
            f"{path} is {human_size(size)}, more than the 5 GiB a POST upload may carry; "
            "nothing was sent",
            hint="ask for S3 credentials and use `ssec-transfer put` (multipart), or split "
            "the file",
        )
    if not grant.min_size <= size <= grant.max_size:
        raise UsageError(
            f"{path} is {size} bytes, outside the grant's size range {grant.min_size}.."
            f"{grant.max_size} bytes; nothing was sent",
            hint="ask for a grant with a larger --max-size (at most 5GiB)",
        )
