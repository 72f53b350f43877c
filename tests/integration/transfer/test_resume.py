"""An upload killed mid-way resumes with --resume and sends only what was not finished."""

from __future__ import annotations

import filecmp
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ssec_transfer.core.plan import MiB
from ssec_transfer.servers.base import ServerInfo
from tests.support.faultproxy import FaultPlan, FaultProxy, ScriptedFault
from tests.support.helpers import make_key_file, random_file, run_cli

pytestmark = pytest.mark.integration

CONCURRENCY = 2


def _start_put(src: Path, url: str, key_path: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ssec_transfer", "put", str(src), url, "--key-file", str(key_path),
         "--part-size", "5MiB", "--concurrency", str(CONCURRENCY), "--resume", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _parts_on_server(admin, bucket: str, key: str) -> tuple[str, int] | None:  # type: ignore[no-untyped-def]
    uploads = admin.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    if not uploads:
        return None
    upload_id = uploads[0]["UploadId"]
    parts = admin.list_parts(Bucket=bucket, Key=key, UploadId=upload_id).get("Parts", [])
    return upload_id, len(parts)


def test_kill_9_then_resume(
    tmp_path: Path, bucket: str, admin, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    src = random_file(tmp_path / "big.bin", 300 * MiB)
    total_parts = 60
    url = f"s3://{bucket}/big.bin"
    proc = _start_put(src, url, key_path, server_env)
    deadline = time.monotonic() + 120
    while True:
        state = _parts_on_server(admin, bucket, "big.bin")
        if state and state[1] >= 10:
            break
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    time.sleep(1)  # the server may still finish a part whose bytes had all arrived
    state = _parts_on_server(admin, bucket, "big.bin")
    assert state is not None  # kill -9: nothing could abort it
    _, parts_before = state

    # A different key is refused before anything is sent.
    other, _ = make_key_file(tmp_path, "other.key")
    refused = run_cli("put", src, url, "--key-file", other, "--part-size", "5MiB", "--resume",
                      env=server_env)  # fmt: skip
    assert refused.returncode == 3, refused.stderr
    assert "resuming needs the same key" in refused.stderr
    assert _parts_on_server(admin, bucket, "big.bin") == state

    resumed = run_cli(
        "put", src, url, "--key-file", key_path, "--part-size", "5MiB",
        "--concurrency", str(CONCURRENCY), "--resume", "--json", env=server_env,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    reused = result["resumed_parts"]
    resent = total_parts - reused
    # Parts finished before the kill are not sent again; at most the ones in flight are.
    assert parts_before - CONCURRENCY <= reused <= parts_before
    assert resent <= total_parts - parts_before + CONCURRENCY
    assert admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    out = tmp_path / "out.bin"
    got = run_cli("get", url, out, "--key-file", key_path, env=server_env)
    assert got.returncode == 0, got.stderr
    assert filecmp.cmp(src, out, shallow=False)


def test_ctrl_c_with_resume_keeps_parts_then_finishes(
    tmp_path: Path, bucket: str, admin, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    src = random_file(tmp_path / "f.bin", 60 * MiB)
    url = f"s3://{bucket}/f.bin"
    proc = _start_put(src, url, key_path, server_env)
    deadline = time.monotonic() + 60
    while not (_parts_on_server(admin, bucket, "f.bin") or (None, 0))[1]:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "--resume" in err
    assert _parts_on_server(admin, bucket, "f.bin") is not None  # kept for the resume
    again = run_cli("put", src, url, "--key-file", key_path, "--part-size", "5MiB", "--resume",
                    "--json", env=server_env)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["resumed_parts"] >= 1
    assert admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_interrupted_download_resumes_from_written_ranges(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file, s3_server: ServerInfo
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    src = random_file(tmp_path / "src.bin", 100 * MiB)
    url = f"s3://{bucket}/src.bin"
    put = run_cli("put", src, url, "--key-file", key_path, env=server_env)
    assert put.returncode == 0, put.stderr
    out = tmp_path / "out" / "copy.bin"
    out.parent.mkdir()
    # The 6th GET (a few ranges in) stalls in the proxy, so the kill lands mid-download
    # however fast the machine is.
    stall = FaultPlan.scripted(
        ScriptedFault("stall", method="GET", nth=6, direction="response", at=0.5,
                      stall_seconds=60)
    )  # fmt: skip
    with FaultProxy(s3_server.endpoint_url, s3_server.ca_bundle, stall) as proxy:
        env = dict(
            server_env, AWS_ENDPOINT_URL=proxy.endpoint_url, AWS_CA_BUNDLE=str(proxy.ca_bundle)
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "ssec_transfer", "get", url, str(out), "--key-file",
             str(key_path), "--part-size", "5MiB", "--concurrency", "1", "--resume"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not proxy.stats.faults:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        assert not out.exists()  # DEST only ever appears complete

        # Same endpoint (the journal is per endpoint), now without faults.
        proxy.plan = FaultPlan()
        again = run_cli("get", url, out, "--key-file", key_path, "--part-size", "5MiB",
                        "--resume", "--json", env=env)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["resumed_parts"] >= 1
    assert filecmp.cmp(src, out, shallow=False)
    assert [p.name for p in out.parent.iterdir()] == ["copy.bin"]  # no temporary file left


def test_resume_of_a_file_replaced_with_the_same_size_and_mtime_sends_the_changed_parts(
    tmp_path: Path, bucket: str, admin, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    """`cp -p`, `rsync -t` and `tar x` give other bytes the same size and mtime: a resumed
    upload re-reads the parts it sent, and sends again those that changed, instead of
    completing an object made of two files."""
    key_path, _ = key_file
    src = random_file(tmp_path / "big.bin", 100 * MiB)
    url = f"s3://{bucket}/big.bin"
    proc = _start_put(src, url, key_path, server_env)
    deadline = time.monotonic() + 120
    while not ((state := _parts_on_server(admin, bucket, "big.bin")) and state[1] >= 4):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    before = src.stat()
    replacement = random_file(tmp_path / "other.bin", 100 * MiB)
    os.replace(replacement, src)
    os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))
    resumed = run_cli(
        "put", src, url, "--key-file", key_path, "--part-size", "5MiB",
        "--concurrency", str(CONCURRENCY), "--resume", "--json", env=server_env,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["resumed_parts"] == 0
    assert "hold other bytes now; sending them again" in resumed.stderr
    out = tmp_path / "out.bin"
    assert run_cli("get", url, out, "--key-file", key_path, env=server_env).returncode == 0
    assert filecmp.cmp(src, out, shallow=False)
