"""A failed or interrupted upload leaves nothing on the server and the old object intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from ssec_transfer import SSECustomerKey, TransferConfig, TransferEngine
from ssec_transfer.core.errors import LocalIOError
from ssec_transfer.core.plan import MiB
from ssec_transfer.s3.sse import sse_params
from tests.support.helpers import random_file

pytestmark = pytest.mark.integration

OLD = b"the old object must survive"


class InjectedFailure(Exception):
    pass


def _old_object(admin, bucket: str, key: SSECustomerKey) -> None:  # type: ignore[no-untyped-def]
    admin.put_object(Bucket=bucket, Key="obj", Body=OLD, **sse_params(key))


def _assert_old_object_intact(admin, bucket: str, key: SSECustomerKey) -> None:  # type: ignore[no-untyped-def]
    body = admin.get_object(Bucket=bucket, Key="obj", **sse_params(key))["Body"].read()
    assert body == OLD
    assert admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.mark.anyio
async def test_failure_mid_upload_aborts_multipart(
    tmp_path: Path, bucket: str, admin, engine_kwargs: dict[str, str]
) -> None:  # type: ignore[no-untyped-def]
    key = SSECustomerKey.generate()
    _old_object(admin, bucket, key)
    src = random_file(tmp_path / "src.bin", 40 * MiB)
    sent = 0

    def fail_after_two_parts(done: int, total: int) -> None:
        nonlocal sent
        sent += done
        if sent >= 10 * MiB:
            raise InjectedFailure("network cable pulled")

    config = TransferConfig(part_size=5 * MiB, concurrency=2)
    async with TransferEngine(config=config, **engine_kwargs) as engine:
        with pytest.raises(InjectedFailure):
            await engine.upload(src, bucket, "obj", sse_key=key, progress=fail_after_two_parts)
        stats = engine.scheduler.stats()
        assert (stats.bytes_reserved, stats.requests_in_flight) == (0, 0)
    _assert_old_object_intact(admin, bucket, key)


@pytest.mark.anyio
async def test_cancellation_mid_upload_aborts_multipart(
    tmp_path: Path, bucket: str, admin, engine_kwargs: dict[str, str]
) -> None:  # type: ignore[no-untyped-def]
    key = SSECustomerKey.generate()
    _old_object(admin, bucket, key)
    src = random_file(tmp_path / "src.bin", 40 * MiB)
    started = anyio.Event()

    def note_progress(done: int, total: int) -> None:
        if done:
            started.set()

    config = TransferConfig(part_size=5 * MiB, concurrency=1)
    async with TransferEngine(config=config, **engine_kwargs) as engine:
        async with anyio.create_task_group() as tg:

            async def upload() -> None:
                await engine.upload(src, bucket, "obj", sse_key=key, progress=note_progress)

            tg.start_soon(upload)
            await started.wait()
            tg.cancel_scope.cancel()
        stats = engine.scheduler.stats()
        assert (stats.bytes_reserved, stats.requests_in_flight) == (0, 0)
    _assert_old_object_intact(admin, bucket, key)


def test_ctrl_c_mid_upload_aborts_multipart(
    tmp_path: Path, bucket: str, admin, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    key_path, key = key_file
    _old_object(admin, bucket, key)
    src = random_file(tmp_path / "src.bin", 200 * MiB)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ssec_transfer", "put", str(src), f"s3://{bucket}/obj",
         "--key-file", str(key_path), "--part-size", "5MiB", "--concurrency", "1"],
        env=server_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not admin.list_multipart_uploads(Bucket=bucket).get("Uploads"):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the multipart upload never started"
        time.sleep(0.05)
    time.sleep(0.3)  # a few parts in flight
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert "Traceback" not in err
    _assert_old_object_intact(admin, bucket, key)


@pytest.mark.anyio
@pytest.mark.parametrize("change", ["rewrite", "append"])
async def test_file_changed_during_multipart_upload_keeps_the_old_object(
    tmp_path: Path, bucket: str, admin, engine_kwargs: dict[str, str], change: str
) -> None:  # type: ignore[no-untyped-def]
    """The change check runs before CompleteMultipartUpload: a file rewritten (or appended
    to) mid-upload fails the upload and the previous object stays, never a mix of both."""
    key = SSECustomerKey.generate()
    _old_object(admin, bucket, key)
    src = random_file(tmp_path / "src.bin", 20 * MiB)
    changed = False

    def change_after_first_part(done: int, total: int) -> None:
        nonlocal changed
        if done and not changed:
            changed = True
            with src.open("r+b" if change == "rewrite" else "ab") as f:
                f.write(os.urandom(MiB))
            stamp = time.time() + 5
            os.utime(src, (stamp, stamp))

    config = TransferConfig(part_size=5 * MiB, concurrency=1)
    async with TransferEngine(config=config, **engine_kwargs) as engine:
        with pytest.raises(LocalIOError, match="changed while it was being uploaded"):
            await engine.upload(src, bucket, "obj", sse_key=key, progress=change_after_first_part)
    assert changed
    _assert_old_object_intact(admin, bucket, key)
