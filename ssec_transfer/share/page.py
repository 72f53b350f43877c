"""The browser upload page: one self-contained HTML file that embeds a grant (never a key).

The page checks the chosen key against the grant's fingerprint with an inline MD5 (WebCrypto
has none, and Ceph answers a wrong key with an empty InvalidArgument), checks the expiry and
the size range, and posts the form straight to the grant's HTTPS address. Its template is the
package file `upload_page.html`; this module only fills it in, safely.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from importlib import resources
from urllib.parse import urlsplit

from ssec_transfer.core.errors import UsageError

TEMPLATE = "upload_page.html"
GRANT_MARK = "__GRANT_JSON__"
CONNECT_MARK = "__CONNECT_SRC__"
_HOST = re.compile(r"[A-Za-z0-9.-]+|[0-9A-Fa-f:.]+")  # a DNS name, IPv4 or IPv6 literal
REQUIRED = ("url", "bucket", "prefix", "key_fingerprint", "expires", "min_size", "max_size")

# JSON inside <script> must not be able to close the element or open a comment; U+2028/9
# are line breaks to old JavaScript parsers.
_SCRIPT_SAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                "\u2029": "\\u2029"}  # fmt: skip


def grant_json_for_script(grant: Mapping[str, object]) -> str:
    """The grant as JSON that is inert inside a <script type="application/json"> element."""
    text = json.dumps(dict(grant), ensure_ascii=False, indent=1)
    for char, escaped in _SCRIPT_SAFE.items():
        text = text.replace(char, escaped)
    return text


def endpoint_origin(url: str) -> str:
    """The https origin the page may connect to (its Content-Security-Policy `connect-src`):
    the page cannot send anything, the key included, to any other address."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise UsageError(
            f"the grant's address {url!r} is not an https:// URL; the page would send the key "
            "unencrypted",
            hint="make the grant against the HTTPS endpoint of the server",
        )
    host = parts.hostname
    if not _HOST.fullmatch(host):
        raise UsageError(
            f"the grant's address {url!r} has a host name the page cannot use",
            hint="make the grant against the endpoint's DNS name or IP address",
        )
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return f"https://{host}{port}"


def render_upload_page(grant: Mapping[str, object]) -> str:
    """The upload page for `grant` (a grant document as `grant` writes it)."""
    missing = [name for name in REQUIRED if name not in grant]
    fields = grant.get("fields")
    if grant.get("type") != "ssec-transfer-grant" or missing or not isinstance(fields, Mapping):
        raise UsageError(
            "this is not a complete ssec-transfer grant"
            + (f" (missing {', '.join(missing)})" if missing else ""),
            hint="write the page from the grant that `ssec-transfer grant` made",
        )
    origin = endpoint_origin(str(grant["url"]))
    template = resources.files("ssec_transfer.share").joinpath(TEMPLATE).read_text("utf-8")
    return template.replace(CONNECT_MARK, origin).replace(GRANT_MARK, grant_json_for_script(grant))
