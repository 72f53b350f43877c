"""The upload page as text: the grant is embedded inertly, nothing is loaded from elsewhere,
and the page can connect only to the grant's HTTPS origin. (Its behaviour is tested in a real
browser: tests/integration/share/test_upload_page.py.)"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from ssec_transfer.core.errors import UsageError
from ssec_transfer.share.page import endpoint_origin, render_upload_page


def grant(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": "ssec-transfer-grant",
        "version": 1,
        "url": "https://s3.example.org:8443/bucket",
        "bucket": "bucket",
        "prefix": "incoming/",
        "key_fingerprint": "1B2M2Y8AsgTpgAmY7PhCfg==",
        "algorithm": "AES256",
        "expires": "2026-12-01T17:00:00Z",
        "min_size": 0,
        "max_size": 5368709120,
        "fields": {"key": "incoming/${filename}", "policy": "e30=", "x-amz-signature": "00"},
    }
    doc.update(changes)
    return doc


def embedded(html: str) -> Any:
    match = re.search(r'<script type="application/json" id="grant">(.*?)</script>', html, re.S)
    assert match is not None
    return json.loads(match.group(1))


def test_the_grant_round_trips_and_cannot_break_out_of_its_script_element() -> None:
    hostile = "in/</script><script>alert(1)</script><!--&\u2028\u2029"
    doc = grant(prefix=hostile)
    html = render_upload_page(doc)
    assert embedded(html) == doc
    assert "alert(1)</script>" not in html
    assert html.count("</script>") == 2  # the grant's element and the page's own script
    assert "\u2028" not in html
    assert "\u2029" not in html


def test_the_page_is_self_contained_and_stores_nothing() -> None:
    html = render_upload_page(grant())
    assert not re.search(r"\b(src|href)\s*=", html, re.I)
    assert not re.search(r"<(link|img|iframe|object|embed)\b|@import|url\(", html, re.I)
    for storage in ("localStorage", "sessionStorage", "indexedDB", "document.cookie"):
        assert storage not in html
    # One request in the whole page, to the grant's address.
    assert html.count("fetch(") == 1
    assert "fetch(grant.url," in html


def test_the_page_may_connect_only_to_the_grants_origin() -> None:
    html = render_upload_page(grant())
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html)
    assert csp is not None
    assert "connect-src https://s3.example.org:8443;" in csp.group(1)
    assert "default-src 'none'" in csp.group(1)


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://s3.example.org/b", "https://s3.example.org"),
        ("https://127.0.0.1:8443/b", "https://127.0.0.1:8443"),
        ("https://[::1]:8443/b", "https://[::1]:8443"),
    ],
)
def test_endpoint_origin(url: str, origin: str) -> None:
    assert endpoint_origin(url) == origin


@pytest.mark.parametrize("url", ["http://s3.example.org/b", "ftp://x/b", "https:///b", "b"])
def test_a_page_for_a_plain_http_endpoint_is_refused(url: str) -> None:
    with pytest.raises(UsageError, match="not an https:// URL") as err:
        render_upload_page(grant(url=url))
    assert err.value.hint


def test_an_incomplete_grant_is_refused() -> None:
    doc = grant()
    del doc["key_fingerprint"]
    with pytest.raises(UsageError, match="missing key_fingerprint"):
        render_upload_page(doc)
    with pytest.raises(UsageError, match="not a complete ssec-transfer grant"):
        render_upload_page(grant(type="something-else"))
