"""The engine under a hostile network: resets, 503 SlowDown, truncated and corrupted bodies.

Everything goes through tests/faultproxy.py, a TLS-terminating proxy in front of the real
server, with seeded (reproducible) faults.
"""

from __future__ import annotations

import filecmp
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ssec_transfer import IntegrityError, SSECustomerKey, TransferConfig, TransferEngine
from ssec_transfer.apps.bulk import TransferJob, run_jobs
from ssec_transfer.core.plan import MiB
from ssec_transfer.s3.client import ConnectionSettings
from ssec_transfer.s3.sse import sse_params
from ssec_transfer.servers.base import ServerInfo
from tests.support.faultproxy import FaultPlan, FaultProxy, ScriptedFault
from tests.support.helpers import random_file

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
def proxy(s3_server: ServerInfo) -> Iterator[FaultProxy]:
    with FaultProxy(s3_server.endpoint_url, s3_server.ca_bundle) as running:
        yield running


def _engine(proxy: FaultProxy, tmp_path: Path, **config: int) -> TransferEngine:
    return TransferEngine(
        endpoint_url=proxy.endpoint_url,
        ca_bundle=str(proxy.ca_bundle),
        config=TransferConfig(part_size=5 * MiB, multipart_threshold=5 * MiB, **config),
        settings=ConnectionSettings(max_attempts=10, read_timeout=10),
        ledger=tmp_path / "ledger.sqlite",
        journal=None,
    )


async def test_two_hundred_transfers_under_faults(
    proxy: FaultProxy, tmp_path: Path, bucket: str, admin, s3_env: dict[str, str]
) -> None:  # type: ignore[no-untyped-def]
    key = SSECustomerKey.generate()
    sizes = [1 + (i * 7919) % (256 * 1024) for i in range(90)] + [6 * MiB + i for i in range(10)]
    sources = [random_file(tmp_path / "up" / f"f{i:03}.bin", n) for i, n in enumerate(sizes)]
    proxy.plan = FaultPlan(seed=20261126, reset=0.05, slowdown=0.05, truncate=0.01)
    async with _engine(proxy, tmp_path, concurrency=6) as engine:
        uploads = [TransferJob("upload", p, bucket, p.name, key) for p in sources]
        downloads = [
            TransferJob("download", tmp_path / "down" / p.name, bucket, p.name, key)
            for p in sources
        ]
        failed = []
        for jobs in (uploads, downloads):
            async with run_jobs(engine, jobs) as outcomes:
                failed += [o async for o in outcomes if o.status != "ok"]
    assert failed == [], [str(o.error) for o in failed]
    for src in sources:
        assert filecmp.cmp(src, tmp_path / "down" / src.name, shallow=False)
    assert admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    summary = proxy.stats.summary()
    injected = summary["faults_injected"]
    assert sum(injected.values()) >= 10, summary
    report = {"transfers": 200, "requests": summary["requests"], "faults": injected}
    print("fault run:", json.dumps(report, sort_keys=True))
    (tmp_path / "fault-report.json").write_text(json.dumps(report))


async def test_corrupted_download_is_detected_never_written(
    proxy: FaultProxy, tmp_path: Path, bucket: str, s3_env: dict[str, str]
) -> None:
    key = SSECustomerKey.generate()
    src = random_file(tmp_path / "src.bin", 12 * MiB)
    dest = tmp_path / "dest.bin"
    dest.write_bytes(b"old")
    async with _engine(proxy, tmp_path, concurrency=2) as engine:
        await engine.upload(src, bucket, "obj", sse_key=key)
        proxy.plan = FaultPlan.scripted(
            ScriptedFault("corrupt", method="GET", nth=2, direction="response", at=0.5)
        )
        with pytest.raises(IntegrityError, match="corrupted in transit"):
            await engine.download(bucket, "obj", dest, sse_key=key)
    assert proxy.stats.injected()["corrupt"] == 1
    assert dest.read_bytes() == b"old"
    assert [n for n in os.listdir(tmp_path) if n.startswith(".dest")] == []


async def test_corrupted_upload_part_is_sent_again_where_the_server_checks(
    proxy: FaultProxy,
    s3_server: ServerInfo,
    tmp_path: Path,
    bucket: str,
    admin,
    s3_env: dict[str, str],
) -> None:  # type: ignore[no-untyped-def]
    key = SSECustomerKey.generate()
    src = random_file(tmp_path / "src.bin", 12 * MiB)
    proxy.plan = FaultPlan.scripted(
        ScriptedFault("corrupt", method="PUT", nth=2, direction="request", at=0.3)
    )
    async with _engine(proxy, tmp_path, concurrency=1) as engine:
        result = await engine.upload(src, bucket, "obj", sse_key=key)
    assert proxy.stats.injected()["corrupt"] == 1
    body = admin.get_object(Bucket=bucket, Key="obj", **sse_params(key))["Body"].read()
    if s3_server.name == "seaweedfs":  # verifies CRC32C: the part was refused and sent again
        assert body == src.read_bytes()
    else:  # Ceph 16 ignores checksum headers: the client digest is what reveals it
        assert body != src.read_bytes()
        from ssec_transfer.core.crc import crc32c, digest_text

        assert digest_text(crc32c(body)) != result.checksum
