"""Every signal that ends a process ends it cleanly (README "Signals"): SIGINT, SIGTERM and SIGHUP
abort multipart uploads, remove temporary files, print one line and exit 128 + the signal's
number; `watch` drains on the first and aborts on the second."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ssec_transfer.core.plan import MiB
from ssec_transfer.s3.sse import sse_params
from tests.support.helpers import make_key_file, random_file, run_cli

pytestmark = pytest.mark.integration

STOPS = [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
OLD = b"the old object must survive"


def _start(env: dict[str, str], *args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ssec_transfer", *map(str, args)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _stop(proc: subprocess.Popen[str], signum: int) -> str:
    os.kill(proc.pid, signum)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return err


def _uploads(admin: Any, bucket: str) -> list[Any]:
    return admin.list_multipart_uploads(Bucket=bucket).get("Uploads", [])  # type: ignore[no-any-return]


@pytest.mark.parametrize(("signum", "code"), STOPS, ids=lambda v: getattr(v, "name", str(v)))
def test_signal_during_put_aborts_the_multipart_upload(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str], key_file: Any,
    signum: signal.Signals, code: int,
) -> None:  # fmt: skip
    key_path, key = key_file
    admin.put_object(Bucket=bucket, Key="obj", Body=OLD, **sse_params(key))
    src = random_file(tmp_path / "src.bin", 200 * MiB)
    proc = _start(server_env, "put", src, f"s3://{bucket}/obj", "--key-file", key_path,
                  "--part-size", "5MiB", "--concurrency", "1")  # fmt: skip
    _wait_for(lambda: bool(_uploads(admin, bucket)), proc, "the multipart upload never started")
    err = _stop(proc, signum)
    assert proc.returncode == code, err
    assert err.strip().splitlines() == [
        f"ssec-transfer: interrupted by {signum.name}; nothing partial was kept"
    ]
    assert _uploads(admin, bucket) == []
    body = admin.get_object(Bucket=bucket, Key="obj", **sse_params(key))["Body"].read()
    assert body == OLD


@pytest.mark.parametrize(("signum", "code"), STOPS, ids=lambda v: getattr(v, "name", str(v)))
def test_signal_during_get_removes_the_temporary_file(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file: Any,
    signum: signal.Signals, code: int,
) -> None:  # fmt: skip
    key_path, _ = key_file
    src = random_file(tmp_path / "src.bin", 100 * MiB)
    assert run_cli("put", src, f"s3://{bucket}/big", "--key-file", key_path,
                   env=server_env).returncode == 0  # fmt: skip
    out = tmp_path / "out"
    out.mkdir()
    dest = out / "dest.bin"
    dest.write_bytes(b"keep me")
    proc = _start(server_env, "get", f"s3://{bucket}/big", dest, "--key-file", key_path,
                  "--concurrency", "1", "--part-size", "5MiB")  # fmt: skip
    _wait_for(lambda: len(os.listdir(out)) > 1, proc, "no temporary file appeared")
    err = _stop(proc, signum)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert os.listdir(out) == ["dest.bin"]
    assert dest.read_bytes() == b"keep me"


def test_sigterm_during_streamed_rotation_keeps_the_old_object(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str], key_file: Any
) -> None:
    old_path, old = key_file
    new_path, _ = make_key_file(tmp_path, "new.key")
    src = random_file(tmp_path / "src.bin", 150 * MiB)
    assert run_cli("put", src, f"s3://{bucket}/obj", "--key-file", old_path,
                   env=server_env).returncode == 0  # fmt: skip
    proc = _start(server_env, "rotate", f"s3://{bucket}/obj", "--key-file", old_path,
                  "--new-key-file", new_path, "--via", "stream", "--part-size", "5MiB",
                  "--concurrency", "1")  # fmt: skip
    _wait_for(lambda: bool(_uploads(admin, bucket)), proc, "the rotation never started writing")
    err = _stop(proc, signal.SIGTERM)
    assert proc.returncode == 143, err
    assert "interrupted by SIGTERM" in err
    assert _uploads(admin, bucket) == []
    body = admin.get_object(Bucket=bucket, Key="obj", **sse_params(old))["Body"].read()
    assert body == src.read_bytes()


def _watch(env: dict[str, str], root: Path, bucket: str, key_path: Path) -> subprocess.Popen[str]:
    return _start(env, "watch", root, f"s3://{bucket}/w/", "--key-file", key_path,
                  "--interval", "0.1", "--settle", "0", "--part-size", "5MiB",
                  "--concurrency", "1", "--drain-timeout", "120")  # fmt: skip


def test_watch_drains_on_sighup(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, key = key_file
    root = tmp_path / "in"
    src = random_file(root / "big.bin", 60 * MiB)
    proc = _watch(server_env, root, bucket, key_path)
    _wait_for(lambda: bool(_uploads(admin, bucket)), proc, "the watcher never started uploading")
    err = _stop(proc, signal.SIGHUP)
    assert proc.returncode == 0, err
    assert "SIGHUP: finishing uploads in flight" in err
    body = admin.get_object(Bucket=bucket, Key="w/big.bin", **sse_params(key))["Body"].read()
    assert body == src.read_bytes()
    assert _uploads(admin, bucket) == []


def test_watch_aborts_on_the_second_signal(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, _ = key_file
    root = tmp_path / "in"
    random_file(root / "big.bin", 300 * MiB)
    proc = _watch(server_env, root, bucket, key_path)
    _wait_for(lambda: bool(_uploads(admin, bucket)), proc, "the watcher never started uploading")
    os.kill(proc.pid, signal.SIGTERM)
    time.sleep(0.3)
    err = _stop(proc, signal.SIGTERM)
    assert proc.returncode == 143, err
    assert "interrupted by SIGTERM" in err
    assert _uploads(admin, bucket) == []
    assert admin.list_objects_v2(Bucket=bucket).get("Contents", []) == []


def test_a_second_signal_quits_at_once(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, _ = key_file
    src = random_file(tmp_path / "src.bin", 200 * MiB)
    proc = _start(server_env, "put", src, f"s3://{bucket}/obj", "--key-file", key_path,
                  "--part-size", "5MiB", "--concurrency", "1")  # fmt: skip
    _wait_for(lambda: bool(_uploads(admin, bucket)), proc, "the multipart upload never started")
    os.kill(proc.pid, signal.SIGTERM)
    err = _stop(proc, signal.SIGTERM)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    # Either the first signal's cleanup finished before the second arrived, or the second
    # quit without it, saying where leftovers are found.
    assert "interrupted by SIGTERM" in err or "SIGTERM again: quitting without cleanup" in err


def test_a_stream_that_never_sends_does_not_hold_a_stop_signal(
    bucket: str, server_env: dict[str, str], key_file: Any
) -> None:
    """`tail -f log | put -` that sends nothing: the read blocks in a thread, and the process
    must still end on the first SIGTERM."""
    key_path, _ = key_file
    read_end, write_end = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ssec_transfer", "put", "-", f"s3://{bucket}/s", "--key-file",
             str(key_path)],
            env=server_env, stdin=read_end, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        time.sleep(2)  # started and blocked on stdin
        err = _stop(proc, signal.SIGTERM)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert proc.returncode == 143, err
    assert "interrupted by SIGTERM" in err


def test_an_interrupted_bulk_run_says_what_it_did(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, _ = key_file
    tree = tmp_path / "t"
    for i in range(3):
        random_file(tree / f"small{i}.bin", 1000)
    random_file(tree / "zbig.bin", 200 * MiB)
    proc = _start(server_env, "put", tree, f"s3://{bucket}/t/", "--recursive", "--key-file",
                  key_path, "--part-size", "5MiB", "--concurrency", "1",
                  "--max-files", "1")  # fmt: skip
    _wait_for(lambda: bool(_uploads(admin, bucket)), proc, "the large upload never started")
    err = _stop(proc, signal.SIGTERM)
    assert proc.returncode == 143, err
    assert "3 transferred, 0 skipped, 0 failed, 1 not run" in err
    assert "interrupted by SIGTERM" in err
    assert _uploads(admin, bucket) == []
