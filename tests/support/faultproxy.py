"""A fault-injection HTTPS proxy for tests: the real S3 server, but with a bad network.

The engine must survive connection resets, stalls, 500/503 answers, short bodies and flipped
bytes. Real servers rarely do any of that on demand, so this proxy sits on 127.0.0.1 between
a client and the real HTTPS server, terminates TLS on both sides (its own throwaway CA towards
the client, the server's CA towards the server) and understands just enough HTTP/1.1 to find
where each request and response starts and ends. Faults are applied per request, either by a
script ("truncate the 3rd GET") or by a seeded `random.Random`, so every run is reproducible.

Usage, from sync or async tests::

    with FaultProxy(server.endpoint_url, server.ca_bundle, FaultPlan(seed=1, reset=0.05)) as p:
        client = make_client(endpoint_url=p.endpoint_url, verify=str(p.ca_bundle))
        ...
        p.plan = FaultPlan.scripted(ScriptedFault("truncate", method="GET", nth=3))
        print(p.stats.injected())

    async with FaultProxy(...) as p:  # same, on the caller's event loop
        ...

The proxy sees SSE-C key headers in clear: it never logs or stores headers, only method and path.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import random
import shutil
import socket
import ssl
import struct
import tempfile
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from contextlib import AbstractContextManager, AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, get_args
from urllib.parse import urlsplit

import anyio
import anyio.from_thread
from anyio.abc import ByteStream, SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.tls import TLSStream

from ssec_transfer.servers.tls import make_tls

log = logging.getLogger(__name__)

Direction = Literal["request", "response"]
FaultKind = Literal["reset", "stall", "truncate", "corrupt", "internal_error", "slowdown"]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
_BODY_KINDS = frozenset({"reset", "stall", "corrupt"})  # may hit either direction
_ERROR_KINDS: dict[str, tuple[int, str, str, str]] = {
    "internal_error": (
        500,
        "Internal Server Error",
        "InternalError",
        "We encountered an internal error. Please try again.",
    ),
    "slowdown": (503, "Slow Down", "SlowDown", "Please reduce your request rate."),
}

_MAX_HEAD = 64 * 1024
_MAX_LINE = 8 * 1024
_CHUNK = 64 * 1024
# Everything a dropped or broken peer can raise on a stream: the end of that connection.
_NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    anyio.EndOfStream,
    anyio.IncompleteRead,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.DelimiterNotFound,
    ssl.SSLError,
    OSError,
    TimeoutError,
)


# --------------------------------------------------------------------------------------------
# Plans: what to break, and when
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScriptedFault:
    """Fault the `nth` request (1-based, counted since the plan was set) that matches `method`
    and `path_contains`. Deterministic, for tests that need one exact failure."""

    kind: FaultKind
    nth: int = 1
    method: str | None = None
    path_contains: str | None = None
    direction: Direction = "response"  # for reset/stall/corrupt; truncate is response-only
    at: float = 0.5  # where in the body, as a fraction of its length
    stall_seconds: float | None = None  # None: the plan's stall_seconds

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.nth < 1:
            raise ValueError("nth counts from 1")
        if not 0.0 <= self.at < 1.0:
            raise ValueError("at is a fraction in [0, 1)")
        if self.kind == "truncate" and self.direction != "response":
            raise ValueError("only response bodies can be truncated (a short request is a reset)")

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method.upper() == method) and (
            self.path_contains is None or self.path_contains in path
        )


Probability = float | Mapping[Direction, float]


@dataclass(frozen=True)
class FaultPlan:
    """Which faults to inject. Random faults: each eligible request draws one fault (or none)
    from a `random.Random(seed)`, so the same sequence of requests gets the same faults.

    reset/stall/corrupt take a probability (the fault lands in the request body when the
    request has one and the RNG picks it, else in the response body) or a mapping per
    direction, e.g. ``reset={"request": 0.05}`` for upload resets only. Random faults apply
    only to `only_methods` (all when None), after `only_after_requests` requests under this
    plan, and at most `max_faults` times. `script` entries take precedence over random ones.
    """

    seed: int = 0
    reset: Probability = 0.0
    stall: Probability = 0.0
    corrupt: Probability = 0.0
    truncate: float = 0.0
    internal_error: float = 0.0
    slowdown: float = 0.0
    stall_seconds: float = 2.0
    only_methods: Collection[str] | None = None  # normalised to an upper-case frozenset
    only_after_requests: int = 0
    max_faults: int | None = None
    script: tuple[ScriptedFault, ...] = ()

    def __post_init__(self) -> None:
        if self.only_methods is not None:
            methods = (
                {self.only_methods} if isinstance(self.only_methods, str) else self.only_methods
            )
            object.__setattr__(self, "only_methods", frozenset(m.upper() for m in methods))
        object.__setattr__(self, "script", tuple(self.script))
        total = 0.0
        for kind in FAULT_KINDS:
            spec = getattr(self, kind)
            if isinstance(spec, Mapping):
                if kind not in _BODY_KINDS:
                    raise ValueError(f"{kind} has no direction; give a plain probability")
                if set(spec) - {"request", "response"}:
                    raise ValueError(f"{kind}: directions are 'request' and 'response'")
                values = list(spec.values())
            else:
                values = [spec]
            if any(not 0.0 <= v <= 1.0 for v in values):
                raise ValueError(f"{kind}: probabilities are in [0, 1]")
            total += sum(values)
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault probabilities add up to {total:.3f} > 1")
        if self.stall_seconds < 0:
            raise ValueError("stall_seconds must be >= 0")

    @classmethod
    def scripted(cls, *faults: ScriptedFault, stall_seconds: float = 2.0) -> FaultPlan:
        """A plan with only scripted faults (no randomness at all)."""
        return cls(script=faults, stall_seconds=stall_seconds)

    def _table(self, has_body: bool) -> list[tuple[FaultKind, Direction | None, float]]:
        """(kind, direction or None = pick among applicable, probability), in a fixed order."""
        rows: list[tuple[FaultKind, Direction | None, float]] = []
        for kind in FAULT_KINDS:
            spec = getattr(self, kind)
            if isinstance(spec, Mapping):
                for direction in ("request", "response"):
                    if direction == "request" and not has_body:
                        continue
                    rows.append((kind, direction, float(spec.get(direction, 0.0))))
            elif kind in _BODY_KINDS:
                rows.append((kind, None, float(spec)))
            else:
                rows.append((kind, "response", float(spec)))
        return rows


NO_FAULTS = FaultPlan()


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


@dataclass
class FaultRecord:
    """One fault decided for one request. `applied` is False when it could not land (e.g.
    corrupting an empty body) or the exchange ended before reaching its offset."""

    request: int  # number of the request under the plan that chose it (1-based)
    kind: FaultKind
    direction: Direction
    method: str
    path: str  # without the query string
    source: Literal["script", "random"]
    offset: int | None = None  # body offset where it landed; None: before the head / no body
    applied: bool = False

    def signature(self) -> tuple[Any, ...]:
        return (
            self.request,
            self.kind,
            self.direction,
            self.method,
            self.path,
            self.offset,
            self.applied,
        )


@dataclass
class ProxyStats:
    """What went through the proxy. Written by the proxy's event loop, read by tests."""

    requests: int = 0
    connections: int = 0
    upstream_connections: int = 0
    methods: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    bytes_to_upstream: int = 0
    bytes_to_client: int = 0
    faults: list[FaultRecord] = field(default_factory=list)
    tls_failures: int = 0  # client handshakes that failed
    upstream_failures: int = 0  # connections to the server that could not be opened
    errors: list[str] = field(default_factory=list)  # unexpected proxy exceptions (bugs)

    def injected(self) -> Counter[str]:
        """Faults that actually landed, per kind."""
        return Counter(f.kind for f in self.faults if f.applied)

    def fault_signatures(self) -> list[tuple[Any, ...]]:
        """Comparable across runs: equal lists mean the same faults hit the same requests."""
        return [f.signature() for f in self.faults]

    def summary(self) -> dict[str, Any]:
        """The figures a test report quotes."""
        return {
            "requests": self.requests,
            "connections": self.connections,
            "faults_injected": dict(self.injected()),
            "faults_not_landed": sum(1 for f in self.faults if not f.applied),
            "statuses": dict(self.statuses),
            "bytes_to_upstream": self.bytes_to_upstream,
            "bytes_to_client": self.bytes_to_client,
        }


# --------------------------------------------------------------------------------------------
# HTTP/1.1 framing
# --------------------------------------------------------------------------------------------


class _ProtocolError(Exception):
    """The peer sent something this proxy cannot frame: drop the connection."""


class _Cut(Exception):
    """A fault ends the exchange: 'reset' both sides (RST) or 'close' the client (FIN)."""

    def __init__(self, mode: Literal["reset", "close"]) -> None:
        super().__init__(mode)
        self.mode = mode


@dataclass
class _Head:
    """A request or response head, kept verbatim so SigV4-signed headers stay intact."""

    lines: list[str]
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "

    @classmethod
    def parse(cls, raw: bytes) -> _Head:
        lines = raw.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name[0] in " \t" or name != name.strip():
                raise _ProtocolError("malformed header line")
            key = name.lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        return cls(lines, headers)

    @property
    def start(self) -> str:
        return self.lines[0]

    def tokens(self, name: str) -> list[str]:
        return [t.strip().lower() for t in self.headers.get(name, "").split(",") if t.strip()]

    def raw(self) -> bytes:
        return ("\r\n".join(self.lines) + "\r\n\r\n").encode("latin-1")

    def with_connection_close(self) -> _Head:
        lines = [self.lines[0]] + [
            line for line in self.lines[1:] if line.partition(":")[0].lower() != "connection"
        ]
        return _Head([*lines, "Connection: close"], {**self.headers, "connection": "close"})


@dataclass(frozen=True)
class _Framing:
    """How a body ends: a known length, chunked transfer coding, or the connection closing."""

    mode: Literal["length", "chunked", "close"]
    length: int = 0

    @property
    def empty(self) -> bool:
        return self.mode == "length" and self.length == 0


def _body_framing(head: _Head) -> _Framing | None:
    te = head.tokens("transfer-encoding")
    if te:
        if te[-1] != "chunked":
            raise _ProtocolError("transfer coding without chunked")
        return _Framing("chunked")
    if "content-length" in head.headers:
        values = {v.strip() for v in head.headers["content-length"].split(",")}
        if len(values) != 1 or not next(iter(values)).isdigit():
            raise _ProtocolError("bad Content-Length")
        return _Framing("length", int(values.pop()))
    return None


def _request_framing(head: _Head) -> _Framing:
    return _body_framing(head) or _Framing("length", 0)


def _response_framing(method: str, status: int, head: _Head) -> _Framing:
    if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
        return _Framing("length", 0)
    return _body_framing(head) or _Framing("close")


async def _read_head(reader: BufferedByteReceiveStream) -> _Head | None:
    """The next head, or None if the peer closed cleanly between messages."""
    try:
        raw = await reader.receive_until(b"\r\n\r\n", _MAX_HEAD)
    except anyio.IncompleteRead:
        if reader.buffer.strip(b"\r\n"):
            raise
        return None
    return _Head.parse(raw.lstrip(b"\r\n"))


@dataclass
class _Request:
    method: str
    target: str
    version: str
    head: _Head

    @classmethod
    def parse(cls, head: _Head) -> _Request:
        parts = head.start.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _ProtocolError("malformed request line")
        return cls(parts[0].upper(), parts[1], parts[2], head)

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def wants_close(self) -> bool:
        return self.version == "HTTP/1.0" or "close" in self.head.tokens("connection")


def _status(head: _Head) -> int:
    parts = head.start.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise _ProtocolError("malformed status line")
    return int(parts[1])


# --------------------------------------------------------------------------------------------
# Faults in flight
# --------------------------------------------------------------------------------------------


@dataclass
class _ActiveFault:
    record: FaultRecord
    at: float
    stall_seconds: float
    offset: int | None = None
    done: bool = False

    @property
    def kind(self) -> FaultKind:
        return self.record.kind

    @property
    def direction(self) -> Direction:
        return self.record.direction

    def resolve(self, length: int) -> None:
        """Place the fault inside a body of `length` bytes (or its first chunk)."""
        if self.offset is None and length > 0:
            self.offset = min(int(self.at * length), length - 1)

    async def fire_at_boundary(self) -> None:
        """Apply where there are no body bytes to hit: before a head or before a body's end."""
        if self.done:
            return
        self.done = True
        if self.kind == "corrupt":
            return  # nothing to flip: recorded as not applied
        self.record.applied = True
        self.record.offset = self.offset
        log.info("fault %s %s %s (no body bytes)", self.kind, self.record.method, self.record.path)
        if self.kind == "stall":
            await anyio.sleep(self.stall_seconds)
        elif self.kind == "reset":
            raise _Cut("reset")
        elif self.kind == "truncate":
            raise _Cut("close")


class _PlanState:
    """A plan plus its RNG and counters; replaced as a whole when tests set `proxy.plan`."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.seen = 0
        self.random_faults = 0
        self.script_counts = [0] * len(plan.script)

    def decide(self, method: str, path: str, has_body: bool) -> _ActiveFault | None:
        self.seen += 1
        plan = self.plan
        firing = None
        for i, scripted in enumerate(plan.script):  # count every match, then fire the first
            if scripted.matches(method, path):
                self.script_counts[i] += 1
                if self.script_counts[i] == scripted.nth and firing is None:
                    firing = scripted
        if firing is not None:
            direction = firing.direction if firing.kind in _BODY_KINDS else "response"
            return self._make(
                firing.kind, direction, method, path, "script", firing.at, firing.stall_seconds
            )
        if plan.only_methods is not None and method not in plan.only_methods:
            return None
        if self.seen <= plan.only_after_requests:
            return None
        # Always three draws per eligible request, so one fault never shifts the next ones.
        u, v, at = self.rng.random(), self.rng.random(), self.rng.random()
        if plan.max_faults is not None and self.random_faults >= plan.max_faults:
            return None
        applicable: list[Direction] = ["request", "response"] if has_body else ["response"]
        for kind, where, p in plan._table(has_body):
            if u < p:
                chosen = where or applicable[int(v * len(applicable))]
                self.random_faults += 1
                return self._make(kind, chosen, method, path, "random", at, None)
            u -= p
        return None

    def _make(
        self,
        kind: FaultKind,
        direction: Direction,
        method: str,
        path: str,
        source: Literal["script", "random"],
        at: float,
        stall_seconds: float | None,
    ) -> _ActiveFault:
        record = FaultRecord(self.seen, kind, direction, method, path, source)
        stall = self.plan.stall_seconds if stall_seconds is None else stall_seconds
        return _ActiveFault(record, at, stall)


# --------------------------------------------------------------------------------------------
# Connections
# --------------------------------------------------------------------------------------------


def _set_reset_on_close(stream: ByteStream) -> None:
    """SO_LINGER 0: closing the socket sends RST instead of FIN, like a crashed peer."""
    try:
        sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)  # noqa: S610 - anyio, not Django
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except (OSError, anyio.TypedAttributeLookupError):
        pass


async def _close(stream: TLSStream | None, mode: Literal["abort", "reset", "graceful"]) -> None:
    """Close without a TLS closing handshake. 'graceful' half-closes TCP first, so bytes still
    buffered reach the peer, and gives it a moment to hang up; 'reset' sends RST."""
    if stream is None:
        return
    if mode == "reset":
        _set_reset_on_close(stream)
    elif mode == "graceful":
        raw = stream.transport_stream
        try:
            await raw.send_eof()  # asyncio writes what is buffered, then FIN
            with anyio.move_on_after(2.0):
                while await raw.receive():
                    pass
        except _NETWORK_ERRORS:
            pass
    await anyio.aclose_forcefully(stream)


class _Connection:
    """One client connection and the upstream connection serving it (opened lazily)."""

    def __init__(self, client: TLSStream) -> None:
        self.client = client
        self.client_reader = BufferedByteReceiveStream(client)
        self.upstream: TLSStream | None = None
        self.upstream_reader: BufferedByteReceiveStream | None = None

    async def drop_upstream(self, mode: Literal["abort", "reset", "graceful"] = "abort") -> None:
        upstream, self.upstream, self.upstream_reader = self.upstream, None, None
        await _close(upstream, mode)


@dataclass
class _Progress:
    complete: bool = False  # the whole body has been read from its sender


# --------------------------------------------------------------------------------------------
# The proxy
# --------------------------------------------------------------------------------------------


class FaultProxy:
    """TLS-terminating HTTP/1.1 proxy on 127.0.0.1 that injects faults per request.

    Use as `with` (runs its own event loop in a thread; for sync tests and for async tests
    that want the proxy off their loop) or `async with` (runs on the caller's loop).
    """

    def __init__(
        self,
        upstream_url: str,
        upstream_ca: str | Path,
        plan: FaultPlan | None = None,
        *,
        connect_timeout: float = 10.0,
        response_timeout: float = 300.0,
        idle_timeout: float = 120.0,
    ) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"upstream must be https://HOST[:PORT], not {upstream_url!r}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 443
        self.upstream_ca = Path(upstream_ca)
        self.connect_timeout = connect_timeout
        self.response_timeout = response_timeout
        self.idle_timeout = idle_timeout
        self.stats = ProxyStats()
        self._lock = threading.Lock()
        self._state = _PlanState(plan or NO_FAULTS)
        self._port: int | None = None
        self._ca_bundle: Path | None = None
        self._stack: AsyncExitStack | None = None
        self._portal_cm: AbstractContextManager[anyio.from_thread.BlockingPortal] | None = None
        self._sync_cm: AbstractContextManager[FaultProxy] | None = None
        self._server_ctx: ssl.SSLContext | None = None
        self._client_ctx: ssl.SSLContext | None = None
        self._request_ids = 0

    # -- public API -------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        if self._port is None:
            raise RuntimeError("the proxy is not running")
        return f"https://127.0.0.1:{self._port}"

    @property
    def ca_bundle(self) -> Path:
        """The proxy's own CA: what clients of the proxy verify with."""
        if self._ca_bundle is None:
            raise RuntimeError("the proxy is not running")
        return self._ca_bundle

    @property
    def plan(self) -> FaultPlan:
        return self._state.plan

    @plan.setter
    def plan(self, plan: FaultPlan) -> None:
        """A new plan starts afresh: new RNG from its seed, request and script counts at 0."""
        with self._lock:
            self._state = _PlanState(plan)

    def reset_stats(self) -> ProxyStats:
        """Start new statistics; returns the old ones."""
        old, self.stats = self.stats, ProxyStats()
        return old

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            tmp = Path(tempfile.mkdtemp(prefix="faultproxy-"))
            stack.callback(shutil.rmtree, tmp, True)
            tls = make_tls(tmp / "tls")
            server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            server_ctx.load_cert_chain(tls.cert, tls.key)
            self._server_ctx = server_ctx
            self._client_ctx = ssl.create_default_context(cafile=str(self.upstream_ca))
            listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
            stack.push_async_callback(listener.aclose)
            task_group = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(task_group.cancel_scope.cancel)  # runs first on exit
            task_group.start_soon(listener.serve, self._handle)
            port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 - anyio
            self._port = int(port)
            self._ca_bundle = tls.ca_cert
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        self._port = self._ca_bundle = None
        if stack is not None:
            await stack.aclose()

    def __enter__(self) -> Self:
        portal_cm = anyio.from_thread.start_blocking_portal("asyncio", name="faultproxy")
        portal = portal_cm.__enter__()
        try:
            sync_cm = portal.wrap_async_context_manager(self)
            sync_cm.__enter__()
        except BaseException as exc:
            portal_cm.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._portal_cm, self._sync_cm = portal_cm, sync_cm
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        portal_cm, sync_cm = self._portal_cm, self._sync_cm
        self._portal_cm = self._sync_cm = None
        try:
            if sync_cm is not None:
                sync_cm.__exit__(exc_type, exc, tb)
        finally:
            if portal_cm is not None:
                portal_cm.__exit__(None, None, None)

    # -- per connection -----------------------------------------------------------------------

    async def _handle(self, raw: SocketStream) -> None:
        """Serve one client connection; never raises (one bad connection must not stop the
        proxy), except for cancellation when the proxy shuts down."""
        self.stats.connections += 1
        assert self._server_ctx is not None
        try:
            with anyio.fail_after(10):
                client = await TLSStream.wrap(
                    raw, server_side=True, ssl_context=self._server_ctx, standard_compatible=False
                )
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await anyio.aclose_forcefully(raw)
            if not isinstance(exc, Exception):
                raise  # cancellation: the proxy is stopping
            self.stats.tls_failures += 1
            return
        conn = _Connection(client)
        client_mode: Literal["abort", "reset", "graceful"] = "abort"
        upstream_mode: Literal["abort", "reset", "graceful"] = "abort"
        try:
            if await self._serve(conn):
                client_mode = "graceful"
        except BaseException as exc:
            leaves = list(_leaves(exc))
            cuts = [e for e in leaves if isinstance(e, _Cut)]
            if cuts:
                client_mode = "reset" if cuts[0].mode == "reset" else "graceful"
                upstream_mode = "reset" if cuts[0].mode == "reset" else "abort"
            for e in leaves:
                if not isinstance(e, (_Cut, _ProtocolError, *_NETWORK_ERRORS)):
                    if not isinstance(e, Exception):
                        raise  # cancellation: the proxy is stopping
                    self.stats.errors.append(repr(e))
                    log.exception("fault proxy: unexpected error", exc_info=e)
        finally:
            with anyio.CancelScope(shield=True):
                await conn.drop_upstream(upstream_mode)
                await _close(conn.client, client_mode)

    async def _serve(self, conn: _Connection) -> bool:
        """Requests on one connection, in order. True: close gracefully."""
        while True:
            head = await self._next_request_head(conn)
            if head is None:
                return False
            request = _Request.parse(head)
            framing = _request_framing(head)
            self.stats.requests += 1
            self.stats.methods[request.method] += 1
            with self._lock:
                fault = self._state.decide(request.method, request.path, not framing.empty)
            if fault is not None:
                self.stats.faults.append(fault.record)
                log.info(
                    "fault %s/%s planned for %s %s",
                    fault.kind,
                    fault.direction,
                    request.method,
                    request.path,
                )
            if fault is not None and fault.kind in _ERROR_KINDS:
                keep = await self._answer_error(conn, request, framing, fault)
            else:
                keep = await self._forward(conn, request, framing, fault)
            if not keep:
                return True

    async def _next_request_head(self, conn: _Connection) -> _Head | None:
        """Wait for the client's next request; meanwhile, notice an upstream hanging up an
        idle connection, so the next request goes out on a fresh one instead of failing."""
        with anyio.move_on_after(self.idle_timeout):
            if conn.upstream_reader is None:
                return await _read_head(conn.client_reader)
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch_idle_upstream, conn)
                head = await _read_head(conn.client_reader)
                tg.cancel_scope.cancel()
            return head
        return None

    async def _watch_idle_upstream(self, conn: _Connection) -> None:
        reader = conn.upstream_reader
        if reader is None:
            return
        with contextlib.suppress(*_NETWORK_ERRORS):
            await reader.receive()  # between responses: only EOF or a stray byte can come
        if conn.upstream_reader is reader:
            await conn.drop_upstream()

    async def _ensure_upstream(self, conn: _Connection) -> tuple[TLSStream, Any]:
        if conn.upstream is None or conn.upstream_reader is None:
            try:
                with anyio.fail_after(self.connect_timeout):
                    upstream = await anyio.connect_tcp(
                        self.upstream_host,
                        self.upstream_port,
                        ssl_context=self._client_ctx,
                        tls_hostname=self.upstream_host,
                        tls_standard_compatible=False,
                    )
            except Exception:
                self.stats.upstream_failures += 1  # the client just sees its connection close
                raise
            assert isinstance(upstream, TLSStream)
            self.stats.upstream_connections += 1
            conn.upstream, conn.upstream_reader = upstream, BufferedByteReceiveStream(upstream)
        return conn.upstream, conn.upstream_reader

    async def _forward(
        self,
        conn: _Connection,
        request: _Request,
        framing: _Framing,
        fault: _ActiveFault | None,
    ) -> bool:
        """Relay one exchange. The request body and the response run concurrently, so that
        `Expect: 100-continue` and early answers from the server pass through unchanged."""
        upstream, _ = await self._ensure_upstream(conn)
        request_fault = fault if fault is not None and fault.direction == "request" else None
        if request_fault is not None and framing.empty:
            await request_fault.fire_at_boundary()
        await self._send_upstream(upstream, request.head.raw())
        progress = _Progress(complete=framing.empty)
        async with anyio.create_task_group() as tg:
            if not framing.empty:
                tg.start_soon(
                    self._relay_body,
                    conn.client_reader,
                    upstream.send,
                    framing,
                    request_fault,
                    progress,
                    "up",
                )
            keep = await self._relay_response(conn, request, fault, progress)
            if not progress.complete:
                tg.cancel_scope.cancel()
        if not keep:
            await conn.drop_upstream()
        return keep

    async def _send_upstream(self, upstream: TLSStream, data: bytes) -> None:
        await upstream.send(data)
        self.stats.bytes_to_upstream += len(data)

    async def _send_client(self, conn: _Connection, data: bytes) -> None:
        await conn.client.send(data)
        self.stats.bytes_to_client += len(data)

    async def _relay_response(
        self,
        conn: _Connection,
        request: _Request,
        fault: _ActiveFault | None,
        progress: _Progress,
    ) -> bool:
        reader = conn.upstream_reader
        assert reader is not None
        for _ in range(100):  # interim (1xx) answers, then the final one
            with anyio.fail_after(self.response_timeout):
                head = await _read_head(reader)
            if head is None:
                raise anyio.EndOfStream  # the server hung up without answering
            status = _status(head)
            if not 100 <= status < 200 or status == 101:
                break
            await self._send_client(conn, head.raw())  # 100 Continue and friends
        else:
            raise _ProtocolError("too many interim responses")
        framing = _response_framing(request.method, status, head)
        keep = not (
            request.wants_close or "close" in head.tokens("connection") or framing.mode == "close"
        )
        if not progress.complete:
            # The server answered before the whole request body arrived: this connection
            # cannot carry another request.
            keep = False
            head = head.with_connection_close()
        response_fault = fault if fault is not None and fault.direction == "response" else None
        if response_fault is not None and framing.empty:
            await response_fault.fire_at_boundary()
        self.stats.statuses[status] += 1
        await self._send_client(conn, head.raw())

        async def to_client(data: bytes) -> None:
            await conn.client.send(data)

        await self._relay_body(reader, to_client, framing, response_fault, _Progress(), "down")
        return keep

    async def _relay_body(
        self,
        src: BufferedByteReceiveStream,
        send: Callable[[bytes], Awaitable[None]] | None,
        framing: _Framing,
        fault: _ActiveFault | None,
        progress: _Progress,
        way: Literal["up", "down"],
    ) -> None:
        """Copy one body, keeping its framing; `send=None` discards it. Faults land at a body
        offset (chunk framing itself is never corrupted)."""
        pos = 0

        async def out(data: bytes) -> None:
            if data and send is not None:
                await send(data)
                if way == "up":
                    self.stats.bytes_to_upstream += len(data)
                else:
                    self.stats.bytes_to_client += len(data)

        async def data_out(data: bytes) -> None:
            nonlocal pos
            start, pos = pos, pos + len(data)
            if fault is None or fault.done or fault.offset is None:
                await out(data)
                return
            k = fault.offset - start
            if not 0 <= k < len(data):
                await out(data)
                return
            fault.done = fault.record.applied = True
            fault.record.offset = fault.offset
            log.info("fault %s at byte %d of %s", fault.kind, fault.offset, fault.record.path)
            if fault.kind == "corrupt":
                flipped = bytearray(data)
                flipped[k] ^= 0xFF
                await out(bytes(flipped))
            elif fault.kind == "stall":
                await out(data[:k])
                await anyio.sleep(fault.stall_seconds)
                await out(data[k:])
            else:
                await out(data[:k])
                raise _Cut("reset" if fault.kind == "reset" else "close")

        if framing.mode == "length":
            if fault is not None:
                fault.resolve(framing.length)
            while pos < framing.length:
                data = await src.receive(min(_CHUNK, framing.length - pos))
                if pos + len(data) >= framing.length:
                    progress.complete = True
                await data_out(data)
        elif framing.mode == "chunked":
            while True:
                line = await src.receive_until(b"\r\n", _MAX_LINE)
                size_text = line.split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise _ProtocolError("bad chunk size") from None
                if fault is not None:
                    fault.resolve(size)
                if size == 0:
                    trailer = [line]
                    while True:
                        trailer_line = await src.receive_until(b"\r\n", _MAX_LINE)
                        trailer.append(trailer_line)
                        if not trailer_line:
                            break
                    progress.complete = True
                    if fault is not None:
                        await fault.fire_at_boundary()
                    await out(b"\r\n".join(trailer) + b"\r\n")
                    break
                await out(line + b"\r\n")
                left = size
                while left:
                    data = await src.receive(min(_CHUNK, left))
                    left -= len(data)
                    await data_out(data)
                if await src.receive_exactly(2) != b"\r\n":
                    raise _ProtocolError("chunk not followed by CRLF")
                await out(b"\r\n")
        else:  # delimited by the sender closing the connection
            while True:
                try:
                    data = await src.receive(_CHUNK)
                except anyio.EndOfStream:
                    break
                if fault is not None:
                    fault.resolve(len(data))
                await data_out(data)
            progress.complete = True
            if fault is not None:
                await fault.fire_at_boundary()

    async def _answer_error(
        self,
        conn: _Connection,
        request: _Request,
        framing: _Framing,
        fault: _ActiveFault,
    ) -> bool:
        """Answer like a busy S3 server, without bothering the real one. The request body is
        read and dropped first, so the connection stays usable."""
        status, reason, code, message = _ERROR_KINDS[fault.kind]
        if not framing.empty:
            if "100-continue" in request.head.tokens("expect"):
                await self._send_client(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
            await self._relay_body(conn.client_reader, None, framing, None, _Progress(), "up")
        self._request_ids += 1
        request_id = f"FAULTPROXY{self._request_ids:08d}"
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<Resource>{_xml_escape(request.path)}</Resource>"
            f"<RequestId>{request_id}</RequestId></Error>"
        ).encode()
        if request.method == "HEAD":
            body = b""
        keep = not request.wants_close
        head = (
            f"HTTP/1.1 {status} {reason}\r\n"
            f"Date: {email.utils.formatdate(usegmt=True)}\r\n"
            f"x-amz-request-id: {request_id}\r\n"
            "Content-Type: application/xml\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n"
        ).encode()
        await self._send_client(conn, head + body)
        fault.done = fault.record.applied = True
        self.stats.statuses[status] += 1
        log.info(
            "fault %s: answered %d for %s %s", fault.kind, status, request.method, request.path
        )
        return keep


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc
