"""The S3 client: aiobotocore's, with endpoint and credential resolution like the AWS tools,
tuned config, the HTTPS guard that keeps SSE-C keys off plain HTTP, and its data requests
(GetObject, PutObject, UploadPart) sent by the data plane (`s3.dataplane`).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from ssec_transfer.core.bandwidth import TokenBucket
from ssec_transfer.core.errors import InsecureEndpointError, UsageError
from ssec_transfer.core.retry import CONNECT_TIMEOUT, READ_TIMEOUT, REQUEST_TIMEOUT
from ssec_transfer.s3 import timeouts
from ssec_transfer.s3.bandwidth import ChargedBody
from ssec_transfer.s3.bodies import FilePartBody, PartBody, register_payloads
from ssec_transfer.s3.dataplane import DataPlane

_SSEC_HEADER_PREFIXES = (
    "x-amz-server-side-encryption-customer-",
    "x-amz-copy-source-server-side-encryption-customer-",
)


@dataclass(frozen=True)
class ConnectionSettings:
    """Where and how to connect. `None` means: resolve like the AWS CLI does (environment
    variables AWS_ENDPOINT_URL, AWS_PROFILE, AWS_CA_BUNDLE, then ~/.aws/config)."""

    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    ca_bundle: str | None = None
    retry_mode: str = "standard"
    max_attempts: int = 5
    # Per attempt: TCP + TLS handshake; the longest silence of the server (see s3.timeouts).
    connect_timeout: float = CONNECT_TIMEOUT
    read_timeout: float = READ_TIMEOUT
    # Per request, across its attempts: no new attempt after this long without progress.
    request_timeout: float = REQUEST_TIMEOUT


def _check_endpoint_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        hint = "give the endpoint as https://HOST[:PORT]"
        if url.startswith("s3://"):
            hint = "--endpoint-url is the server's address (https://HOST[:PORT]), not an s3:// URL"
        raise UsageError(f"invalid endpoint URL {url!r}", hint=hint)


def refuse_plain_http(endpoint_url: str, *, operation: str | None = None) -> None:
    """Refuse before any connection: a key sent in clear must be treated as burnt."""
    if endpoint_url.lower().startswith("http://"):
        raise InsecureEndpointError(
            f"refusing to send an SSE-C key to {endpoint_url}: SSE-C requires HTTPS "
            "(a key that crossed the network in clear must be considered leaked)",
            hint="use the server's https:// endpoint (and --ca-bundle for a private CA)",
        )


def _https_guard(request: Any, **_: Any) -> None:
    """botocore `before-send` hook: the last point before bytes leave the process."""
    if request.url.lower().startswith("https://"):
        return
    if any(name.lower().startswith(_SSEC_HEADER_PREFIXES) for name in request.headers):
        refuse_plain_http(request.url.split("?", 1)[0])


def _drop_expect_continue(request: Any, **_: Any) -> None:
    """botocore asks for `Expect: 100-continue` on every file-like body; our part bodies are
    already in memory, so the extra round trip per part buys nothing."""
    del request.headers["Expect"]  # an email.message.Message: deleting a missing key is fine


def build_config(
    settings: ConnectionSettings, *, pool_size: int, botocore_checksums: bool = False
) -> AioConfig:
    """`botocore_checksums=True` restores botocore's defaults (for the doctor's probe only)."""
    when = "when_supported" if botocore_checksums else "when_required"
    return AioConfig(
        signature_version="s3v4",
        max_pool_connections=pool_size,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        retries={"mode": settings.retry_mode, "total_max_attempts": settings.max_attempts},
        # Ceph 16 refuses botocore's streamed (aws-chunked) checksums with 411; integrity of
        # the bytes in transit comes from TLS. Flexible checksums become an explicit option.
        request_checksum_calculation=when,
        response_checksum_validation=when,
        # Over HTTPS, SHA-256 of every body would cost more CPU than the TLS cipher itself.
        s3={"payload_signing_enabled": False},
        tcp_keepalive=True,
        # Each attempt under its request's progress clock, body writes bounded, retries said.
        http_session_cls=timeouts.WatchedSession,
    )


class S3Client:
    """The aiobotocore client, whose data requests take the data plane: the same methods,
    arguments, answers and exceptions, for about half the client CPU per request. Whatever
    the data plane does not take (see `DataPlane.call`) and every other operation are
    aiobotocore's own, reached through this object as through the client itself.

    Every payload byte of the client passes here, whichever path sends it, so this is where
    a bandwidth limit is attached: to each request body and each GetObject body
    (`s3.bandwidth`)."""

    def __init__(self, client: Any, plane: DataPlane, bandwidth: TokenBucket | None = None) -> None:
        self._client = client
        self._plane = plane
        self._bandwidth = bandwidth

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def get_object(self, **params: Any) -> Any:
        answer = await self._send("GetObject", self._client.get_object, params)
        if self._bandwidth is not None:
            answer["Body"] = ChargedBody(answer["Body"], self._bandwidth)
        return answer

    async def put_object(self, **params: Any) -> Any:
        return await self._send("PutObject", self._client.put_object, params)

    async def upload_part(self, **params: Any) -> Any:
        return await self._send("UploadPart", self._client.upload_part, params)

    async def _send(
        self, operation: str, botocore_call: Callable[..., Awaitable[Any]], params: dict[str, Any]
    ) -> Any:
        if self._bandwidth is not None:
            body = params.get("Body")
            if isinstance(body, PartBody | FilePartBody):
                body.bandwidth = self._bandwidth  # charged as its payload writes it
            elif isinstance(body, bytes | bytearray):  # a probe's few bytes: charged at once
                await self._bandwidth.consume(len(body))
        answer = await self._plane.call(operation, params)
        if answer is None:
            answer = await botocore_call(**params)
        return answer


async def open_client(
    stack: AsyncExitStack,
    settings: ConnectionSettings,
    *,
    pool_size: int,
    botocore_checksums: bool = False,
    bandwidth: TokenBucket | None = None,
) -> Any:
    """Create an S3 client whose lifetime is bound to `stack`. Opens no connection yet.

    Registers the sliced part payloads with aiohttp first: every request body of ours goes
    through a client made here, so this is where they must be known. With
    `botocore_checksums=True` every request is botocore's (the doctor probes its checksums).
    `bandwidth`: the limit every payload byte of its data requests is charged to."""
    if settings.endpoint_url:
        _check_endpoint_url(settings.endpoint_url)
    register_payloads()
    session = AioSession(profile=settings.profile)
    region = settings.region or session.get_config_variable("region") or "us-east-1"
    verify: str | None = settings.ca_bundle or os.environ.get("AWS_CA_BUNDLE") or None
    client = await stack.enter_async_context(
        session.create_client(
            "s3",
            endpoint_url=settings.endpoint_url,
            region_name=region,
            verify=verify,
            config=build_config(
                settings, pool_size=pool_size, botocore_checksums=botocore_checksums
            ),
        )
    )
    client.meta.events.register("before-send.s3", _https_guard)
    client.meta.events.register("before-sign.s3", _drop_expect_continue)
    timeouts.install(client, request_timeout=settings.request_timeout)
    if botocore_checksums:
        return client
    plane = DataPlane(client, request_timeout=settings.request_timeout)
    return S3Client(client, plane, bandwidth)
