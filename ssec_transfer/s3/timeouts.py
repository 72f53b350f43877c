"""Nothing waits forever: the bounds on every request, a line on stderr while retrying, and
what a request that got no answer leaves for its error message.

Per attempt (botocore makes up to `--max-attempts` of them; the data plane, `s3.dataplane`,
makes its attempts through the same hooks and `watched_attempt`, so all of this holds there):

- the connect timeout bounds the TCP connection and the TLS handshake (aiohttp's sock_connect);
- the read timeout bounds every silence of the server: waiting for its answer, or between two
  reads of a body (aiohttp's sock_read), and, since aiohttp has no write timeout, waiting for
  it to take the next slice of a request body (`bounded_body`, used by `s3.bodies`).

Per request, across its attempts: once it has gone `request_timeout` seconds without progress
(a byte of a body moved either way, or an answer arrived), botocore starts no new attempt,
and an attempt's silence is cut short where the bound would be passed. The clock is the
request's own (`core.retry.ProgressClock`), or the part's when a part loop (`s3.requests`)
runs the request, so silence adds up over a part's requests while a large part that keeps
moving on a slow link is never cut. With the defaults (connect 10 s, read 60 s, request
120 s) a server that never answers is reported after two attempts, two minutes; one that
never completes a connection after five attempts of 10 s, about a minute.

Each retry after a network failure is announced at WARNING on the `ssec_transfer` logger
("no answer from HOST for 60 s (HeadObject s3://b/k), attempt 2 of 5"); retries after an
HTTP answer (503 SlowDown, 500) at INFO. Nothing here sees or logs a request's headers.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import anyio
import botocore.exceptions as bx
from aiobotocore.httpsession import AIOHTTPSession

from ssec_transfer.core.retry import ProgressClock, current_progress

log = logging.getLogger(__name__)

# Keys of botocore's request context (one dict per API call, shared by its attempts).
_CLOCK = "ssec_transfer.clock"
_FAILURE = "ssec_transfer.failure"
_TARGET = "ssec_transfer.target"
_OWN_CLOCK = "ssec_transfer.own_clock"
_LIMIT = "ssec_transfer.request_timeout"
_ATTEMPTS_ATTR = "_ssec_transfer_attempts"
# An attempt that starts when (after botocore's backoff) the bound is all but spent still gets
# this long to answer, rather than failing before it is sent.
_LAST_CHANCE = 1.0

_WRITE_TIMEOUT: ContextVar[float | None] = ContextVar("ssec_transfer_write_timeout", default=None)


class WriteStalled(TimeoutError):
    """The server took no byte of a request body for the read timeout. aiohttp hands a
    TimeoutError from the body writer to the request, which botocore reports as a
    ReadTimeoutError and retries like any other."""


class BodyWatch:
    """What `bounded_body` yields: call it with the bytes written so far after each slice."""

    __slots__ = ("_before", "_clock", "_scope", "_timeout")

    def __init__(self, scope: anyio.CancelScope, timeout: float | None) -> None:
        self._scope = scope
        self._timeout = timeout
        self._clock = current_progress()
        self._before = time.monotonic()

    def __call__(self, upto: int) -> None:
        if self._timeout is not None:
            self._scope.deadline = anyio.current_time() + self._timeout
        if self._clock is not None:
            now = time.monotonic()
            self._clock.sent(upto, now - self._before)
            self._before = now

    def hold(self) -> None:
        """A wait of our own begins (the bandwidth limit): the server is not expected to take
        anything until the next call, which re-arms the timer and does not count the wait as
        the server's silence."""
        self._scope.deadline = math.inf


@contextmanager
def bounded_body() -> Iterator[BodyWatch]:
    """Around the writing of one request body, slice by slice: call what it yields with the
    number of bytes written so far after each slice (and after any wait of our own, such as
    reading the next slice from disk). Each slice must be taken within the read timeout of the
    attempt the body belongs to, else `WriteStalled`; the bytes taken are reported to the
    request's clock (`ProgressClock.sent`). One timer re-armed per slice (about 2 us), not one
    per write: a GiB is thousands of slices."""
    timeout = _WRITE_TIMEOUT.get()
    try:
        with anyio.fail_after(timeout) as scope:
            yield BodyWatch(scope, timeout)
    except TimeoutError:
        raise WriteStalled(f"the server took no data for {timeout:g} s") from None


@contextmanager
def _write_timeout(seconds: float | None) -> Iterator[None]:
    token = _WRITE_TIMEOUT.set(seconds)
    try:
        yield
    finally:
        _WRITE_TIMEOUT.reset(token)


# -- what went wrong with one attempt ----------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """One failed attempt, as the retry line says it."""

    text: str  # "no answer from HOST for 60 s"
    level: int  # WARNING for the network, INFO for an HTTP answer


@dataclass(frozen=True)
class Attempts:
    """What botocore's attempts at one request came to; kept on the exception it raises, so
    its translation (`s3.errors.translate`) can say what happened and what to change."""

    host: str
    attempts: int
    silent: float  # seconds without progress when it gave up
    connect_timeout: float
    read_timeout: float
    request_timeout: float
    cut: bool  # stopped by request_timeout, not by running out of attempts


def attempts_of(exc: BaseException) -> Attempts | None:
    value = getattr(exc, _ATTEMPTS_ATTR, None)
    return value if isinstance(value, Attempts) else None


def host_of(url: object) -> str:
    """HOST:PORT of a URL (a str, or the yarl URL aiohttp's errors carry)."""
    return urlsplit(str(url) if url else "").netloc or "the endpoint"


def _seconds(config: Any, name: str) -> float:
    value = getattr(config, name, None)
    return float(value) if value is not None else 0.0


def describe_failure(exc: BaseException, host: str, connect: float, read: float) -> Failure:
    """The retry line's account of an exception from one attempt that waited up to `connect`
    seconds to connect and `read` seconds for each byte."""
    if isinstance(exc, bx.ConnectTimeoutError):
        return Failure(f"no answer from {host} for {connect:g} s while connecting", logging.WARNING)
    if isinstance(exc, bx.ReadTimeoutError):
        if isinstance(exc.kwargs.get("error"), WriteStalled):
            return Failure(f"{host} took no data for {read:g} s", logging.WARNING)
        return Failure(f"no answer from {host} for {read:g} s", logging.WARNING)
    if isinstance(exc, bx.EndpointConnectionError):
        error = exc.kwargs.get("error")
        reason = getattr(error, "strerror", None) or type(error or exc).__name__
        return Failure(f"cannot connect to {host} ({reason})", logging.WARNING)
    error = getattr(exc, "kwargs", {}).get("error")
    name = type(error).__name__ if error is not None else type(exc).__name__
    return Failure(f"the connection to {host} broke ({name})", logging.WARNING)


def _describe_answer(response: Any, host: str) -> Failure | None:
    http, parsed = response
    status = getattr(http, "status_code", None)
    if status is None or status < 300:
        return None
    code = parsed.get("Error", {}).get("Code") if isinstance(parsed, dict) else None
    return Failure(f"{host} answered HTTP {status}{f' {code}' if code else ''}", logging.INFO)


# -- botocore hooks ---------------------------------------------------------------------------


def note_request(
    context: dict[str, Any], operation: str, params: Any, request_timeout: float
) -> None:
    """Name the request in its retry lines (never its key) and give its attempts the bound on
    its silence. botocore's requests get this from a hook; the data plane calls it itself."""
    where = operation
    if isinstance(params, dict) and params.get("Bucket"):
        where += f" s3://{params['Bucket']}/{params.get('Key') or ''}"
    context[_TARGET] = where
    context[_LIMIT] = request_timeout


def _note_request(
    request_timeout: float, params: Any, model: Any, context: dict[str, Any], **_: Any
) -> None:
    """`before-parameter-build`: `note_request` for botocore's requests."""
    note_request(context, getattr(model, "name", "request"), params, request_timeout)


def retry_judge(request_timeout: float) -> Callable[..., bool | None]:
    """A `needs-retry` handler, registered before botocore's own: it records why an attempt
    failed (for the next attempt's line and the final error) and vetoes another attempt once
    the request has gone `request_timeout` seconds without progress. Returning False stops
    botocore's retries; None leaves the decision to botocore."""

    def judge(
        attempts: int,
        request_dict: dict[str, Any],
        caught_exception: BaseException | None = None,
        response: Any = None,
        **_: Any,
    ) -> bool | None:
        context: dict[str, Any] = request_dict.get("context") or {}
        config = context.get("client_config")
        host = host_of(request_dict.get("url"))
        if caught_exception is None:
            answer = _describe_answer(response, host) if response is not None else None
            if answer is not None:
                context[_FAILURE] = answer
            return None  # the server answered: botocore decides, within --max-attempts
        connect, read = _seconds(config, "connect_timeout"), _seconds(config, "read_timeout")
        waited = float(context.get("read_timeout") or read)  # this attempt's, see `send`
        context[_FAILURE] = describe_failure(caught_exception, host, connect, waited)
        clock = context.get(_CLOCK)
        silent = clock.silent_for() if isinstance(clock, ProgressClock) else 0.0
        limit = _attempt_limit(config)
        cut = silent >= request_timeout and (limit is None or attempts < limit)
        setattr(caught_exception, _ATTEMPTS_ATTR, Attempts(
            host, attempts, silent, connect, read, request_timeout, cut,
        ))  # fmt: skip
        return False if cut else None

    return judge


class WatchedSession(AIOHTTPSession):  # type: ignore[misc]  # aiobotocore is untyped
    """aiobotocore's HTTP session, with each attempt run under the request's progress clock,
    and a line logged when an attempt is a retry. For a request of its own, an answer counts
    as progress; under a part loop's clock only the part's bytes do (request bodies report
    theirs through `bounded_body`, the loops the bytes they read), so a server that answers
    every GET and then sends nothing is given up on too.

    An attempt may stay silent for the read timeout, but no longer than what is left of the
    request's bound: botocore's per-request `read_timeout` (the context key aiobotocore reads
    for long polls) is lowered to that, so a silent server is given up on when the bound is
    reached, not up to a read timeout later, while a response that keeps trickling in (AWS
    keeps a long CompleteMultipartUpload alive with whitespace) is never cut. The same limit
    applies to writing the request body."""

    async def send(self, request: Any) -> Any:
        context = getattr(request, "context", None)
        if not isinstance(context, dict):
            return await super().send(request)
        with watched_attempt(context, self._timeout.sock_read):
            return await super().send(request)

    def shares_connections(self) -> bool:
        """Whether `connection_pool` works with this aiobotocore (it reads two of its
        attributes); without it the data plane stands aside."""
        return hasattr(self, "_get_session") and hasattr(self, "_proxy_config")

    async def connection_pool(self, url: str) -> tuple[Any, dict[str, Any]]:
        """The aiohttp session this client sends `url` through, and the proxy arguments for
        it: the data plane (`s3.dataplane`) shares its connections, TLS settings and proxy."""
        proxy_url = self._proxy_config.proxy_url_for(url)
        session = await self._get_session(proxy_url)
        if proxy_url is None:
            return session, {}
        return session, {
            "proxy": proxy_url,
            "proxy_headers": self._proxy_config.proxy_headers_for(url),
        }


@contextmanager
def watched_attempt(context: dict[str, Any], sock_read: float | None) -> Iterator[float | None]:
    """Around one attempt of a request (`context` is the request's, shared by its attempts):
    run it under the request's progress clock (a part loop's, if one is active), announce it
    when it is a retry, and yield how long it may stay silent: the read timeout, or less when
    the request's bound is nearer (also left in `context["read_timeout"]`, where aiobotocore
    and `retry_judge` read it). An answer is progress, unless a part loop owns the clock."""
    clock = context.get(_CLOCK)
    if not isinstance(clock, ProgressClock):
        part = current_progress()
        context[_OWN_CLOCK] = part is None
        clock = context[_CLOCK] = part or ProgressClock()
    attempt = int(context.get("retries", {}).get("attempt", 1))
    if attempt > 1:
        _announce(context, attempt)
    read = _seconds(context.get("client_config"), "read_timeout") or sock_read
    bound = context.get(_LIMIT)
    if read and bound:
        read = min(read, max(bound - clock.silent_for(), _LAST_CHANCE))
        context["read_timeout"] = read
    with clock.active(), _write_timeout(read):
        yield read
    if context.get(_OWN_CLOCK):  # a part's clock counts only the bytes of its body
        clock.moved()


def _attempt_limit(config: Any) -> int | None:
    """Attempts botocore makes in all (`retries={"total_max_attempts": N}`, as we configure)."""
    retries = getattr(config, "retries", None) or {}
    if retries.get("total_max_attempts"):
        return int(retries["total_max_attempts"])
    if retries.get("max_attempts") is not None:  # the retries after the first, in botocore
        return int(retries["max_attempts"]) + 1
    return None


def _announce(context: dict[str, Any], attempt: int) -> None:
    failure = context.get(_FAILURE)
    if not isinstance(failure, Failure):
        return
    limit = _attempt_limit(context.get("client_config"))
    of = f" of {limit}" if limit else ""
    where = context.get(_TARGET)
    log.log(
        failure.level, "%s%s, attempt %d%s",
        failure.text, f" ({where})" if where else "", attempt, of,
    )  # fmt: skip


# -- the part loops (s3.requests) ---------------------------------------------------------------


def timed_out(exc: BaseException) -> bool:
    """The server stayed silent past a timeout (rather than breaking the connection)."""
    return isinstance(exc, bx.ReadTimeoutError | bx.ConnectTimeoutError)


def part_attempts(
    client: Any, exc: BaseException, attempts: int, silent: float, request_timeout: float, cut: bool
) -> Attempts:
    """A part loop's account of its attempts, for `s3.errors.no_answer`."""
    config = getattr(getattr(client, "meta", None), "config", None)
    return Attempts(
        _host(client, exc), attempts, silent, _seconds(config, "connect_timeout"),
        _seconds(config, "read_timeout"), request_timeout, cut,
    )  # fmt: skip


def say_part_retry(
    client: Any, exc: BaseException, where: str, attempt: int, limit: int, then: str
) -> None:
    """A part loop's retry line: WARNING, worded as botocore's, when the server went silent;
    INFO when a body broke or arrived corrupted (fetched or sent again at once)."""
    if timed_out(exc):
        config = getattr(getattr(client, "meta", None), "config", None)
        connect, read = _seconds(config, "connect_timeout"), _seconds(config, "read_timeout")
        failure = describe_failure(exc, _host(client, exc), connect, read)
        log.warning("%s (%s), attempt %d of %d", failure.text, where, attempt, limit)
        return
    text = str(exc).strip()
    reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    log.info("%s: %s; %s, attempt %d of %d", where, reason, then, attempt, limit)


def _host(client: Any, exc: BaseException) -> str:
    url = getattr(exc, "kwargs", {}).get("endpoint_url")
    if not url:
        url = str(getattr(getattr(client, "meta", None), "endpoint_url", "") or "")
    return host_of(url)


def install(client: Any, *, request_timeout: float) -> None:
    """Register the hooks on one client (its event emitter is its own copy)."""
    events = client.meta.events
    events.register("before-parameter-build.s3", partial(_note_request, request_timeout))
    events.register_first("needs-retry.s3", retry_judge(request_timeout))
