"""The metrics and health endpoint: GET /metrics and GET /healthz, over plain HTTP/1.1.

A few dozen lines on anyio instead of prometheus_client's `start_http_server`: that one runs
a thread that nothing stops, and a service must end with no thread left behind. Here each
connection is a task of the watch's own task group, cancelled with it at stop; one request
per connection, a few KiB of head at most, a slow client is dropped after `CLIENT_TIMEOUT`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
from anyio.abc import ByteStream, SocketAttribute, SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.stapled import MultiListener
from prometheus_client import CONTENT_TYPE_LATEST

from ssec_transfer.core.errors import UsageError
from ssec_transfer.service.metrics import Health

log = logging.getLogger(__name__)

CLIENT_TIMEOUT = 10.0  # seconds for a client to send its request and take the answer
MAX_HEAD = 8192  # bytes of request line and headers
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
_TEXT = "text/plain; charset=utf-8"

Response = tuple[int, str, bytes]


class Endpoint:
    """What the HTTP server answers: the metrics page and the health verdict."""

    def __init__(self, metrics: Callable[[], bytes], health: Callable[[], Health]) -> None:
        self.metrics = metrics
        self.health = health

    def respond(self, method: str, target: str) -> Response:
        path = target.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return 405, _TEXT, b"only GET and HEAD\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, self.metrics()
        if path == "/healthz":
            verdict = self.health()
            return (200 if verdict.ok else 503), _TEXT, verdict.message.encode() + b"\n"
        if path == "/":
            return 200, _TEXT, b"ssec-transfer watch: /metrics (Prometheus), /healthz\n"
        return 404, _TEXT, b"not found: try /metrics or /healthz\n"


async def open_listener(address: str, port: int) -> MultiListener[SocketStream]:
    """The listening socket, or a UsageError saying why it cannot be had (port taken, address
    not on this host) before the watch starts."""
    try:
        return await anyio.create_tcp_listener(local_host=address, local_port=port)
    except OSError as exc:
        raise UsageError(
            f"cannot serve metrics on {address}:{port}: {exc.strerror or exc}",
            hint="choose a free --metrics-port, or a --metrics-address of this host "
            "(127.0.0.1 by default)",
        ) from None


def bound_port(listener: MultiListener[SocketStream]) -> int:
    """The port the listener got (the one chosen by the system for port 0)."""
    return int(listener.extra(SocketAttribute.local_port))  # noqa: S610 (anyio, not Django)


async def serve(listener: MultiListener[SocketStream], endpoint: Endpoint) -> None:
    """Answer requests until cancelled; a misbehaving client never ends the server."""

    async def handle(stream: ByteStream) -> None:
        async with stream:
            with anyio.move_on_after(CLIENT_TIMEOUT):
                try:
                    await _exchange(stream, endpoint)
                except Exception as exc:  # a client's mistake or hang-up is its own business
                    log.debug("metrics endpoint: dropped a request: %r", exc)

    async with listener:
        await listener.serve(handle)


async def _exchange(stream: ByteStream, endpoint: Endpoint) -> None:
    head = await BufferedByteReceiveStream(stream).receive_until(b"\r\n\r\n", MAX_HEAD)
    request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = request_line.split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        status, ctype, body = 400, _TEXT, b"bad request\n"
    else:
        status, ctype, body = endpoint.respond(parts[0], parts[1])
    reason = _REASONS.get(status, "Bad Request")
    header = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    await stream.send(header if parts[:1] == ["HEAD"] else header + body)
