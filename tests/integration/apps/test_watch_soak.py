"""A soak test of `watch` as a service: a few hundred files arriving over a minute, server
faults injected through the fault proxy, one restart in the middle. Judged by the final
state only: every file present once under its name and byte-identical, no multipart upload
left, the state file agreeing with the bucket, and memory flat."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.sse import sse_params
from ssec_transfer.state.watch_state import WatchState
from tests.support.faultproxy import FaultPlan, FaultProxy

pytestmark = pytest.mark.integration

FILES = 240  # arriving over ARRIVAL seconds
ARRIVAL = 50.0
BIG_EVERY = 60  # every 60th file is a multipart one (9 MiB)


def _rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class _Arrivals(threading.Thread):
    """Writes the files as a producer would: each written in place, then left alone."""

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.written: dict[str, bytes] = {}

    def run(self) -> None:
        for i in range(FILES):
            size = 9 * 1024 * 1024 + i if i % BIG_EVERY == BIG_EVERY - 1 else 1000 + 37 * i
            rel = f"day{i % 3}/p{i:04d}.nc"
            data = os.urandom(size)
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            self.written[rel] = data
            time.sleep(ARRIVAL / FILES)


def _start(root: Path, bucket: str, key_path: Path, state: Path, env: dict[str, str]) -> Any:
    return subprocess.Popen(
        [sys.executable, "-m", "ssec_transfer", "watch", str(root), f"s3://{bucket}/soak/",
         "--key-file", str(key_path), "--interval", "0.5", "--settle", "1",
         "--retry-interval", "1", "--max-attempts", "2", "--state", str(state), "--json"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _stop(proc: Any, timeout: float = 60) -> str:
    os.kill(proc.pid, signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"watch did not stop within {timeout} s after SIGTERM") from None
    return str(err)


def test_a_minute_of_arrivals_with_faults_and_a_restart(
    s3_server: Any, tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str],
    key_file: tuple[Path, SSECustomerKey],
) -> None:  # fmt: skip
    key_path, key = key_file
    root = tmp_path / "in"
    root.mkdir()
    state = tmp_path / "watch-state.sqlite"
    plan = FaultPlan(seed=15, reset=0.02, internal_error=0.03, slowdown=0.02,
                     only_after_requests=5)  # fmt: skip
    arrivals = _Arrivals(root)
    rss: list[int] = []
    with FaultProxy(s3_server.endpoint_url, s3_server.ca_bundle, plan) as proxy:
        env = dict(server_env, AWS_ENDPOINT_URL=proxy.endpoint_url,
                   AWS_CA_BUNDLE=str(proxy.ca_bundle))  # fmt: skip
        proc = _start(root, bucket, key_path, state, env)
        arrivals.start()
        time.sleep(ARRIVAL / 2)
        err = _stop(proc)  # the restart in the middle: drain, then start again
        assert "Traceback" not in err, err
        proc = _start(root, bucket, key_path, state, env)
        try:
            deadline = time.monotonic() + ARRIVAL + 120
            while True:
                assert proc.poll() is None, proc.communicate()
                if (kib := _rss_kib(proc.pid)) is not None:
                    rss.append(kib)
                listed = {
                    o["Key"]
                    for page in admin.get_paginator("list_objects_v2").paginate(
                        Bucket=bucket, Prefix="soak/"
                    )
                    for o in page.get("Contents", [])
                }
                if not arrivals.is_alive() and len(listed) == FILES:
                    break
                assert time.monotonic() < deadline, f"{len(listed)} of {FILES} uploaded"
                time.sleep(1)
            time.sleep(2)  # let the last records be written
        finally:
            err = _stop(proc)
        assert "Traceback" not in err, err
        injected = proxy.stats.injected()

    print(f"soak: {FILES} files, faults injected {dict(injected)}, RSS MiB first half max "
          f"{max(rss[: len(rss) // 2]) / 1024:.1f}, second half max "
          f"{max(rss[len(rss) // 2 :]) / 1024:.1f}, samples {len(rss)}")  # fmt: skip
    assert sum(injected.values()) > 0, "the proxy injected no fault: the soak tested nothing"
    # Every file once under its name, byte-identical.
    assert sorted(listed) == sorted(f"soak/{rel}" for rel in arrivals.written)
    for rel, data in arrivals.written.items():
        got = admin.get_object(Bucket=bucket, Key=f"soak/{rel}", **sse_params(key))
        assert got["Body"].read() == data, rel
    assert admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    # The state file agrees with the bucket.
    import anyio

    async def recorded() -> set[str]:
        opened = await WatchState.open(state)
        try:
            return {r.object_key for r in (await opened.records(bucket)).values()}
        finally:
            await opened.aclose()

    assert anyio.run(recorded) == set(listed)
    # Memory flat: the second half of the run never rose much above the first.
    half = len(rss) // 2
    assert half >= 5, rss
    assert max(rss[half:]) <= max(rss[:half]) + 30 * 1024, (max(rss[:half]), max(rss[half:]))
