"""`watch --metrics-port` against the real server: the endpoint a Prometheus server scrapes
and the health check, read with prometheus_client's own parser, and gone after the stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


def _health(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def test_metrics_and_health_of_a_running_watch(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, key = key_file
    root = tmp_path / "in"
    root.mkdir()
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ssec_transfer", "watch", str(root), f"s3://{bucket}/m/",
         "--key-file", str(key_path), "--interval", "0.2", "--settle", "0.3",
         "--metrics-port", str(port)],
        env=server_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:  # ready once the first poll went round
            assert proc.poll() is None, proc.communicate()
            try:
                if _health(port)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the metrics endpoint never became healthy"
            time.sleep(0.2)
        for name, size in (("a.nc", 1000), ("b.nc", 3000)):
            (root / name).write_bytes(os.urandom(size))
        deadline = time.monotonic() + 60
        while (metrics := _scrape(port)).get("ssec_transfer_watch_files_uploaded_total") != 2:
            assert time.monotonic() < deadline, metrics
            time.sleep(0.3)
        assert metrics["ssec_transfer_watch_bytes_uploaded_total"] == 4000
        assert metrics["ssec_transfer_watch_last_success_timestamp_seconds"] > time.time() - 120
        assert metrics["ssec_transfer_watch_healthy"] == 1
        assert metrics["ssec_transfer_watch_upload_duration_seconds_count"] == 2
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        assert key.fingerprint not in text
        assert key.export_base64() not in text
        assert "a.nc" not in text  # counts and times only, no file names
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    with pytest.raises(ConnectionRefusedError):  # the endpoint went with the process
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
