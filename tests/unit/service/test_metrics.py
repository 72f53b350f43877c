"""Metrics and health as a scraper sees them: the endpoint is scraped over real HTTP and read
with prometheus_client's own parser; the textfile is read back the same way."""

from __future__ import annotations

import argparse
import socket
import urllib.error
import urllib.request
from pathlib import Path

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ssec_transfer.cli import watch_service
from ssec_transfer.cli.watch_service import add_service_options, observers_from_args
from ssec_transfer.core.errors import UsageError
from ssec_transfer.service import http
from ssec_transfer.service.metrics import WatchMetrics

pytestmark = pytest.mark.anyio


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_service_options(parser)
    return parser.parse_args(argv)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, labels): value} of an exposition."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def file_samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return samples(path.read_text())


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def feed(observer: object) -> None:
    """A short watch: ready, three files seen, two uploaded, one failure and its retry."""
    o = observer
    o.ready()  # type: ignore[attr-defined]
    o.queue(seen=3, settling=1, in_flight=2, failing=0)  # type: ignore[attr-defined]
    o.uploaded(size=1000, seconds=0.2)  # type: ignore[attr-defined]
    o.uploaded(size=24, seconds=40.0)  # type: ignore[attr-defined]
    o.failed(kind="WrongKeyError")  # type: ignore[attr-defined]
    o.failed(kind="secret/file name.nc")  # type: ignore[attr-defined]
    o.retried()  # type: ignore[attr-defined]
    o.aborted()  # type: ignore[attr-defined]
    o.queue(seen=3, settling=0, in_flight=0, failing=1)  # type: ignore[attr-defined]


def check_fed(values: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> None:
    p = "ssec_transfer_watch_"
    assert values[(p + "files_uploaded_total", ())] == 2
    assert values[(p + "bytes_uploaded_total", ())] == 1024
    assert values[(p + "failures_total", (("kind", "WrongKeyError"),))] == 1
    # A kind that is not a class name (it could carry a file name) is never a label value.
    assert values[(p + "failures_total", (("kind", "other"),))] == 1
    assert values[(p + "retries_total", ())] == 1
    assert values[(p + "aborted_uploads_total", ())] == 1
    assert values[(p + "upload_duration_seconds_count", ())] == 2
    assert values[(p + "upload_duration_seconds_bucket", (("le", "0.25"),))] == 1
    assert values[(p + "upload_duration_seconds_bucket", (("le", "60.0"),))] == 2
    assert values[(p + "files_seen", ())] == 3
    assert values[(p + "files_settling", ())] == 0
    assert values[(p + "files_in_flight", ())] == 0
    assert values[(p + "files_failing", ())] == 1
    assert values[(p + "last_success_timestamp_seconds", ())] > 1.7e9
    assert values[(p + "healthy", ())] == 1


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 (http://127.0.0.1)
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_health_transitions() -> None:
    clock = FakeClock()
    m = WatchMetrics(unhealthy_after=30 * 60, clock=clock)
    assert m.health().ok is False
    assert m.health().message.startswith("starting")
    m.ready()
    assert m.health().ok
    # A quiet folder is healthy however long nothing was uploaded.
    clock.now += 86400
    m.queue(seen=0, settling=0, in_flight=0, failing=0)
    assert m.health().ok
    # Files begin to wait: the clock starts then, not at the last success a day ago.
    m.queue(seen=5, settling=1, in_flight=2, failing=2)
    clock.now += 29 * 60
    assert m.health().ok
    clock.now += 2 * 60
    verdict = m.health()
    assert not verdict.ok
    assert verdict.message == "unhealthy: no upload succeeded for 31 min while 5 files wait"
    # One success makes it healthy again, for another 30 minutes.
    m.uploaded(size=1, seconds=1)
    assert m.health().ok
    clock.now += 45 * 60
    assert m.health().message == "unhealthy: no upload succeeded for 45 min while 5 files wait"
    # The queue empties: healthy.
    m.queue(seen=5, settling=0, in_flight=0, failing=0)
    assert m.health().ok


async def test_endpoint_serves_metrics_and_health() -> None:
    clock = FakeClock()
    m = WatchMetrics(unhealthy_after=60, clock=clock)
    listener = await http.open_listener("127.0.0.1", 0)
    port = http.bound_port(listener)
    base = f"http://127.0.0.1:{port}"
    async with anyio.create_task_group() as tg:
        tg.start_soon(http.serve, listener, http.Endpoint(m.exposition, m.health))
        assert await anyio.to_thread.run_sync(get, base + "/healthz") == (
            503,
            "starting: the first scan of the folder is not finished\n",
        )
        feed(m)
        status, text = await anyio.to_thread.run_sync(get, base + "/metrics")
        assert status == 200
        check_fed(samples(text))
        assert "WrongKeyError" in text
        assert "secret" not in text
        assert await anyio.to_thread.run_sync(get, base + "/healthz") == (200, "ok\n")
        clock.now += 61
        status, body = await anyio.to_thread.run_sync(get, base + "/healthz")
        assert status == 503
        assert body == "unhealthy: no upload succeeded for 1 min while 1 file waits\n"
        _, text = await anyio.to_thread.run_sync(get, base + "/metrics")
        assert samples(text)[("ssec_transfer_watch_healthy", ())] == 0
        assert (await anyio.to_thread.run_sync(get, base + "/nope"))[0] == 404
        # A client that connects and says nothing does not stop the others.
        async with await anyio.connect_tcp("127.0.0.1", port):
            assert (await anyio.to_thread.run_sync(get, base + "/metrics"))[0] == 200
        tg.cancel_scope.cancel()


async def test_observers_serve_on_the_port_and_stop_at_exit() -> None:
    port = free_port()
    args = parse(["--metrics-port", str(port)])
    assert args.metrics_address == "127.0.0.1"
    async with observers_from_args(args) as observer:
        feed(observer)
        status, text = await anyio.to_thread.run_sync(get, f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        check_fed(samples(text))
        assert "process_resident_memory_bytes" in text
    # Stopped: nothing listens any more.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


async def test_a_taken_port_is_a_usage_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UsageError, match=f"cannot serve metrics on 127.0.0.1:{port}") as e:
            async with observers_from_args(parse(["--metrics-port", str(port)])):
                pass
    assert e.value.exit_code == 2
    assert "--metrics-port" in (e.value.hint or "")


async def test_without_options_no_metrics_and_no_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    async with observers_from_args(parse([])) as observer:
        assert observer.observers == []  # type: ignore[attr-defined]
        feed(observer)


async def test_textfile_written_after_events_and_at_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watch_service, "TEXTFILE_EVERY", 0.05)
    path = tmp_path / "ssec_transfer_watch.prom"
    async with observers_from_args(parse(["--metrics-file", str(path)])) as observer:
        # Written at start, so the collector sees the service before its first event.
        assert file_samples(path)[("ssec_transfer_watch_files_seen", ())] == 0
        feed(observer)
        for _ in range(250):  # rewritten within a few checks (every 0.05 s here)
            if file_samples(path)[("ssec_transfer_watch_files_seen", ())] == 3:
                break
            await anyio.sleep(0.02)
        else:
            pytest.fail("the metrics file was not rewritten after the events")
        observer.aborted()
    final = file_samples(path)
    check_fed({**final, ("ssec_transfer_watch_aborted_uploads_total", ()): 1})
    assert final[("ssec_transfer_watch_aborted_uploads_total", ())] == 2
    # No process_* metrics: node_exporter exports its own under those names.
    assert not any(name.startswith("process_") for name, _ in final)
    assert listing(tmp_path) == [path.name]  # no temporary file left


async def test_textfile_in_a_missing_folder_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "watch.prom"
    with pytest.raises(UsageError, match="cannot write the metrics file") as e:
        async with observers_from_args(parse(["--metrics-file", str(path)])):
            pass
    assert e.value.exit_code == 2


def test_option_values_are_checked() -> None:
    for argv in (
        ["--metrics-port", "65536"],
        ["--metrics-port", "http"],
        ["--unhealthy-after", "0"],
        ["--unhealthy-after", "nan"],
    ):
        with pytest.raises(SystemExit):
            parse(argv)
    assert parse(["--unhealthy-after", "2.5"]).unhealthy_after == 2.5
