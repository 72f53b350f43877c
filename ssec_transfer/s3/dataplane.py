"""The data plane: GetObject, PutObject and UploadPart sent straight through aiohttp.

aiobotocore spends about 1 ms of CPU on each request in its generic pipeline (parameter
validation and serialization, endpoint rules per call, a dozen events, a parser walking the
output shape); a ranged GET of 256 KiB costs less than that on the wire. Here a data request is
serialized from tables compiled once (`s3.operations`), addressed by the route aiobotocore's
own requests revealed (`s3.routes`), signed with a cached signing key (`s3.signing`) over
HTTPS with UNSIGNED-PAYLOAD, and sent on the connection pool aiobotocore opened
(`timeouts.WatchedSession.connection_pool`: same connections, TLS settings and proxy).

It behaves as botocore does, because it asks botocore's machinery at each step rather than
copying it: every attempt goes through the client's own events (`before-send`, where the HTTPS
guard and the adaptive rate limiter sit; `response-received`; `needs-retry`, where botocore's
retry handler, its retry quota and `timeouts.retry_judge` decide; `after-call`), each attempt
runs under `timeouts.watched_attempt` (progress clock, bound per request, retry line),
transport failures become the botocore exceptions aiobotocore raises for them, error answers
are parsed by botocore's parser into the ClientError aiobotocore raises, and GET bodies are
aiobotocore's `AioStreamingBody`. So `s3.errors.translate` and the part loops in
`s3.requests` see exactly what they saw before.

A request this layer does not take (see `DataPlane.call`) goes through aiobotocore unchanged.
No exception message here holds a header; the DEBUG line of each attempt shows the headers
with the key, the signature and the session token redacted.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import aiohttp
import anyio
import botocore.exceptions as bx
from aiobotocore.parsers import AioResponseParserFactory
from aiobotocore.response import AioStreamingBody
from botocore.awsrequest import AWSPreparedRequest
from botocore.hooks import first_non_none_response
from botocore.httpsession import mask_proxy_url
from yarl import URL

from ssec_transfer import __version__
from ssec_transfer.s3 import timeouts
from ssec_transfer.s3.operations import (
    DATA_OPERATIONS,
    Operation,
    Serialized,
    response_metadata,
)
from ssec_transfer.s3.routes import Route, Routes
from ssec_transfer.s3.signing import SigV4Signer, amz_date

log = logging.getLogger(__name__)

_USER_AGENT = f"ssec-transfer/{__version__} aiohttp/{aiohttp.__version__}"
# Answers that move the bucket elsewhere: botocore's region redirector handles them.
_REDIRECT_STATUS = frozenset({301, 302, 307})
_REDIRECT_CODES = frozenset({"PermanentRedirect", "IllegalLocationConstraintException"})
_SECRET_HEADERS = ("-customer-key", "authorization", "x-amz-security-token")


class _Moved(Exception):
    """The bucket answered with a redirect: the request is aiobotocore's to follow."""


class _Answer:
    """An HTTP answer as botocore's retry and quota handlers read it."""

    __slots__ = ("content", "headers", "raw", "status_code", "url")

    def __init__(self, url: str, raw: Any, headers: dict[str, str], content: bytes | None):
        self.url = url
        self.raw = raw  # the aiohttp response
        self.status_code: int = raw.status
        self.headers = headers  # lowercase names, as aiobotocore makes them
        self.content = content  # the body, when read (errors, and answers with no stream)


def as_botocore_error(exc: Exception, request: Any, proxy_url: str | None = None) -> Exception:
    """The exception aiobotocore's `AIOHTTPSession.send` raises for `exc` (same classes, so
    botocore's retry rules, `timeouts.describe_failure` and `errors.translate` apply)."""
    url = request.url
    mapped: Exception
    if isinstance(exc, aiohttp.ClientSSLError):
        mapped = bx.SSLError(endpoint_url=url, error=exc)
    elif isinstance(exc, aiohttp.ClientProxyConnectionError | aiohttp.ClientHttpProxyError):
        mapped = bx.ProxyConnectionError(proxy_url=mask_proxy_url(proxy_url or ""), error=exc)
    elif isinstance(
        exc,
        aiohttp.ServerDisconnectedError
        | aiohttp.ClientPayloadError
        | aiohttp.http_exceptions.BadStatusLine,
    ):
        mapped = bx.ConnectionClosedError(error=exc, request=request, endpoint_url=url)
    elif isinstance(exc, aiohttp.ServerTimeoutError):
        if str(exc).lower().startswith("connect"):
            mapped = bx.ConnectTimeoutError(endpoint_url=url, error=exc)
        else:
            mapped = bx.ReadTimeoutError(endpoint_url=url, error=exc)
    elif isinstance(exc, aiohttp.ClientConnectionError | socket.gaierror):
        mapped = bx.EndpointConnectionError(endpoint_url=url, error=exc)
    elif isinstance(exc, asyncio.TimeoutError):
        mapped = bx.ReadTimeoutError(endpoint_url=url, error=exc)
    else:
        mapped = bx.HTTPClientError(error=exc)
    return mapped


class DataPlane:
    """Data requests of one aiobotocore client (whose lifetime bounds this object's)."""

    def __init__(self, client: Any, *, request_timeout: float) -> None:
        meta = client.meta
        self._client = client
        self._events = meta.events
        self._config = meta.config
        self._request_timeout = request_timeout
        self._http = getattr(getattr(client, "_endpoint", None), "http_session", None)
        self._connect = self._config.connect_timeout
        self._read = self._config.read_timeout
        self._operations = {
            name: Operation(meta.service_model.operation_model(name)) for name in DATA_OPERATIONS
        }
        self._signers: dict[tuple[str, str], SigV4Signer] = {}
        self._parser = AioResponseParserFactory().create_parser("rest-xml")
        self._routes = Routes()
        # Only what this layer reproduces exactly: SigV4 with unsigned payloads, on our session.
        s3_config = self._config.s3 or {}
        self.enabled = (
            isinstance(self._http, timeouts.WatchedSession)
            and self._http.shares_connections()
            and self._config.signature_version == "s3v4"
            and s3_config.get("payload_signing_enabled") is False
        )
        if self.enabled:
            self._routes.install(self._events)

    async def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any] | None:
        """What aiobotocore's `operation(**params)` returns, or None when this layer does not
        send the request: parameters botocore would act on, a bucket without a route yet, no
        credentials, or a redirect (botocore's redirector follows it). The caller then sends
        it through aiobotocore."""
        if not self.enabled:
            return None
        op = self._operations[operation]
        request = op.serialize(params)
        if request is None:
            return None
        route = self._routes.get(request.bucket)
        credentials = self._client._get_credentials()
        if route is None or credentials is None:
            return None
        try:
            url, path = route.locate(request.key, request.query)
        except UnicodeEncodeError:
            return None  # botocore raises its own error for such a key
        try:
            return await self._send(op, request, route, url, path, credentials)
        except _Moved:
            self._routes.forget(request.bucket)
            if hasattr(request.body, "seek"):
                request.body.seek(0)
            return None

    def _signer(self, route: Route) -> SigV4Signer:
        signer = self._signers.get((route.region, route.service))
        if signer is None:
            signer = self._signers[(route.region, route.service)] = SigV4Signer(
                route.region, route.service
            )
        return signer

    async def _send(
        self,
        op: Operation,
        request: Serialized,
        route: Route,
        url: str,
        path: str,
        credentials: Any,
    ) -> dict[str, Any]:
        """Attempts until botocore's retry handlers say stop, as botocore's endpoint does."""
        name = op.name
        context: dict[str, Any] = {"client_config": self._config}
        timeouts.note_request(
            context, name, {"Bucket": request.bucket, "Key": request.key}, self._request_timeout
        )
        signer = self._signer(route)
        attempts = 1
        while True:
            context.setdefault("retries", {})["attempt"] = attempts
            frozen = await credentials.get_frozen_credentials()
            headers = dict(request.headers)
            signer.sign(op.method, route.host, path, request.query, headers, frozen, amz_date())
            prepared = AWSPreparedRequest(op.method, url, headers, request.body, op.streams)
            prepared.context = context
            await self._events.emit(f"before-send.s3.{name}", request=prepared)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s %s (%s, data plane, attempt %d) headers: %s", op.method, url,
                          name, attempts, _shown(headers))  # fmt: skip
            answer, error = await self._attempt(op, prepared, context)
            try:
                parsed, response_dict = await self._parse(op, answer)
                await self._events.emit(
                    f"response-received.s3.{name}",
                    response_dict=response_dict,
                    parsed_response=parsed,
                    context=context,
                    exception=error,
                )
                if answer is not None and _moves(answer, parsed):
                    raise _Moved
                responses = await self._events.emit(
                    f"needs-retry.s3.{name}",
                    response=(answer, parsed) if answer is not None else None,
                    endpoint=getattr(self._client, "_endpoint", None),
                    operation=op.model,
                    attempts=attempts,
                    caught_exception=error,
                    request_dict={"url": url, "method": op.method, "context": context},
                )
            except BaseException:
                _close(answer)
                raise
            delay = first_non_none_response(responses)
            if delay is None or delay is False:
                break
            _close(answer)
            await anyio.sleep(delay)
            attempts += 1
            if hasattr(request.body, "seek"):
                request.body.seek(0)  # as botocore's `reset_stream`
        if error is not None:
            await self._events.emit(f"after-call-error.s3.{name}", exception=error, context=context)
            raise error
        assert answer is not None
        assert parsed is not None
        try:
            parsed["ResponseMetadata"]["RetryAttempts"] = attempts - 1
            await self._events.emit(
                f"after-call.s3.{name}", http_response=answer, parsed=parsed, model=op.model,
                context=context,
            )  # fmt: skip
            if answer.status_code >= 300:
                code = parsed.get("Error", {}).get("Code")
                raise self._client.exceptions.from_code(code)(parsed, name)
        except BaseException:
            _close(answer)  # a GET's body is the caller's only once it is returned
            raise
        return parsed

    async def _attempt(
        self, op: Operation, request: Any, context: dict[str, Any]
    ) -> tuple[_Answer | None, Exception | None]:
        """One attempt: the answer (its body read unless it is a GET's data), or the botocore
        exception its failure maps to."""
        assert isinstance(self._http, timeouts.WatchedSession)
        session, proxy = await self._http.connection_pool(request.url)
        headers = {**request.headers, "Accept-Encoding": "identity", "User-Agent": _USER_AGENT}
        try:
            with timeouts.watched_attempt(context, self._read) as read:
                response = await session.request(
                    request.method,
                    URL(request.url, encoded=True),
                    headers=headers,
                    data=request.body,
                    timeout=aiohttp.ClientTimeout(sock_connect=self._connect, sock_read=read),
                    **proxy,
                )
                try:
                    content = None
                    if not op.streams or response.status >= 300:
                        content = await response.read()
                except BaseException:
                    response.close()
                    raise
        except Exception as exc:  # CancelledError is not an Exception: it propagates
            return None, as_botocore_error(exc, request, proxy.get("proxy"))
        answer_headers = {
            k.decode("utf-8").lower(): v.decode("utf-8") for k, v in response.raw_headers
        }
        return _Answer(request.url, response, answer_headers, content), None

    async def _parse(
        self, op: Operation, answer: _Answer | None
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """botocore's parsed response and response dict of an answer: errors by botocore's
        own parser (the same Error, Message and request id as before), success from the
        compiled header table, with aiobotocore's streaming body for a GET's data."""
        if answer is None:
            return None, None
        headers = answer.headers
        response_dict: dict[str, Any] = {
            "headers": headers,
            "status_code": answer.status_code,
            "context": {"operation_name": op.name},
            "body": answer.content,
        }
        if answer.content and answer.status_code < 300:
            # S3 may answer 200 with an error in the body; botocore's hook makes it a 500.
            await self._events.emit(
                f"before-parse.s3.{op.name}", operation_model=op.model,
                response_dict=response_dict, customized_response_dict={},
            )  # fmt: skip
            answer.status_code = response_dict["status_code"]
        if answer.status_code >= 300:
            parsed: dict[str, Any] = await self._parser.parse(response_dict, op.model.output_shape)
            return parsed, response_dict
        parsed = op.parse(headers)
        if op.streams:
            parsed["Body"] = response_dict["body"] = AioStreamingBody(
                answer.raw, headers.get("content-length")
            )
        parsed["ResponseMetadata"] = response_metadata(headers, answer.status_code)
        return parsed, response_dict


def _close(answer: _Answer | None) -> None:
    if answer is not None:
        answer.raw.close()


def _moves(answer: _Answer, parsed: dict[str, Any] | None) -> bool:
    """An answer botocore's region redirector acts on (`S3RegionRedirectorv2`)."""
    if answer.status_code in _REDIRECT_STATUS:
        return True
    error = (parsed or {}).get("Error", {})
    code = error.get("Code")
    if code == "AuthorizationHeaderMalformed":
        return "Region" in error
    return answer.status_code >= 300 and code in _REDIRECT_CODES


def _shown(headers: dict[str, str]) -> str:
    """Header names and values for a DEBUG line, without the key, signature or token."""
    return ", ".join(
        f"{name}: <redacted>" if name.lower().endswith(_SECRET_HEADERS) else f"{name}: {value}"
        for name, value in headers.items()
    )
