"""`watch`'s human lines: what an operator reads in the journal, one line per event (pure
formatting; the integration tests in tests/integration/apps/test_watch_stop.py run them)."""

from __future__ import annotations

import re

from ssec_transfer.apps.sources import SourceProblemError
from ssec_transfer.apps.watch import WatchEvent, utc_timestamp
from ssec_transfer.cli.watch_command import event_line
from ssec_transfer.core.errors import TransferFailedError

MiB = 1024 * 1024
WHEN = "2026-03-01T12:00:05Z"


def _event(**fields: object) -> WatchEvent:
    base: dict[str, object] = {"path": "l1/a.nc", "bucket": "b", "object_key": "in/l1/a.nc"}
    return WatchEvent(**{**base, "timestamp": WHEN, **fields})  # type: ignore[arg-type]


def test_timestamps_are_iso_8601_utc_to_the_second() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", utc_timestamp())


def test_an_upload_says_what_where_how_big_how_long_and_how_fast() -> None:
    line = event_line(_event(status="uploaded", size=150 * MiB, seconds=2.0))
    assert line == f"{WHEN} uploaded l1/a.nc -> s3://b/in/l1/a.nc (150.0 MiB in 2.0 s, 75.0 MiB/s)"


def test_a_skipped_file_says_why() -> None:
    line = event_line(_event(status="skipped", size=5))
    assert line == f"{WHEN} skipped l1/a.nc -> s3://b/in/l1/a.nc: sent by an earlier run"


def test_a_failure_is_one_line_with_its_retry_plan_then_its_hint() -> None:
    problem = TransferFailedError("the part failed 5 times", hint="check the network")
    event = _event(status="failed", error=str(problem), problem=problem, attempt=2, retry_in=60.0)
    assert event_line(event) == (
        f"{WHEN} failed l1/a.nc -> s3://b/in/l1/a.nc: the part failed 5 times "
        "(retry in 60 s, attempt 3)\n  hint: check the network"
    )


def test_a_path_that_cannot_be_sent_is_not_promised_a_retry() -> None:
    problem = SourceProblemError("l1/a.nc is a FIFO", reason="fifo")
    event = _event(status="failed", error=str(problem), problem=problem, reason="fifo",
                   retry_in=None)  # fmt: skip
    line = event_line(event)
    assert line.startswith(f"{WHEN} failed l1/a.nc -> s3://b/in/l1/a.nc: l1/a.nc is a FIFO")
    assert "(reported once, not retried as it is)" in line
    assert "retry in" not in line


def test_an_upload_cancelled_at_stop_has_no_retry_plan() -> None:
    event = _event(status="failed", error="cancelled: stopped before the upload finished")
    assert event_line(event) == (
        f"{WHEN} failed l1/a.nc -> s3://b/in/l1/a.nc: cancelled: stopped before the upload finished"
    )
