"""The data plane against a scripted HTTPS server: it retries what botocore retries (5xx,
SlowDown, broken connections) with the same retry lines, gives up with the exceptions
aiobotocore raises, sends a body again from its start, signs with refreshed credentials, and
leaves to aiobotocore what it does not take (an unknown bucket, a redirect)."""

from __future__ import annotations

import datetime
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import botocore.exceptions as bx
import pytest
from aiobotocore.credentials import AioRefreshableCredentials
from aiobotocore.httpsession import AIOHTTPSession
from aiohttp import web
from aiohttp.client_reqrep import ConnectionKey
from botocore.awsrequest import AWSPreparedRequest

from ssec_transfer.core.errors import (
    EndpointError,
    ErrorContext,
    NoSuchObjectError,
    TransferFailedError,
)
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.bodies import PartBody
from ssec_transfer.s3.client import ConnectionSettings, open_client
from ssec_transfer.s3.dataplane import as_botocore_error
from ssec_transfer.s3.errors import translate
from ssec_transfer.s3.routes import Route, route_from_request
from ssec_transfer.s3.sse import sse_params
from ssec_transfer.s3.timeouts import WriteStalled, attempts_of
from ssec_transfer.servers.tls import make_tls

pytestmark = pytest.mark.anyio

ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
    "<Message>{message}</Message><RequestId>req-{code}</RequestId></Error>"
)


@dataclass
class Seen:
    method: str
    path_qs: str
    headers: Mapping[str, str]  # case-insensitive, as received
    body: bytes

    @property
    def botocores(self) -> bool:
        """Sent by aiobotocore (which adds its invocation id), not by the data plane."""
        return "amz-sdk-invocation-id" in self.headers


@dataclass
class FakeS3:
    """Answers each request with the next scripted (status, headers, body), else 200."""

    data: bytes = b"0123456789" * 100
    script: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)

    def error(self, status: int, code: str, message: str = "scripted") -> None:
        body = ERROR.format(code=code, message=message).encode()
        self.script.append((status, {"x-amz-request-id": f"req-{code}"}, body))

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(
            Seen(request.method, request.path_qs, request.headers.copy(), await request.read())
        )
        if self.script:
            status, headers, body = self.script.pop(0)
            return web.Response(status=status, headers=headers, body=body)
        headers = {"ETag": '"etag"', "x-amz-request-id": "req-ok", "x-amz-version-id": "v1"}
        if request.method == "GET":
            return web.Response(status=200, headers=headers, body=self.data)
        return web.Response(status=200, headers=headers)


@asynccontextmanager
async def serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeS3, *, max_attempts: int = 5
) -> AsyncIterator[tuple[Any, str]]:
    """The fake server on HTTPS, and an engine client pointing at it (bucket "b" known)."""
    tls = make_tls(tmp_path / "tls")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert, tls.key)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    settings = ConnectionSettings(
        endpoint_url=f"https://127.0.0.1:{port}",
        ca_bundle=str(tls.ca_cert),
        max_attempts=max_attempts,
        connect_timeout=2,
        read_timeout=5,
    )
    try:
        async with AsyncExitStack() as stack:
            client = await open_client(stack, settings, pool_size=4)
            script, fake.script = fake.script, []  # the script is for the test's requests
            await client.head_bucket(Bucket="b")  # aiobotocore's request shows the route
            fake.seen.clear()
            fake.script = script
            yield client, f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_get_is_the_data_planes_and_reads_like_botocores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeS3()
    key = SSECustomerKey.generate()
    async with serving(tmp_path, monkeypatch, fake) as (client, _):
        resp = await client.get_object(
            Bucket="b", Key="a b+c", Range="bytes=0-9", **sse_params(key)
        )
        async with resp["Body"] as body:
            assert await body.read() == fake.data
    assert resp["ETag"] == '"etag"'
    assert resp["VersionId"] == "v1"
    assert resp["ContentLength"] == len(fake.data)
    assert resp["ResponseMetadata"]["RequestId"] == "req-ok"
    assert resp["ResponseMetadata"]["RetryAttempts"] == 0
    [seen] = fake.seen
    assert not seen.botocores
    assert seen.path_qs == "/b/a%20b%2Bc"
    assert seen.headers["Range"] == "bytes=0-9"
    assert seen.headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert seen.headers["Accept-Encoding"] == "identity"
    signed = seen.headers["Authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert "x-amz-server-side-encryption-customer-key" in signed
    assert "range" in signed


async def test_server_errors_and_slowdown_are_retried_with_botocores_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ssec_transfer")
    fake = FakeS3()
    fake.error(503, "SlowDown", "Please reduce your request rate.")
    fake.error(500, "InternalError")
    async with serving(tmp_path, monkeypatch, fake) as (client, host):
        resp = await client.get_object(Bucket="b", Key="k")
        async with resp["Body"] as body:
            assert await body.read() == fake.data
    assert resp["ResponseMetadata"]["RetryAttempts"] == 2
    assert [s.botocores for s in fake.seen] == [False, False, False]
    text = caplog.text
    assert f"{host} answered HTTP 503 SlowDown (GetObject s3://b/k), attempt 2 of 5" in text
    assert f"{host} answered HTTP 500 InternalError (GetObject s3://b/k), attempt 3 of 5" in text


async def test_a_body_is_sent_again_from_its_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeS3()
    fake.error(500, "InternalError")
    data = bytes(range(256)) * 1000
    async with serving(tmp_path, monkeypatch, fake) as (client, _):
        resp = await client.upload_part(
            Bucket="b", Key="k", UploadId="u+1", PartNumber=3, Body=PartBody(data)
        )
    assert resp["ETag"] == '"etag"'
    assert [s.body for s in fake.seen] == [data, data]
    assert all(s.path_qs == "/b/k?uploadId=u%2B1&partNumber=3" for s in fake.seen)
    assert all(s.headers["Content-Length"] == str(len(data)) for s in fake.seen)


async def test_it_gives_up_with_the_error_botocore_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeS3()
    for _ in range(3):
        fake.error(500, "InternalError", "try later")
    async with serving(tmp_path, monkeypatch, fake, max_attempts=3) as (client, _):
        with pytest.raises(bx.ClientError) as caught:
            await client.put_object(Bucket="b", Key="k", Body=b"x")
    assert len(fake.seen) == 3
    response = caught.value.response
    assert response["Error"] == {"Code": "InternalError", "Message": "try later"}
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert response["ResponseMetadata"]["RequestId"] == "req-InternalError"
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    error = translate(caught.value, ErrorContext("PutObject", "b", "k"), key_sent=False)
    assert isinstance(error, TransferFailedError)
    assert "server error InternalError: try later" in str(error)


async def test_error_answers_are_botocores_modeled_exceptions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeS3()
    fake.error(404, "NoSuchKey", "The specified key does not exist.")
    fake.script.append((403, {"x-amz-request-id": "empty"}, b""))
    async with serving(tmp_path, monkeypatch, fake) as (client, _):
        with pytest.raises(client.exceptions.NoSuchKey) as missing:
            await client.get_object(Bucket="b", Key="k")
        with pytest.raises(bx.ClientError) as refused:
            await client.get_object(Bucket="b", Key="k")
    assert isinstance(translate(missing.value, ErrorContext("GetObject"), key_sent=True),
                      NoSuchObjectError)  # fmt: skip
    assert refused.value.response["Error"]["Code"] == "403"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert len(fake.seen) == 2  # neither is retried


async def test_connection_refused_is_retried_then_endpoint_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ssec_transfer")
    fake = FakeS3()
    async with serving(tmp_path, monkeypatch, fake, max_attempts=2) as (client, _):
        plane = client._plane
        route = plane._routes.get("b")
        # the same bucket, reached at a port where nothing listens
        plane._routes._known["b"] = Route.of(
            f"https://127.0.0.1:{_closed_port()}/b", route.region, route.service
        )
        with pytest.raises(bx.EndpointConnectionError) as caught:
            await client.get_object(Bucket="b", Key="k")
    record = attempts_of(caught.value)
    assert record is not None
    assert record.attempts == 2
    assert "cannot connect to 127.0.0.1:" in caplog.text
    assert "(GetObject s3://b/k), attempt 2 of 2" in caplog.text
    error = translate(caught.value, ErrorContext("GetObject", "b", "k"), key_sent=False)
    assert isinstance(error, EndpointError)


async def test_refreshed_credentials_sign_the_next_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = iter(range(1, 100))
    # Within botocore's advisory window (15 min), outside its mandatory one (10 min): every
    # request refreshes them first.
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=12)

    async def refresh() -> dict[str, str]:
        n = next(issued)
        return {"access_key": f"AK{n}", "secret_key": f"secret{n}", "token": f"token{n}",
                "expiry_time": soon.isoformat()}  # fmt: skip

    fake = FakeS3()
    async with serving(tmp_path, monkeypatch, fake) as (client, _):
        client._request_signer._credentials = AioRefreshableCredentials.create_from_metadata(
            metadata=await refresh(), refresh_using=refresh, method="test"
        )
        for _ in range(2):
            await client.put_object(Bucket="b", Key="k", Body=b"x")
    tokens = [s.headers["X-Amz-Security-Token"] for s in fake.seen]
    keys = [s.headers["Authorization"].split("Credential=")[1].split("/")[0] for s in fake.seen]
    assert len(set(tokens)) == 2
    assert [t.removeprefix("token") for t in tokens] == [k.removeprefix("AK") for k in keys]
    assert not any(s.botocores for s in fake.seen)


async def test_a_redirect_is_left_to_botocore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeS3()
    fake.script.append((301, {"x-amz-bucket-region": "us-east-1"}, b""))
    async with serving(tmp_path, monkeypatch, fake) as (client, _):
        resp = await client.get_object(Bucket="b", Key="k")
        async with resp["Body"] as body:
            assert await body.read() == fake.data
    assert [s.botocores for s in fake.seen][:2] == [False, True]


async def test_an_unknown_bucket_is_botocores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeS3()
    async with serving(tmp_path, monkeypatch, fake) as (client, _):
        await client.put_object(Bucket="other", Key="k", Body=b"x")
        await client.put_object(Bucket="other", Key="k", Body=b"x")
    assert [s.botocores for s in fake.seen] == [True, False]  # learned from the first


def test_no_route_is_learned_from_plain_http() -> None:
    auth = "AWS4-HMAC-SHA256 Credential=AK/20261130/us-east-1/s3/aws4_request, SignedHeaders=h"
    assert route_from_request("http://127.0.0.1:8000/b/k", auth, "k") is None
    assert route_from_request("https://127.0.0.1:8000/b/k", auth, "k") is not None
    express = auth.replace("/s3/", "/s3express/")
    assert route_from_request("https://127.0.0.1:8000/b/k", express, "k") is None


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _transport_failures() -> list[Exception]:
    key = ConnectionKey("127.0.0.1", 443, True, True, None, None, None)
    return [
        aiohttp.ClientSSLError(key, OSError(1, "certificate verify failed")),
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientPayloadError("truncated"),
        aiohttp.ServerTimeoutError("Connection timeout to host https://127.0.0.1"),
        aiohttp.ServerTimeoutError("Timeout on reading data from socket"),
        aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "refused")),
        aiohttp.ClientOSError(104, "reset"),
        socket.gaierror(-2, "Name or service not known"),
        WriteStalled("the server took no data for 2 s"),
        TimeoutError(),
        ValueError("something else"),
    ]


@pytest.mark.parametrize("failure", _transport_failures(), ids=lambda e: type(e).__name__)
async def test_transport_failures_become_what_aiobotocore_raises(failure: Exception) -> None:
    """The same botocore exception class, carrying the same aiohttp error, as aiobotocore's
    own session raises for it (so retries, retry lines and messages are unchanged)."""

    class Failing:
        async def request(self, *args: Any, **kwargs: Any) -> Any:
            raise failure

    session = AIOHTTPSession()
    session._get_session = _returning(Failing())  # type: ignore[method-assign]
    request = AWSPreparedRequest("GET", "https://127.0.0.1/b/k", {}, None, True)
    with pytest.raises(Exception) as raised:  # noqa: PT011 - any class, compared below
        await session.send(request)
    mapped = as_botocore_error(failure, request)
    assert type(mapped) is type(raised.value)
    if "error" in getattr(raised.value, "kwargs", {}):
        assert mapped.kwargs["error"] is failure  # type: ignore[attr-defined]
    assert str(mapped) == str(raised.value)


def _returning(value: Any) -> Any:
    async def get(*_: Any) -> Any:
        return value

    return get
