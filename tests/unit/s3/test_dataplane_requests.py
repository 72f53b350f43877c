"""A data request leaves the data plane exactly as aiobotocore would have sent it: the same
method, URL (path or virtual-host addressing, as the client is configured; the key quoted as
botocore quotes it; the query in botocore's order) and the same signed headers, with the same
signature (time frozen), session token included.

Both requests are made by the engine's own client (`open_client`) and caught at `before-send`,
the last event before bytes leave the process, so nothing here needs a server.
"""

from __future__ import annotations

import datetime
import functools
import os
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from unittest import mock

import botocore.auth
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import given, settings
from hypothesis import strategies as st

from ssec_transfer.core.checksums import ALGORITHMS
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.bodies import PartBody
from ssec_transfer.s3.client import ConnectionSettings, open_client
from ssec_transfer.s3.signing import amz_date
from ssec_transfer.s3.sse import sse_params

ENDPOINT = "https://s3.example.com:8443"
WHEN = datetime.datetime(2026, 11, 30, 12, 34, 56)
# Added by botocore after signing (or by aiohttp when it sends): not part of the comparison.
UNSIGNED = {"user-agent", "amz-sdk-invocation-id", "amz-sdk-request", "content-length", "expect"}
SPECIAL = ["a b", "a+b", "100%", "~user", "a//b", "/lead", "trail/", "ü", "日本", "x?y#z", "&="]


class Caught(Exception):
    """Raised at `before-send`: the request was seen and goes no further."""


def _view(request: Any) -> tuple[str, str, dict[str, str]]:
    headers = {
        str(k).lower(): v.decode() if isinstance(v, bytes) else str(v)
        for k, v in request.headers.items()
    }
    return request.method, request.url, headers


class Client:
    """The engine's client, and what its last request looked like at `before-send`."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        client.meta.events.register("before-send.s3", self._catch)

    def _catch(self, request: Any, **_: Any) -> None:
        self.seen.append(_view(request))
        raise Caught

    async def sent(self, via_botocore: bool, method: str, params: dict[str, Any]) -> Any:
        target = self.client._client if via_botocore else self.client
        with pytest.raises(Caught):
            await getattr(target, method)(**params)
        return self.seen.pop()


@pytest.fixture(scope="module")
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal("asyncio") as running:
        yield running


@pytest.fixture(
    scope="module",
    params=[("path", None), ("virtual", None), ("path", "FQoGZXIvYXdzEXAMPLE//token+/=")],
    ids=["path", "virtual", "session-token"],
)
def client(
    request: pytest.FixtureRequest, portal: BlockingPortal, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Client]:
    style, token = request.param
    config = tmp_path_factory.mktemp("aws") / "config"
    config.write_text(f"[default]\ns3 =\n    addressing_style = {style}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_CONFIG_FILE=str(config),
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_ACCESS_KEY_ID="AKIDEXAMPLE",
        AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    )
    if token:
        env["AWS_SESSION_TOKEN"] = token
    stack = AsyncExitStack()
    settings = ConnectionSettings(endpoint_url=ENDPOINT, region="eu-west-2")
    with mock.patch.dict(os.environ, env, clear=True):
        opened = portal.call(functools.partial(open_client, stack, settings, pool_size=2))
    try:
        yield Client(opened)
    finally:
        portal.call(stack.aclose)


keys = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=30),
    st.lists(st.sampled_from(SPECIAL), min_size=1, max_size=4).map("".join),
)
texts = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=20)
etags = st.text("0123456789abcdef", min_size=32, max_size=32).map(lambda s: f'"{s}"')
metadata = st.dictionaries(
    st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=8),
    st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=12),
    max_size=3,
)
crc = st.binary(max_size=64).map(ALGORITHMS["crc32c"].of)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    method = draw(st.sampled_from(["get_object", "put_object", "upload_part"]))
    extra: dict[str, Any] = {}
    if draw(st.booleans()):
        extra.update(sse_params(SSECustomerKey.generate()))
    if method == "get_object":
        start = draw(st.integers(0, 2**40))
        optional = {
            "Range": f"bytes={start}-{start + draw(st.integers(0, 2**30))}",
            "IfMatch": draw(etags),
            "VersionId": draw(texts),
            "ChecksumMode": "ENABLED",
        }
    else:
        extra["Body"] = draw(st.sampled_from([b"", b"data", PartBody(b"x" * 100)]))
        optional = {"ChecksumCRC32C": draw(crc)}
        if method == "put_object":
            optional.update(ContentType="application/octet-stream", Metadata=draw(metadata))
        else:
            extra.update(UploadId=draw(texts), PartNumber=draw(st.integers(1, 10000)))
    chosen = draw(st.lists(st.sampled_from(sorted(optional)), unique=True))
    extra.update({name: optional[name] for name in chosen})
    order = draw(st.permutations(sorted(extra)))
    params = {
        "Bucket": draw(st.sampled_from(["data-bucket", "my.bucket", "b1"])),
        "Key": draw(keys),
        **{name: extra[name] for name in order},
    }
    return method, params


@settings(max_examples=150, deadline=None)
@given(request=requests())
def test_data_plane_sends_what_botocore_would(
    client: Client, portal: BlockingPortal, request: tuple[str, dict[str, Any]]
) -> None:
    method, params = request
    with (
        mock.patch.object(botocore.auth, "get_current_datetime", return_value=WHEN),
        mock.patch(
            "ssec_transfer.s3.dataplane.amz_date",
            return_value=amz_date(WHEN.replace(tzinfo=datetime.UTC).timestamp()),
        ),
    ):
        # botocore's request first: the route of the bucket is learned from it
        expected = portal.call(client.sent, True, method, params)
        mine = portal.call(client.sent, False, method, params)
    assert "amz-sdk-invocation-id" not in mine[2], "this request was not the data plane's"
    assert mine[:2] == expected[:2]
    assert {k: v for k, v in mine[2].items() if k not in UNSIGNED} == {
        k: v for k, v in expected[2].items() if k not in UNSIGNED
    }


def test_a_bucket_not_yet_addressed_goes_through_botocore(
    client: Client, portal: BlockingPortal
) -> None:
    seen = portal.call(client.sent, False, "get_object", {"Bucket": "never-seen", "Key": "k"})
    assert "amz-sdk-invocation-id" in seen[2]


@pytest.mark.parametrize(
    "params",
    [
        {"ChecksumAlgorithm": "CRC32C", "Body": b"x"},  # botocore computes the checksum
        {"SSECustomerKey": "a" * 44, "SSECustomerAlgorithm": "AES256"},  # and the key's MD5
        {"ContentLength": 1, "Body": b"x"},
        {"Body": Path("not a body")},
        {"Metadata": {"ü": "x"}},  # botocore refuses it
        {"Expires": datetime.datetime(2030, 1, 1)},
        {"Unknown": "x"},
    ],
)
def test_parameters_botocore_acts_on_go_through_botocore(
    client: Client, portal: BlockingPortal, params: dict[str, Any]
) -> None:
    base = {"Bucket": "data-bucket", "Key": "k"}
    portal.call(client.sent, True, "get_object", base)  # the route is known
    plane = client.client._plane
    assert plane._routes.get("data-bucket") is not None
    assert plane._operations["PutObject"].serialize({**base, **params}) is None
