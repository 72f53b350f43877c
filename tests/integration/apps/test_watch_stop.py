"""`watch` under a supervisor: the signal sequences systemd and `timeout` send end it within a
bound, leave no multipart upload on the server and nothing in the folder but the files.

systemd's stop and `timeout` send one SIGTERM (then SIGKILL after TimeoutStopSec or -k);
an impatient operator sends a second SIGTERM or presses Ctrl-C twice. README "Ingestion:
watch a folder" documents the exit codes asserted here.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ssec_transfer.apps.watch_observer import WatchObserver
from ssec_transfer.core.plan import MiB
from ssec_transfer.s3.sse import sse_params
from tests.support.faultproxy import FaultPlan, FaultProxy, ScriptedFault
from tests.support.helpers import random_file
from tests.support.json_schema import validate_lines

pytestmark = pytest.mark.integration

STOP_BOUND = 10.0  # seconds from the last signal to the process's end


def _watch(env: dict[str, str], root: Path, bucket: str, key_path: Path, *extra: str) -> Any:
    argv = [sys.executable, "-m", "ssec_transfer", "watch", str(root), f"s3://{bucket}/w/",
            "--key-file", str(key_path), "--interval", "0.1", "--settle", "0",
            "--part-size", "5MiB", "--concurrency", "1", *extra]  # fmt: skip
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for(condition: Callable[[], bool], proc: Any, what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _ended(proc: Any, bound: float) -> tuple[str, str, float]:
    """Wait for the end; (stdout, stderr, seconds it took). Killed if it outlives `bound`."""
    started = time.monotonic()
    try:
        out, err = proc.communicate(timeout=bound)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"still running {bound} s after the stop signal:\n{err}")
    return out, err, time.monotonic() - started


def _uploads(admin: Any, bucket: str) -> list[Any]:
    return admin.list_multipart_uploads(Bucket=bucket).get("Uploads", [])  # type: ignore[no-any-return]


def _keys(admin: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in admin.list_objects_v2(Bucket=bucket).get("Contents", [])]


def _local_files(root: Path) -> list[str]:
    """What is in the folder, the state database aside: no temporary file may be left."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".ssec-transfer-watch")
    )


def test_one_sigterm_drains_and_exits_0(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str], key_file: Any
) -> None:
    """systemd's stop: the upload in flight finishes, nothing is left, exit 0 (a clean stop)."""
    key_path, key = key_file
    root = tmp_path / "in"
    src = random_file(root / "big.bin", 30 * MiB)
    proc = _watch(server_env, root, bucket, key_path, "--bwlimit", "15MiB", "--json")
    _wait_for(lambda: bool(_uploads(admin, bucket)), proc, "the watcher never started uploading")
    os.kill(proc.pid, signal.SIGTERM)
    out, err, _ = _ended(proc, 60)
    assert proc.returncode == 0, err
    assert "SIGTERM: finishing uploads in flight" in err
    body = admin.get_object(Bucket=bucket, Key="w/big.bin", **sse_params(key))["Body"].read()
    assert body == src.read_bytes()
    assert _uploads(admin, bucket) == []
    assert _local_files(root) == ["big.bin"]
    events = validate_lines(out)
    assert (events[-1]["type"], events[-1]["ok"], events[-1]["exit_code"]) == ("summary", 1, 0)


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["TERM", "INT"]
)
def test_a_second_signal_a_second_later_aborts_within_the_bound(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str], key_file: Any,
    signum: signal.Signals, code: int,
) -> None:  # fmt: skip
    """TERM then TERM (or Ctrl-C twice) 1 s apart: the upload in flight is aborted, the
    process exits 128 + signal within the bound, and nothing is left anywhere."""
    key_path, _ = key_file
    root = tmp_path / "in"
    random_file(root / "big.bin", 200 * MiB)
    proc = _watch(
        server_env, root, bucket, key_path, "--bwlimit", "10MiB", "--drain-timeout", "600"
    )
    _wait_for(lambda: bool(_uploads(admin, bucket)), proc, "the watcher never started uploading")
    os.kill(proc.pid, signum)
    time.sleep(1)
    assert proc.poll() is None, "the first signal must drain, not stop"
    os.kill(proc.pid, signum)
    _, err, took = _ended(proc, STOP_BOUND)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert f"interrupted by {signum.name}" in err
    assert _uploads(admin, bucket) == []
    assert _keys(admin, bucket) == []
    assert _local_files(root) == ["big.bin"]
    assert took < STOP_BOUND


def test_the_drain_timeout_aborts_and_exits_1(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str], key_file: Any
) -> None:
    """`timeout`'s TERM with a drain shorter than the upload: aborted at the timeout, exit 1
    (an upload did not happen), the JSON summary counting it as cancelled."""
    key_path, _ = key_file
    root = tmp_path / "in"
    random_file(root / "big.bin", 200 * MiB)
    proc = _watch(server_env, root, bucket, key_path, "--bwlimit", "10MiB", "--drain-timeout",
                  "1", "--json")  # fmt: skip
    _wait_for(lambda: bool(_uploads(admin, bucket)), proc, "the watcher never started uploading")
    os.kill(proc.pid, signal.SIGTERM)
    out, err, took = _ended(proc, STOP_BOUND)
    assert proc.returncode == 1, err
    assert _uploads(admin, bucket) == []
    assert _keys(admin, bucket) == []
    summary = validate_lines(out)[-1]
    assert (summary["type"], summary["cancelled"], summary["exit_code"]) == ("summary", 1, 1)
    assert took < STOP_BOUND


def test_sigterm_while_the_endpoint_fails_ends_at_once(
    s3_server: Any, tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str],
    key_file: Any,
) -> None:  # fmt: skip
    """Every upload answered 500: the file waits for its retry; SIGTERM then ends the process
    at once, exit 1 (a file is still failing), with the failure printed once."""
    key_path, _ = key_file
    root = tmp_path / "in"
    random_file(root / "f.bin", 1000)
    plan = FaultPlan(internal_error=1.0, only_methods={"PUT", "POST"})
    with FaultProxy(s3_server.endpoint_url, s3_server.ca_bundle, plan) as proxy:
        env = dict(server_env, AWS_ENDPOINT_URL=proxy.endpoint_url,
                   AWS_CA_BUNDLE=str(proxy.ca_bundle))  # fmt: skip
        proc = _watch(env, root, bucket, key_path, "--max-attempts", "2", "--retry-interval",
                      "600")  # fmt: skip
        _wait_for(lambda: proxy.stats.injected().get("internal_error", 0) >= 2, proc,
                  "the upload never failed")  # fmt: skip
        time.sleep(1)  # now in the 600 s retry backoff
        os.kill(proc.pid, signal.SIGTERM)
        _, err, took = _ended(proc, 5)
    assert proc.returncode == 1, err
    assert took < 5
    assert err.count("Z failed f.bin") == 1, err  # printed once,
    assert "WARNING: f.bin" not in err  # not also as a warning
    assert re.search(r"Z failed f\.bin -> .*\(HTTP 500.*\) \(retry in 600 s, attempt 2\)\n"
                     r"  hint: the server failed; rerun later\n", err), err  # fmt: skip
    assert _uploads(admin, bucket) == []


def test_sigterm_during_an_upload_that_is_retrying_ends_within_the_bound(
    s3_server: Any, tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str],
    key_file: Any,
) -> None:  # fmt: skip
    """The endpoint fails while an upload is in flight, so the engine is in its own retry
    backoff: the stop waits no longer than --drain-timeout, then aborts it (exit 1)."""
    key_path, _ = key_file
    root = tmp_path / "in"
    random_file(root / "f.bin", 1000)
    plan = FaultPlan(internal_error=1.0, only_methods={"PUT", "POST"})
    with FaultProxy(s3_server.endpoint_url, s3_server.ca_bundle, plan) as proxy:
        env = dict(server_env, AWS_ENDPOINT_URL=proxy.endpoint_url,
                   AWS_CA_BUNDLE=str(proxy.ca_bundle))  # fmt: skip
        proc = _watch(env, root, bucket, key_path, "--max-attempts", "20", "--drain-timeout",
                      "2")  # fmt: skip
        _wait_for(lambda: proxy.stats.injected().get("internal_error", 0) >= 2, proc,
                  "the upload was never retried")  # fmt: skip
        os.kill(proc.pid, signal.SIGTERM)
        _, err, took = _ended(proc, STOP_BOUND)
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    assert took < STOP_BOUND
    assert _uploads(admin, bucket) == []


def test_json_events_carry_what_an_operator_needs(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, key = key_file
    root = tmp_path / "in"
    random_file(root / "a.bin", 3 * MiB)
    proc = _watch(server_env, root, bucket, key_path, "--json")
    _wait_for(lambda: bool((root / ".ssec-transfer-watch.sqlite").exists()), proc, "no state")
    time.sleep(2)
    os.kill(proc.pid, signal.SIGTERM)
    out, err, _ = _ended(proc, 30)
    assert proc.returncode == 0, err
    event = next(e for e in validate_lines(out) if e["type"] == "object")
    assert event["status"] == "ok"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["timestamp"])
    assert (event["size"], event["key_fingerprint"], event["attempt"]) == (
        3 * MiB, key.fingerprint, 1,
    )  # fmt: skip
    assert event["checksum"]
    assert event["seconds"] > 0
    assert "version_id" in event


def test_human_log_lines_say_when_what_where_how_big_and_how_fast(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, _ = key_file
    root = tmp_path / "in"
    random_file(root / "a.bin", 3 * MiB)
    proc = _watch(server_env, root, bucket, key_path)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    os.kill(proc.pid, signal.SIGTERM)
    _, err, _ = _ended(proc, 30)
    assert proc.returncode == 0, line + err
    pattern = (
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ uploaded a\.bin -> s3://" + re.escape(bucket)
        + r"/w/a\.bin \(3\.0 MiB in \d+\.\d s, \d+(\.\d)? [KMG]iB/s\)\n"
    )  # fmt: skip
    assert re.fullmatch(pattern, line), line
    assert "\r" not in line + err  # not a terminal: no bar


class RecordingObserver(WatchObserver):
    """Every call, in order, with its arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattribute__(self, name: str) -> Any:
        if name in ("ready", "alive", "queue", "uploaded", "failed", "retried", "aborted",
                    "stopping"):  # fmt: skip
            return lambda **kw: object.__getattribute__(self, "calls").append((name, kw))
        return object.__getattribute__(self, name)

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.mark.anyio
async def test_the_observer_hears_ready_polls_failures_retries_uploads_and_the_stop(
    s3_server: Any, tmp_path: Path, bucket: str, s3_env: dict[str, str]
) -> None:
    """What systemd, metrics and health are told: a 500 on the first PUT, then the retry."""
    import anyio

    from ssec_transfer.apps.watch import run_watch
    from ssec_transfer.apps.watch_config import WatchConfig
    from ssec_transfer.engine import TransferEngine
    from ssec_transfer.keys.customer import SSECustomerKey
    from ssec_transfer.s3.client import ConnectionSettings

    key = SSECustomerKey.generate()
    root = tmp_path / "in"
    random_file(root / "a.bin", 1000)
    plan = FaultPlan.scripted(ScriptedFault("internal_error", method="PUT", nth=1))
    observer = RecordingObserver()
    config = WatchConfig(directory=root, bucket=bucket, settle=0, interval=0.1,
                         retry_interval=0.3)  # fmt: skip
    async with FaultProxy(s3_server.endpoint_url, s3_server.ca_bundle, plan) as proxy:
        engine = TransferEngine(
            endpoint_url=proxy.endpoint_url, ca_bundle=str(proxy.ca_bundle),
            settings=ConnectionSettings(max_attempts=1), ledger=None, journal=None,
        )  # fmt: skip
        async with engine:
            stop = anyio.Event()
            async with anyio.create_task_group() as tg:

                async def watch() -> None:
                    await run_watch(engine, config, key, stop=stop, observer=observer)

                tg.start_soon(watch)
                with anyio.fail_after(30):
                    while "uploaded" not in observer.names():  # noqa: ASYNC110 (a plain list)
                        await anyio.sleep(0.05)
                stop.set()
    names = observer.names()
    assert names.index("ready") < names.index("failed") < names.index("retried")
    assert names.index("retried") < names.index("uploaded") < names.index("stopping")
    assert names.count("ready") == names.count("stopping") == 1
    assert "alive" in names
    assert "aborted" not in names
    calls = dict(observer.calls)
    assert calls["failed"]["kind"].endswith("Error")  # the class name, e.g. ServerError
    assert calls["uploaded"]["size"] == 1000
    assert calls["uploaded"]["seconds"] > 0
    first_queue = next(kw for name, kw in observer.calls if name == "queue")
    assert set(first_queue) == {"seen", "settling", "in_flight", "failing"}
    assert first_queue["seen"] == 1


def test_progress_shows_a_bar_for_a_large_file(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file: Any
) -> None:
    """--progress (a terminal's default): a bar per file of --multipart-threshold and more,
    none for a small one, and the event lines still whole."""
    key_path, _ = key_file
    root = tmp_path / "in"
    random_file(root / "big.bin", 20 * MiB)
    random_file(root / "small.bin", 1000)
    proc = _watch(server_env, root, bucket, key_path, "--progress")
    _wait_for(lambda: bool((root / ".ssec-transfer-watch.sqlite").exists()), proc, "no state")
    time.sleep(3)
    os.kill(proc.pid, signal.SIGTERM)
    _, err, _ = _ended(proc, 60)
    assert proc.returncode == 0, err
    assert re.search(r"big\.bin: 100%\|", err), err
    assert "small.bin:" not in err
    assert re.search(r"(^|\n)\S+Z uploaded big\.bin -> ", err), err
    assert re.search(r"(^|\n)\S+Z uploaded small\.bin -> ", err), err
