"""Bulk transfers on a Dask cluster: the same outcomes as a local run, one ledger on the
client, a killed worker costs only what it had in flight, and keys never travel in clear."""

from __future__ import annotations

import filecmp
import json
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from ssec_transfer.apps.bulk import (
    JobOutcome,
    TransferJob,
    plan_directory_upload,
    plan_prefix_download,
    run_jobs,
)
from ssec_transfer.apps.distributed import (
    DaskCluster,
    DaskOutcomes,
    KeySource,
    batch_count,
    plan_batches,
    run_jobs_distributed,
)
from ssec_transfer.core.errors import UsageError
from ssec_transfer.core.plan import MiB
from ssec_transfer.engine import TransferConfig, TransferEngine
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.sse import sse_params
from ssec_transfer.servers.base import ServerInfo
from ssec_transfer.state.ledger import Ledger
from tests.support.faultproxy import FaultPlan, FaultProxy, ScriptedFault
from tests.support.helpers import make_key_file, random_file, run_cli

pytestmark = pytest.mark.integration

PART = 5 * MiB
CONFIG = TransferConfig(
    concurrency=4, part_size=PART, multipart_threshold=PART, max_memory=24 * MiB
)


@pytest.fixture(scope="module")
def tcp_cluster(server_env: dict[str, str]) -> Iterator[Any]:
    """A plain tcp:// LocalCluster of two worker processes, as `dask scheduler` + `dask
    worker` would give; its workers inherit the test server's AWS_* and XDG_* variables."""
    from distributed import Client, LocalCluster

    with pytest.MonkeyPatch.context() as env:
        for name in list(os.environ):
            if name.startswith("AWS_"):
                env.delenv(name)
        for name, value in server_env.items():
            if name.startswith(("AWS_", "XDG_")):
                env.setenv(name, value)
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        )  # fmt: skip
        client = Client(cluster, set_as_default=False)
        try:
            yield client
        finally:
            client.close()
            cluster.close()


def _tree(root: Path) -> Path:
    for i in range(40):
        (root / f"d{i % 4}").mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 4}" / f"small-{i}.bin").write_bytes(os.urandom(i * 997 % 50_000))
    for i in range(3):
        random_file(root / "big" / f"large-{i}.nc", 11 * MiB + i * 777)
    return root


def _vanished(tmp_path: Path, bucket: str, prefix: str, key: SSECustomerKey) -> TransferJob:
    """A file that disappears between planning and sending: a failure like any other."""
    return TransferJob(
        "upload", tmp_path / "vanished.bin", bucket, f"{prefix}vanished.bin", key, size=10
    )


def _same_tree(a: Path, b: Path) -> None:
    compared = filecmp.dircmp(a, b)
    assert not compared.left_only
    assert not compared.right_only
    for sub in compared.common_dirs:
        _same_tree(a / sub, b / sub)
    for name in compared.common_files:
        assert filecmp.cmp(a / name, b / name, shallow=False), name


def _comparable(rows: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    """Outcome lines without timings, with the run's prefix neutralised."""
    out = []
    for row in rows:
        row = {k: v for k, v in row.items() if k not in ("seconds", "mib_per_s")}
        row["destination"] = row["destination"].replace(prefix, "PREFIX/")
        row["key"] = "PREFIX/" + row["key"].split("/", 1)[1]
        out.append(row)
    return sorted(out, key=lambda r: str(r["source"]))


@asynccontextmanager
async def _distributed(
    engine: TransferEngine, jobs: list[TransferJob], cluster: DaskCluster, **kwargs: Any
) -> AsyncIterator[DaskOutcomes]:
    with anyio.fail_after(120):
        async with run_jobs_distributed(engine, jobs, cluster=cluster, **kwargs) as outcomes:
            yield outcomes


@pytest.mark.anyio
async def test_dask_local_run_matches_a_local_run(
    tmp_path: Path, bucket: str, key_file: Any, engine_kwargs: dict[str, str],
    tcp_cluster: Any,
) -> None:  # fmt: skip
    key_path, key = key_file  # a generated key: its material travels (TLS LocalCluster)
    tree = _tree(tmp_path / "tree")
    total = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())

    local_rows: list[dict[str, Any]] = []
    async with TransferEngine(**engine_kwargs, config=CONFIG, ledger=None) as engine:
        jobs = plan_directory_upload(tree, bucket, "local/", sse_key=key)
        jobs.append(_vanished(tmp_path, bucket, "local/", key))
        async with run_jobs(engine, jobs) as outcomes:
            local_rows = [o.to_dict() async for o in outcomes]

    ledger_path = tmp_path / "client-ledger.sqlite"
    moved: list[int] = []
    async with TransferEngine(**engine_kwargs, config=CONFIG, ledger=ledger_path) as engine:
        jobs = plan_directory_upload(tree, bucket, "dask/", sse_key=key)
        jobs.append(_vanished(tmp_path, bucket, "dask/", key))
        async with _distributed(
            engine, jobs, DaskCluster(local_workers=2), on_bytes=moved.append
        ) as outcomes:
            found: list[JobOutcome] = [o async for o in outcomes]
        endpoint = engine.endpoint_url
    dask_rows = [o.to_dict() for o in found]

    assert len(dask_rows) == len(jobs) == 44
    assert _comparable(dask_rows, f"s3://{bucket}/dask/") == _comparable(
        local_rows, f"s3://{bucket}/local/"
    )
    failed = [o for o in found if o.status == "failed"]
    assert [o.job.source for o in failed] == [str(tmp_path / "vanished.bin")]
    assert failed[0].error is not None
    assert outcomes.workers == 2
    assert outcomes.batches == 2  # a small run: one batch per worker
    assert 0 < outcomes.peak_requests_in_flight <= CONFIG.concurrency
    assert 0 < outcomes.peak_bytes_reserved <= CONFIG.max_memory
    assert sum(moved) >= total  # progress arrived from the workers

    # The client wrote the ledger: one row per object, as a local run would.
    ledger = Ledger(ledger_path)
    assert ledger.count() == 43
    for outcome in found:
        if outcome.status != "ok":
            continue
        assert outcome.result is not None
        row = ledger.latest(endpoint, bucket, outcome.job.key)
        assert row is not None
        assert (row.etag, row.size, row.checksum, row.key_fingerprint) == (
            outcome.result.etag, outcome.result.size, outcome.result.checksum, key.fingerprint,
        )  # fmt: skip
        assert row.local_mtime_ns == outcome.job.path.stat().st_mtime_ns

    # Download on a plain tcp:// cluster: the key is a file the workers load themselves.
    file_key = SSECustomerKey.from_file(key_path)
    out = tmp_path / "out"
    async with TransferEngine(**engine_kwargs, config=CONFIG, ledger=ledger_path) as engine:
        down = await plan_prefix_download(engine.client, bucket, "dask/", out, sse_key=file_key)
        cluster = DaskCluster(address=tcp_cluster.scheduler.address)
        async with _distributed(engine, down, cluster) as outcomes:
            got = [o async for o in outcomes]
    assert [o.status for o in got] == ["ok"] * 43
    _same_tree(tree, out)
    assert ledger.count() == 86


@pytest.mark.anyio
async def test_plain_tcp_scheduler_refuses_key_material(
    tmp_path: Path, bucket: str, key_file: Any, engine_kwargs: dict[str, str],
    tcp_cluster: Any, admin: Any,
) -> None:  # fmt: skip
    _, key = key_file  # generated here: it exists nowhere a worker could load it from
    random_file(tmp_path / "t" / "a.bin", 1000)
    jobs = plan_directory_upload(tmp_path / "t", bucket, "x/", sse_key=key)
    cluster = DaskCluster(address=tcp_cluster.scheduler.address)
    assert cluster.address is not None
    assert cluster.address.startswith("tcp://")
    async with TransferEngine(**engine_kwargs, config=CONFIG, ledger=None) as engine:
        with pytest.raises(UsageError) as raised:
            async with run_jobs_distributed(engine, jobs, cluster=cluster):
                pytest.fail("the run must be refused before it starts")
    text = str(raised.value)
    assert "refusing to send SSE-C key material" in text
    assert "tcp://" in text
    assert "--key-file" in text
    assert "tls://" in text
    assert raised.value.exit_code == 2
    assert "Contents" not in admin.list_objects_v2(Bucket=bucket)
    assert not tcp_cluster.who_has()  # no task was ever submitted


@pytest.mark.anyio
async def test_a_worker_whose_key_file_holds_another_key_fails_that_object(
    tmp_path: Path, bucket: str, key_file: Any, engine_kwargs: dict[str, str],
    tcp_cluster: Any, admin: Any,
) -> None:  # fmt: skip
    key_path, _ = key_file
    key = SSECustomerKey.from_file(key_path)
    other_path, _ = make_key_file(tmp_path, "other.key")
    for name in ("a.bin", "b.bin", "c.bin"):
        random_file(tmp_path / "t" / name, 2000)
    jobs = plan_directory_upload(tmp_path / "t", bucket, "k/", sse_key=key)

    def source_for(job: TransferJob) -> KeySource:  # b.bin's file differs "on the workers"
        path = other_path if job.key.endswith("b.bin") else key_path
        return KeySource(path=str(path), fingerprint=key.fingerprint)

    cluster = DaskCluster(address=tcp_cluster.scheduler.address)
    async with (
        TransferEngine(**engine_kwargs, config=CONFIG, ledger=None) as engine,
        _distributed(engine, jobs, cluster, key_source_for=source_for) as outcomes,
    ):
        found = {o.job.key: o async for o in outcomes}
    assert [found[k].status for k in ("k/a.bin", "k/b.bin", "k/c.bin")] == ["ok", "failed", "ok"]
    error = found["k/b.bin"].error
    assert error is not None
    assert error.exit_code == 2
    assert f"key file {other_path}" in str(error)
    assert key.fingerprint in str(error)
    assert "nothing was sent" in str(error)
    listed = {o["Key"] for o in admin.list_objects_v2(Bucket=bucket)["Contents"]}
    assert listed == {"k/a.bin", "k/c.bin"}


@pytest.mark.anyio
async def test_leaving_the_run_early_aborts_what_the_workers_have_in_flight(
    tmp_path: Path, bucket: str, key_file: Any, s3_server: ServerInfo, s3_env: dict[str, str],
    tcp_cluster: Any, admin: Any,
) -> None:  # fmt: skip
    key_path, _ = key_file
    key = SSECustomerKey.from_file(key_path)
    tree = tmp_path / "t"
    random_file(tree / "big.bin", 3 * PART + 1)
    for i in range(6):
        random_file(tree / f"small-{i}.bin", 100 + i)
    jobs = plan_directory_upload(tree, bucket, "stop/", sse_key=key)
    # big.bin hangs in its second part, as over a dead network; the caller gives up.
    stall = ScriptedFault(
        "stall", nth=2, method="PUT", path_contains="big.bin", direction="request",
        stall_seconds=300,
    )  # fmt: skip
    config = TransferConfig(concurrency=1, part_size=PART, multipart_threshold=PART)
    plan = FaultPlan.scripted(stall)
    async with FaultProxy(s3_server.endpoint_url, s3_server.ca_bundle, plan) as proxy:
        engine = TransferEngine(
            endpoint_url=proxy.endpoint_url, ca_bundle=str(proxy.ca_bundle), config=config,
            ledger=None,
        )  # fmt: skip
        cluster = DaskCluster(address=tcp_cluster.scheduler.address)
        async with engine, _distributed(engine, jobs, cluster) as outcomes:
            done = 0
            async for _ in outcomes:
                done += 1
                if done == 6:
                    break
            for _ in range(1500):
                if proxy.stats.faults:
                    break
                await anyio.sleep(0.02)
            else:
                pytest.fail("the second part of big.bin was never sent")
            await anyio.sleep(0.3)  # the part is stalled now
            started = anyio.current_time()
        assert anyio.current_time() - started < 12  # not the 300 s of the stall
    assert done == 6
    assert not admin.list_multipart_uploads(Bucket=bucket).get("Uploads")
    listed = {o["Key"] for o in admin.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert "stop/big.bin" not in listed
    assert len(listed) == 6


def _cli_has_dask() -> bool:
    from ssec_transfer.cli.main import build_parser

    _, unknown = build_parser().parse_known_args(["put", "--dask-local", "2"])
    return not unknown


@pytest.mark.skipif(not _cli_has_dask(), reason="the CLI has no --dask-local yet")
def test_cli_dask_local_prints_what_a_local_run_prints(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, _ = key_file
    tree = tmp_path / "tree"
    for i in range(12):
        random_file(tree / f"d{i % 3}" / f"s-{i}.bin", i * 1000)
    random_file(tree / "big.nc", 2 * PART + 3)
    common = ["--recursive", "--key-file", key_path, "--part-size", "5MiB", "--json"]
    runs = {}
    for prefix, extra in (("local/", []), ("dask/", ["--dask-local", "2"])):
        done = run_cli("put", tree, f"s3://{bucket}/{prefix}", *common, *extra, env=server_env)
        assert done.returncode == 0, done.stderr[-3000:]
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        summary = [line for line in lines if line["type"] == "summary"]
        assert len(summary) == 1
        assert (summary[0]["ok"], summary[0]["failed"], summary[0]["files"]) == (13, 0, 13)
        assert 0 < summary[0]["peak_requests_in_flight"] <= 8
        runs[prefix] = _comparable(
            [line for line in lines if line["type"] != "summary"], f"s3://{bucket}/{prefix}"
        )
    assert runs["dask/"] == runs["local/"]
    out = tmp_path / "out"
    got = run_cli("get", f"s3://{bucket}/dask/", out, *common, "--dask-local", "2", env=server_env)
    assert got.returncode == 0, got.stderr[-3000:]
    _same_tree(tree, out)
    one = run_cli("put", tree / "big.nc", f"s3://{bucket}/x", "--key-file", key_path,
                  "--dask-local", "2", env=server_env)  # fmt: skip
    assert one.returncode == 2
    assert "--recursive or --manifest" in one.stderr


def _pid_holding(pids: list[int], path: Path) -> int | None:
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                    return pid
            except OSError:
                continue
    return None


@pytest.mark.anyio
async def test_a_killed_worker_costs_only_what_was_in_flight(
    tmp_path: Path, bucket: str, key_file: Any, s3_server: ServerInfo, s3_env: dict[str, str],
    tcp_cluster: Any, admin: Any,
) -> None:  # fmt: skip
    # Every completed upload is a version: versions per key count the uploads.
    admin.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    key_path, _ = key_file
    key = SSECustomerKey.from_file(key_path)
    tree = tmp_path / "t"
    for i in range(12):
        random_file(tree / f"small-{i}.bin", 3000 + i)
    for i in range(3):
        random_file(tree / f"big-{i}.bin", 3 * PART + 1234)  # four parts
    victim = tree / "big-1.bin"
    jobs = plan_directory_upload(tree, bucket, "kill/", sse_key=key)
    # The third part of big-1.bin stalls mid-body: its worker is killed right then, with
    # two parts finished (and journaled) and one in flight.
    stall = ScriptedFault(
        "stall", nth=3, method="PUT", path_contains="big-1.bin", direction="request",
        stall_seconds=300,
    )  # fmt: skip
    config = TransferConfig(concurrency=1, part_size=PART, multipart_threshold=PART)
    seen: list[str] = []
    before_kill: set[str] = set()
    killed: list[int] = []

    plan = FaultPlan.scripted(stall)
    async with FaultProxy(s3_server.endpoint_url, s3_server.ca_bundle, plan) as proxy:

        async def kill_when_stalled() -> None:
            for _ in range(3000):  # up to a minute
                if proxy.stats.faults:
                    break
                await anyio.sleep(0.02)
            else:
                pytest.fail("the third part of big-1.bin was never sent")
            await anyio.sleep(0.5)  # parts 1-2 answered and journaled; part 3 stalled
            pids = list((await anyio.to_thread.run_sync(tcp_cluster.run, os.getpid)).values())
            pid = _pid_holding(pids, victim)
            assert pid is not None, "no worker holds big-1.bin open"
            before_kill.update(seen)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

        async with TransferEngine(
            endpoint_url=proxy.endpoint_url, ca_bundle=str(proxy.ca_bundle), config=config,
            ledger=tmp_path / "ledger.sqlite",
        ) as engine:  # fmt: skip
            cluster = DaskCluster(address=tcp_cluster.scheduler.address)
            async with anyio.create_task_group() as tg:
                tg.start_soon(kill_when_stalled)
                async with _distributed(engine, jobs, cluster) as outcomes:
                    found: list[JobOutcome] = []
                    async for outcome in outcomes:
                        found.append(outcome)
                        seen.append(outcome.job.key)
            endpoint = engine.endpoint_url

    assert killed
    # The run completed: every object once, all fine.
    assert sorted(seen) == sorted(j.key for j in jobs)
    assert all(o.status == "ok" for o in found), [o.error for o in found if o.error]
    assert "big-1.bin" not in {Path(k).name for k in before_kill}
    # Nothing sent twice beyond what was in flight: objects reported before the kill were
    # uploaded once; the interrupted one resumed its upload (parts 1-2 were not sent again).
    versions = Counter(
        v["Key"] for v in admin.list_object_versions(Bucket=bucket).get("Versions", [])
    )
    assert set(versions) == {j.key for j in jobs}
    assert all(versions[k] == 1 for k in before_kill), versions
    assert all(n <= 2 for n in versions.values()), versions
    assert versions["kill/big-1.bin"] == 1
    big = next(o for o in found if o.job.key == "kill/big-1.bin")
    assert big.result is not None
    assert big.result.resumed_parts >= 2
    assert not admin.list_multipart_uploads(Bucket=bucket).get("Uploads")
    # Nothing lost: every object reads back as its file, and the ledger knows each one.
    ledger = Ledger(tmp_path / "ledger.sqlite")
    for job in jobs:
        body = admin.get_object(Bucket=bucket, Key=job.key, **sse_params(key))["Body"]
        assert body.read() == job.path.read_bytes(), job.key
        assert ledger.latest(endpoint, bucket, job.key) is not None


def test_batches_balance_sizes_and_respect_caps() -> None:
    sizes: list[int | None] = [100 * MiB, 90 * MiB, 10 * MiB, None] + [1000] * 40
    groups = plan_batches(sizes, 4)
    assert sorted(i for g in groups for i in g) == list(range(len(sizes)))
    assert len(groups) == 4
    assert all(g == sorted(g) for g in groups)
    assert [0] in groups  # the two largest alone; the rest balanced over the other two
    assert [1] in groups
    light = [g for g in groups if g not in ([0], [1])]
    loads = [sum((sizes[i] or 0) + 256 * 1024 for i in g) for g in light]
    assert abs(loads[0] - loads[1]) <= 300 * 1024
    capped = plan_batches(sizes, 1, max_batch_bytes=95 * MiB, max_batch_files=10)
    assert sorted(i for g in capped for i in g) == list(range(len(sizes)))
    assert all(len(g) <= 10 for g in capped)
    assert all(sum(sizes[i] or 0 for i in g) <= 95 * MiB for g in capped if len(g) > 1)
    assert [0] in capped  # larger than the cap: a batch of its own
    assert plan_batches([5], 8) == [[0]]
    assert batch_count([1000] * 10, 2, 4) == 2  # small runs: one batch per worker thread
    assert batch_count([1 << 30] * 10, 2, 4) == 8  # large runs: four per thread
    assert plan_batches([], 8) == []


def test_key_sources_name_files_and_variables_never_their_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, key = make_key_file(tmp_path, "k.key")
    from_file = KeySource.of(SSECustomerKey.from_file(path))
    assert from_file == KeySource(path=str(path), fingerprint=key.fingerprint)
    assert not from_file.travels
    monkeypatch.setenv("DASK_TEST_KEY", key.export_base64())
    from_env = KeySource.of(SSECustomerKey.from_env("DASK_TEST_KEY"))
    assert from_env == KeySource(env="DASK_TEST_KEY", fingerprint=key.fingerprint)
    assert from_env.load() == key
    material = KeySource.of(SSECustomerKey.generate())
    assert material.travels
    assert material.material is not None
    assert material.material not in repr(material)
    assert DaskCluster(address="tls://h:8786").carries_secrets
    assert not DaskCluster(address="tcp://h:8786").carries_secrets
    assert DaskCluster(local_workers=2).carries_secrets  # started with TLS
