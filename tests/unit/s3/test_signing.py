"""The data plane's SigV4 signer is byte-identical to botocore's `S3SigV4Auth` (as the client
is configured: payloads unsigned over HTTPS), whatever the request: keys with unicode,
spaces, `+`, `%`, `~` and `//`, query strings, header values with runs of spaces, headers
that differ only in case, session tokens, any secret, any region, any instant (the signing
key is cached per day, so days change under it too)."""

from __future__ import annotations

import datetime
from unittest import mock
from urllib.parse import quote, urlsplit

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials, ReadOnlyCredentials
from hypothesis import given, settings
from hypothesis import strategies as st

from ssec_transfer.s3.routes import quote_key, signing_host
from ssec_transfer.s3.signing import SigV4Signer, amz_date, canonical_query

CONFIG = Config(signature_version="s3v4", s3={"payload_signing_enabled": False})
SPECIAL = ["a b", "a+b", "100%", "~user", "a//b", "/lead", "trail/", "ü", "日本", "x?y#z", "&="]

keys = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=30),
    st.lists(st.sampled_from(SPECIAL), min_size=1, max_size=4).map("".join),
)
ascii_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20)
query_values = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
hosts = st.sampled_from(
    [
        "https://127.0.0.1:8443/bucket",
        "https://s3.example.com/bucket",
        "https://bucket.s3.example.com",
        "https://S3.Example.com:443/b",
        "https://[::1]:9000/b",
        "https://s3.eu-west-2.amazonaws.com/my.bucket",
    ]
)
header_names = st.sampled_from(
    [
        "Range",
        "If-Match",
        "Content-Type",
        "x-amz-checksum-crc32c",
        "x-amz-server-side-encryption-customer-algorithm",
        "x-amz-server-side-encryption-customer-key",
        "x-amz-server-side-encryption-customer-key-MD5",
        "x-amz-meta-Name",
        "X-Amz-Meta-name",  # the same header as the one above, by case
        "User-Agent",  # never signed
        "Expect",  # never signed
    ]
)


def _query(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k, safe='-._~')}={quote(v, safe='-._~')}" for k, v in pairs)


def _botocore(
    method: str,
    url: str,
    headers: dict[str, str],
    creds: Credentials,
    region: str,
    when: datetime.datetime,
) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, headers=dict(headers))
    request.context["client_config"] = CONFIG
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=when):
        botocore.auth.S3SigV4Auth(creds, "s3", region).add_auth(request)
    return {k: v for k, v in request.headers.items()}


@settings(max_examples=400, deadline=None)
@given(
    method=st.sampled_from(["GET", "PUT"]),
    base=hosts,
    key=keys,
    query=st.lists(
        st.tuples(st.sampled_from(["partNumber", "uploadId", "versionId", "x-id"]), query_values),
        max_size=3,
    ),
    headers=st.dictionaries(header_names, ascii_text, max_size=8),
    token=st.one_of(
        st.none(),
        st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=60),
    ),
    region=st.sampled_from(["us-east-1", "eu-west-2", "default", "RegionOne"]),
    secret=st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40),
    when=st.datetimes(
        min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2099, 12, 31)
    ),
)
def test_signature_is_botocores(
    method: str,
    base: str,
    key: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    token: str | None,
    region: str,
    secret: str,
    when: datetime.datetime,
) -> None:
    when = when.replace(microsecond=0)
    qs = _query(query)
    url = f"{base}/{quote_key(key)}" + (f"?{qs}" if qs else "")
    creds = Credentials("AKIDEXAMPLE", secret, token)
    expected = _botocore(method, url, headers, creds, region, when)

    mine = dict(headers)
    frozen = ReadOnlyCredentials(creds.access_key, creds.secret_key, token)
    SigV4Signer(region).sign(
        method, signing_host(url), urlsplit(url).path, qs, mine, frozen, amz_date(
            when.replace(tzinfo=datetime.UTC).timestamp()
        ),
    )  # fmt: skip
    assert {k.lower(): v for k, v in mine.items()} == {k.lower(): v for k, v in expected.items()}


def test_the_cached_signing_key_follows_the_day_and_the_credentials() -> None:
    signer = SigV4Signer("us-east-1")
    url = "https://127.0.0.1:8443/b/k"
    for when, secret in [
        (datetime.datetime(2026, 11, 30, 23, 59, 59), "one"),
        (datetime.datetime(2026, 12, 1, 0, 0, 0), "one"),  # a new day under the same key
        (datetime.datetime(2026, 12, 1, 0, 0, 1), "two"),  # refreshed credentials
        (datetime.datetime(2026, 12, 1, 0, 0, 2), "one"),
    ]:
        creds = Credentials("AK", secret, "token")
        expected = _botocore("GET", url, {}, creds, "us-east-1", when)
        mine: dict[str, str] = {}
        signer.sign(
            "GET", signing_host(url), "/b/k", "", mine,
            ReadOnlyCredentials("AK", secret, "token"),
            amz_date(when.replace(tzinfo=datetime.UTC).timestamp()),
        )  # fmt: skip
        assert mine["Authorization"] == expected["Authorization"]


def test_the_signer_never_shows_the_secret() -> None:
    signer = SigV4Signer("us-east-1")
    signer.sign("GET", "h", "/b/k", "", {}, ReadOnlyCredentials("AK", "top-secret", None),
                amz_date())  # fmt: skip
    assert "top-secret" not in repr(signer)


def test_canonical_query_sorts_encoded_pairs() -> None:
    assert canonical_query("uploadId=a%2Bb&partNumber=2") == "partNumber=2&uploadId=a%2Bb"
    assert canonical_query("") == ""
    assert canonical_query("uploads") == "uploads="
