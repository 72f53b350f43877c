"""The bounds on waiting, without a server: the progress clock, body writes bounded per slice
(never in total), botocore's retries vetoed once a request has gone too long without progress,
the retry line, each attempt's silence capped to what is left of the bound, and the final
error's wording."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import botocore.exceptions as bx
import pytest
from aiobotocore.httpsession import AIOHTTPSession

from ssec_transfer.core.errors import ErrorContext, NoAnswerError
from ssec_transfer.core.retry import ProgressClock, current_progress
from ssec_transfer.s3 import timeouts
from ssec_transfer.s3.client import ConnectionSettings, build_config
from ssec_transfer.s3.errors import no_answer, translate
from ssec_transfer.s3.timeouts import (
    Attempts,
    WatchedSession,
    WriteStalled,
    attempts_of,
    bounded_body,
    retry_judge,
)

URL = "https://s3.example.test:8443/b/k"
CTX = ErrorContext("HeadObject", "b", "k")


def _silent(clock: ProgressClock, seconds: float) -> ProgressClock:
    clock._last -= seconds  # as if the last progress were `seconds` ago
    return clock


# -- the clock ---------------------------------------------------------------------------------


def test_progress_resets_the_silence_and_waiting_on_this_side_does_not_count() -> None:
    clock = _silent(ProgressClock(), 50)
    assert 50 <= clock.silent_for() < 51
    clock.shift(20)  # 20 s of that were spent waiting for a request slot
    assert 30 <= clock.silent_for() < 31
    clock.shift(1000)  # never into the future
    assert 0 <= clock.silent_for() < 1
    _silent(clock, 5).moved()
    assert clock.silent_for() < 1


def test_a_clock_is_current_only_inside_its_block() -> None:
    clock = ProgressClock()
    assert current_progress() is None
    with clock.active():
        assert current_progress() is clock
    assert current_progress() is None


# -- request bodies ----------------------------------------------------------------------------


class SlowWriter:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.written = 0

    async def write(self, data: bytes) -> None:
        await anyio.sleep(self.delay)
        self.written += len(data)


async def _write(writer: SlowWriter, slices: int) -> None:
    """As `s3.bodies` writes a body."""
    with bounded_body() as taken:
        for n in range(slices):
            await writer.write(b"x" * 10)
            taken(10 * (n + 1))


@pytest.mark.anyio
async def test_a_slow_body_that_keeps_moving_is_never_cut() -> None:
    """The bound is per slice: 6 slices of 0.1 s each take longer than the 0.3 s limit."""
    writer, clock = SlowWriter(0.1), _silent(ProgressClock(), 100)
    with timeouts._write_timeout(0.3), clock.active():
        await _write(writer, 6)
    assert writer.written == 60
    assert clock.silent_for() < 0.2  # each slice taken was progress


@pytest.mark.anyio
async def test_sending_a_body_again_is_neither_progress_nor_silence() -> None:
    """A server that takes every body and never answers must not look alive because each
    attempt sends the same bytes again; a slow link resending them must not look silent."""
    clock = ProgressClock()
    with timeouts._write_timeout(5), clock.active():
        await _write(SlowWriter(0), 3)  # the first attempt: 30 bytes taken
        _silent(clock, 50)  # then 50 s without an answer
        await _write(SlowWriter(0.05), 3)  # the same 30 bytes again, in 0.15 s
        assert 50 <= clock.silent_for() < 50.1
        await _write(SlowWriter(0), 4)  # the 31st byte and on are new
        assert clock.silent_for() < 0.1


def test_resent_bytes_pause_the_clock() -> None:
    clock = ProgressClock()
    clock.sent(100, 0.0)
    _silent(clock, 10)
    clock.sent(60, 4.0)  # 4 s resending old bytes: not silence
    assert 6 <= clock.silent_for() < 6.1
    clock.sent(101, 1.0)
    assert clock.silent_for() < 0.1


@pytest.mark.anyio
async def test_a_server_that_takes_no_data_fails_the_attempt_after_the_read_timeout() -> None:
    writer = SlowWriter(30)
    started = anyio.current_time()
    with timeouts._write_timeout(0.2), pytest.raises(WriteStalled) as raised:
        await _write(writer, 1)
    assert anyio.current_time() - started < 2
    assert isinstance(raised.value, TimeoutError)  # what aiohttp hands on as a read timeout
    assert "took no data for 0.2 s" in str(raised.value)


@pytest.mark.anyio
async def test_outside_an_attempt_a_body_write_is_not_bounded() -> None:
    await _write(SlowWriter(0.01), 2)


# -- botocore's retries ------------------------------------------------------------------------


def _context(
    silent: float, *, attempts: int = 5, read_timeout: float | None = None
) -> dict[str, Any]:
    config = build_config(ConnectionSettings(max_attempts=attempts), pool_size=1)
    context: dict[str, Any] = {
        "client_config": config,
        timeouts._CLOCK: _silent(ProgressClock(), silent),
    }
    if read_timeout is not None:
        context["read_timeout"] = read_timeout
    return context


def _request_dict(context: dict[str, Any]) -> dict[str, Any]:
    return {"url": URL, "context": context}


def test_a_retry_within_the_bound_is_botocores_to_decide() -> None:
    judge = retry_judge(120)
    context = _context(61)
    exc = bx.ReadTimeoutError(endpoint_url=URL)
    assert judge(attempts=1, request_dict=_request_dict(context), caught_exception=exc) is None
    record = attempts_of(exc)
    assert record == Attempts("s3.example.test:8443", 1, record.silent if record else 0,
                              10.0, 60.0, 120.0, False)  # fmt: skip
    failure = context[timeouts._FAILURE]
    assert failure.text == "no answer from s3.example.test:8443 for 60 s"
    assert failure.level == logging.WARNING


def test_no_attempt_starts_once_the_request_went_too_long_without_progress() -> None:
    judge = retry_judge(120)
    exc = bx.ReadTimeoutError(endpoint_url=URL)
    assert (
        judge(attempts=2, request_dict=_request_dict(_context(121)), caught_exception=exc) is False
    )
    record = attempts_of(exc)
    assert record is not None
    assert record.cut
    assert record.attempts == 2


def test_the_last_attempt_is_not_reported_as_cut() -> None:
    exc = bx.ConnectTimeoutError(endpoint_url=URL)
    retry_judge(1)(attempts=5, request_dict=_request_dict(_context(50)), caught_exception=exc)
    record = attempts_of(exc)
    assert record is not None
    assert not record.cut


def test_an_answer_is_left_to_botocore_and_said_at_info() -> None:
    class Http:
        status_code = 503

    context = _context(500)
    parsed = {"Error": {"Code": "SlowDown"}}
    assert retry_judge(120)(attempts=1, request_dict=_request_dict(context),
                            response=(Http(), parsed)) is None  # fmt: skip
    failure = context[timeouts._FAILURE]
    assert failure.text == "s3.example.test:8443 answered HTTP 503 SlowDown"
    assert failure.level == logging.INFO


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (bx.ConnectTimeoutError(endpoint_url=URL),
         "no answer from s3.example.test:8443 for 10 s while connecting"),
        (bx.ReadTimeoutError(endpoint_url=URL, error=WriteStalled("x")),
         "s3.example.test:8443 took no data for 42 s"),
        (bx.EndpointConnectionError(endpoint_url=URL),
         "cannot connect to s3.example.test:8443 (EndpointConnectionError)"),
        (bx.ConnectionClosedError(endpoint_url=URL),
         "the connection to s3.example.test:8443 broke (ConnectionClosedError)"),
    ],
)  # fmt: skip
def test_each_failure_is_said_plainly(exc: BaseException, text: str) -> None:
    context = _context(1, read_timeout=42)  # this attempt's own (capped) read timeout
    retry_judge(120)(attempts=1, request_dict=_request_dict(context), caught_exception=exc)
    assert context[timeouts._FAILURE].text == text


# -- each attempt ------------------------------------------------------------------------------


class Request:
    url = URL

    def __init__(self, context: dict[str, Any]) -> None:
        self.context = context


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace aiohttp's part of `send`: record what the attempt was given."""
    seen: list[dict[str, Any]] = []

    async def fake_send(self: Any, request: Any) -> str:
        seen.append({
            "read_timeout": request.context.get("read_timeout"),
            "write_timeout": timeouts._WRITE_TIMEOUT.get(),
            "clock": current_progress(),
        })  # fmt: skip
        return "response"

    monkeypatch.setattr(AIOHTTPSession, "send", fake_send)
    return seen


def _attempt_context(silent: float, attempt: int) -> dict[str, Any]:
    context = _context(silent)
    context[timeouts._LIMIT] = 120.0
    context[timeouts._TARGET] = "HeadObject s3://b/k"
    context["retries"] = {"attempt": attempt}
    return context


@pytest.mark.anyio
@pytest.mark.parametrize(("silent", "allowed"), [(0, 60.0), (100, 20.0), (119.8, 1.0)])
async def test_an_attempt_may_be_silent_only_for_what_is_left_of_the_bound(
    sent: list[dict[str, Any]], silent: float, allowed: float
) -> None:
    session = WatchedSession(timeout=(10, 60))
    context = _attempt_context(silent, 1)
    assert await session.send(Request(context)) == "response"
    assert sent[0]["read_timeout"] == pytest.approx(allowed, abs=0.05)
    assert sent[0]["write_timeout"] == sent[0]["read_timeout"]
    assert sent[0]["clock"] is context[timeouts._CLOCK]


@pytest.mark.anyio
async def test_a_retry_is_announced_on_the_ssec_transfer_logger(
    sent: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    context = _attempt_context(60, 2)
    context[timeouts._FAILURE] = timeouts.Failure(
        "no answer from s3.example.test:8443 for 60 s", logging.WARNING
    )
    with caplog.at_level(logging.INFO, logger="ssec_transfer"):
        await WatchedSession(timeout=(10, 60)).send(Request(context))
    [record] = caplog.records
    assert record.name.startswith("ssec_transfer.")
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "no answer from s3.example.test:8443 for 60 s (HeadObject s3://b/k), attempt 2 of 5"
    )


@pytest.mark.anyio
async def test_an_answer_is_progress_for_a_request_but_not_for_a_part(
    sent: list[dict[str, Any]],
) -> None:
    session = WatchedSession(timeout=(10, 60))
    own: dict[str, Any] = {"client_config": _context(0)["client_config"]}
    await session.send(Request(own))
    _silent(own[timeouts._CLOCK], 30)
    await session.send(Request(own))
    assert own[timeouts._CLOCK].silent_for() < 1
    part = _silent(ProgressClock(), 30)
    with part.active():
        await session.send(Request({"client_config": own["client_config"]}))
    assert part.silent_for() >= 30  # only the part's bytes count


# -- the final error ---------------------------------------------------------------------------


def test_a_read_timeout_becomes_a_clear_no_answer_error() -> None:
    exc = bx.ReadTimeoutError(endpoint_url=URL)
    setattr(exc, timeouts._ATTEMPTS_ATTR,
            Attempts("s3.example.test:8443", 2, 120.4, 10, 60, 120, True))  # fmt: skip
    err = translate(exc, CTX, key_sent=True)
    assert isinstance(err, NoAnswerError)
    assert err.exit_code == 1
    assert err.message == (
        "no answer from s3.example.test:8443: 2 attempts, each waiting up to 60 s "
        "(--read-timeout); gave up after 120 s without progress (--request-timeout 120)"
    )
    assert err.hint is not None
    assert "--read-timeout" in err.hint
    assert str(err).startswith("HeadObject s3://b/k: no answer from")


def test_a_connect_timeout_names_the_connect_timeout() -> None:
    record = Attempts("s3.example.test:8443", 5, 57, 10, 60, 120, False)
    err = no_answer(bx.ConnectTimeoutError(endpoint_url=URL), CTX, record)
    assert err.message == (
        "no answer from s3.example.test:8443 while connecting: 5 attempts, each waiting up to "
        "10 s (--connect-timeout), 57 s without progress in all"
    )
    assert err.hint is not None
    assert "--connect-timeout" in err.hint
    assert "firewall" in err.hint


def test_a_stalled_upload_says_the_server_stopped_taking_data() -> None:
    exc = bx.ReadTimeoutError(endpoint_url=URL, error=WriteStalled("x"))
    err = no_answer(exc, CTX)
    assert err.message == "s3.example.test:8443 stopped taking data"
    assert err.hint is not None
    assert "stopped reading the upload" in err.hint
