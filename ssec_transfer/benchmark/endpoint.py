"""The S3 side of a benchmark: an embedded server (SeaweedFS, or a throwaway Ceph RGW cluster)
or the user's endpoint, and the untimed work the harness does there with the ssec-transfer
engine (seeding, read-back checks, presigning for curl, cleanup).

On a user's endpoint the harness touches only objects below a prefix of its own
(`ssec-bench-<time>-<random>/`) and deletes them at the end, whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from ssec_transfer.benchmark.measure import prioritise, process_cpu_seconds
from ssec_transfer.benchmark.scenarios import DataFile, DataSet, GiB, MiB, sha256_file
from ssec_transfer.engine import TransferConfig, TransferEngine
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.sse import sse_params

if TYPE_CHECKING:
    from ssec_transfer.servers.base import ServerInfo

T = TypeVar("T")
PRESIGN_SECONDS = 6 * 3600
EMBEDDED_BUCKET = "ssec-bench"
SEAWEEDFS_RECLAIM_ABOVE = 256 * MiB  # compact SeaweedFS's volumes after deleting this much
CEPH_DAEMONS = ("radosgw", "ceph-osd", "ceph-mon")
CEPH_GC_TIMEOUT = 300.0
# What aws and boto3 need on Ceph RGW 16: at botocore's default (`when_supported`) every upload
# is sent with aws-chunked streamed checksums, which RGW 16 refuses (411 MissingContentLength).
# The harness checks this on every run (`harness._probe_defaults`) and reports what it saw.
CEPH_TOOL_ENV = {"AWS_REQUEST_CHECKSUM_CALCULATION": "when_required"}
CEPH_TOOL_ENV_TOOLS = ("aws", "boto3")  # the peers built on botocore, which read it
CEPH_CHECKSUM_NOTE = (
    "On Ceph RGW 16, aws and boto3 ran with AWS_REQUEST_CHECKSUM_CALCULATION=when_required "
    "and otherwise at their defaults: at botocore's default (when_supported) they send every "
    "upload as aws-chunked with a trailing CRC32, which RGW 16 refuses with 411 "
    "MissingContentLength (the probe below shows what this run saw). Their downloads need no "
    "setting. ssec-transfer always sends checksums only when required; rclone and curl need "
    "nothing."
)


class VerificationError(Exception):
    """A tool's result differs from the source data."""


@dataclass(frozen=True)
class Connection:
    endpoint_url: str
    bucket: str
    region: str
    ca_bundle: Path | None
    profile: str | None
    env: dict[str, str]  # environment for the tools: credentials, CA, region
    server: dict[str, Any]  # what the report says about the server
    server_pids: tuple[int, ...] = ()  # the embedded server's processes, to measure their CPU
    # Frees the space of deleted objects now (an embedded server's own garbage collection),
    # after deleting at least `reclaim_above` bytes.
    reclaim: Callable[[], None] | None = field(default=None, repr=False)
    reclaim_above: int = 0
    notes: tuple[str, ...] = ()  # what the report must say about runs on this server


def new_prefix() -> str:
    return f"ssec-bench-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"


def _clean_env() -> dict[str, str]:
    """The caller's environment without AWS settings that would point the tools elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    return env


def _weed_version(binary: Path) -> str:
    import subprocess

    proc = subprocess.run([str(binary), "version"], capture_output=True, text=True, check=False)
    return (proc.stdout or proc.stderr).strip().splitlines()[0] if proc.returncode == 0 else "?"


@contextlib.contextmanager
def _server_environment(info: ServerInfo) -> Iterator[dict[str, str]]:
    """The server's credentials in this process's environment too, where the engine's
    credential chain finds them, for the duration; yields the environment for the tools."""
    saved = {k: os.environ.get(k) for k in info.env()}
    os.environ.update(info.env())
    try:
        env = _clean_env()
        env.update(info.env())
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def embedded_server(workdir: Path, *, nice: int = 0) -> Iterator[Connection]:
    """Start the embedded SeaweedFS (HTTPS only)."""
    from ssec_transfer.servers.seaweedfs import SeaweedFS, weed_binary

    server = SeaweedFS(workdir)
    try:
        info = server.start()
        if nice and server.pid is not None:
            prioritise(server.pid, nice)  # weed runs in a session (autogroup) of its own
        with _server_environment(info) as env:
            master = re.search(r"-master\.port=(\d+)", _last_command_line(server.log_path))
            master_url = f"http://127.0.0.1:{master.group(1)}" if master else None
            yield Connection(
                endpoint_url=info.endpoint_url,
                bucket=EMBEDDED_BUCKET,
                region=info.region,
                ca_bundle=info.ca_bundle,
                profile=None,
                env=env,
                server={
                    "kind": "embedded SeaweedFS (weed mini), HTTPS on loopback, same machine",
                    "name": "seaweedfs",
                    "version": _weed_version(weed_binary()),
                    "endpoint_url": info.endpoint_url,
                    "cpu_measured": "the weed process",
                },
                server_pids=() if server.pid is None else (server.pid,),
                reclaim=None if master_url is None else lambda: _seaweedfs_vacuum(master_url),
                reclaim_above=SEAWEEDFS_RECLAIM_ABOVE,
            )
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _seaweedfs_vacuum(master_url: str) -> None:
    """Ask SeaweedFS to compact deleted data now (else GiBs pile up on disk)."""
    url = f"{master_url}/vol/vacuum?garbageThreshold=0.0001"
    # S310: the URL is our own loopback server's.
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=120) as resp:  # noqa: S310
        resp.read()


def ceph_memstore_bytes(largest_data_set: int) -> int:
    """The RAM the Ceph OSD may fill: one data set stored (seeded, or a tool's upload), one in
    flight and room for what garbage collection has not freed yet."""
    return max(2 * GiB, 2 * largest_data_set + GiB)


@contextlib.contextmanager
def ceph_server(*, memstore_bytes: int, nice: int = 0) -> Iterator[Connection]:
    """Start a throwaway one-node Ceph RGW cluster (one monitor, one memstore OSD, radosgw
    serving HTTPS), as the test suite and `ssec-transfer server --kind ceph` do.

    Its state goes to a short folder of its own under the temporary directory (mode 0700):
    the daemons' admin sockets live there and a Unix socket path may not exceed 107 bytes.
    """
    from ssec_transfer.servers.ceph import CephRGW, ensure_ceph_installed

    ensure_ceph_installed()
    workdir = Path(tempfile.mkdtemp(prefix="ssec-bench-ceph-"))
    server = CephRGW(workdir, memstore_bytes=memstore_bytes)
    try:
        info = server.start()
        pids = ceph_daemon_pids(server.conf)
        if nice:
            for pid in pids.values():
                prioritise(pid, nice)  # each daemon runs in a session (autogroup) of its own
        missing = [d for d in CEPH_DAEMONS if d not in pids]
        measured = ", ".join(f"{d} (pid {pids[d]})" for d in CEPH_DAEMONS if d in pids)
        cpu_note = (
            "Server CPU-s is the sum of the Ceph daemons' user+system time "
            f"({', '.join(CEPH_DAEMONS)}, from /proc/PID/stat, every thread included): "
            "radosgw does HTTP, TLS, SSE-C encryption and the S3 logic, the OSD stores the "
            "objects (in RAM: memstore), the monitor is nearly idle. The radosgw-admin "
            "garbage collection the harness runs between runs is not counted."
        )
        if missing:
            cpu_note += f" Not found, so not counted: {', '.join(missing)}."
        with _server_environment(info) as env:
            env.update(CEPH_TOOL_ENV)
            yield Connection(
                endpoint_url=info.endpoint_url,
                bucket=EMBEDDED_BUCKET,
                region=info.region,
                ca_bundle=info.ca_bundle,
                profile=None,
                env=env,
                server={
                    "kind": "embedded Ceph RGW (one monitor, one memstore OSD, radosgw with "
                    "beast), HTTPS on loopback, same machine",
                    "name": "ceph",
                    "version": _ceph_version(),
                    "endpoint_url": info.endpoint_url,
                    "memstore_bytes": memstore_bytes,
                    "cpu_measured": measured or "nothing (no daemon found)",
                    "tool_env": dict(CEPH_TOOL_ENV),
                    "tool_env_tools": list(CEPH_TOOL_ENV_TOOLS),
                },
                server_pids=tuple(pids.values()),
                reclaim=lambda: _ceph_gc(server.conf),
                # Every deletion: a multipart object's parts wait for RGW's collector, whose
                # work would otherwise land in a later run's server CPU.
                reclaim_above=0,
                notes=(
                    cpu_note,
                    "Ceph's OSD keeps objects in RAM (memstore): no disk I/O on the server side, "
                    "unlike SeaweedFS, which writes to its volume files.",
                    CEPH_CHECKSUM_NOTE,
                ),
            )
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def ceph_daemon_pids(conf: Path) -> dict[str, int]:
    """The pids of the Ceph daemons started with config file `conf` (radosgw, ceph-osd,
    ceph-mon), found in /proc by their command lines; another cluster on the machine (a test
    suite's) has another config file and is not counted."""
    found: dict[str, int] = {}
    wanted = str(conf).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        name = os.path.basename(argv[0]).decode(errors="replace") if argv else ""
        if name in CEPH_DAEMONS and wanted in argv:
            found[name] = int(entry.name)
    return found


def _ceph_version() -> str:
    try:
        proc = subprocess.run(
            ["radosgw", "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "?"
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0] if proc.returncode == 0 and lines else "?"


def _ceph_gc(conf: Path) -> None:
    """Run RGW's garbage collection now: deleted multipart objects leave their parts to it,
    and the OSD keeps them in RAM until it runs (by itself, only every few tens of seconds)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            ["radosgw-admin", "-c", str(conf), "gc", "process", "--include-all"],
            capture_output=True,
            timeout=CEPH_GC_TIMEOUT,
            check=False,
        )


def _last_command_line(log: Path) -> str:
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.startswith("=== ")]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def user_endpoint(
    endpoint_url: str,
    bucket: str,
    *,
    region: str | None,
    ca_bundle: str | None,
    profile: str | None,
) -> Connection:
    """The user's own endpoint; credentials resolve like the AWS CLI (environment, profile)."""
    from aiobotocore.session import AioSession

    resolved_region = (
        region or AioSession(profile=profile).get_config_variable("region") or "us-east-1"
    )
    ca = ca_bundle or os.environ.get("AWS_CA_BUNDLE")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
    env["AWS_DEFAULT_REGION"] = resolved_region
    if profile:
        env["AWS_PROFILE"] = profile
    return Connection(
        endpoint_url=endpoint_url,
        bucket=bucket,
        region=resolved_region,
        ca_bundle=Path(ca) if ca else None,
        profile=profile,
        env=env,
        server={"kind": "user endpoint", "endpoint_url": endpoint_url, "bucket": bucket},
    )


class Store:
    """Untimed engine work on the endpoint. Each call runs its own short event loop."""

    def __init__(self, conn: Connection, key: SSECustomerKey) -> None:
        self.conn = conn
        self.key = key

    def _engine(self, concurrency: int = 8) -> TransferEngine:
        return TransferEngine(
            endpoint_url=self.conn.endpoint_url,
            profile=self.conn.profile,
            region=self.conn.region,
            ca_bundle=str(self.conn.ca_bundle) if self.conn.ca_bundle else None,
            config=TransferConfig(concurrency=concurrency),
        )

    def _run(self, fn: Callable[[TransferEngine], Awaitable[T]]) -> T:
        async def main() -> T:
            async with self._engine() as engine:
                return await fn(engine)

        return anyio.run(main)

    def ensure_bucket(self, *, create: bool) -> None:
        async def go(engine: TransferEngine) -> None:
            if create:
                await engine.client.create_bucket(Bucket=self.conn.bucket)
            else:  # never create (or touch) anything outside our prefix on a user's endpoint
                await engine.client.head_bucket(Bucket=self.conn.bucket)

        self._run(go)

    def seed(self, data: DataSet, prefix: str) -> None:
        """Upload a data set for the download scenarios (and check it), with the engine."""

        async def go(engine: TransferEngine) -> None:
            async def one(f: DataFile) -> None:
                await engine.upload(
                    data.path(f), self.conn.bucket, f"{prefix}/{f.rel}", sse_key=self.key
                )

            await _each(data.files, one)

        self._run(go)

    def check(self, data: DataSet, prefix: str, scratch: Path) -> None:
        """Read every object back with the key and compare it with the generated bytes."""
        scratch.mkdir(parents=True, exist_ok=True)

        async def go(engine: TransferEngine) -> None:
            found = set(await list_keys(engine, self.conn.bucket, prefix + "/"))
            wanted = {f"{prefix}/{f.rel}" for f in data.files}
            if found != wanted:
                missing, extra = sorted(wanted - found), sorted(found - wanted)
                raise VerificationError(
                    f"objects differ: missing {missing[:3]}, unexpected {extra[:3]}"
                )

            async def one(f: DataFile) -> None:
                dest = scratch / f.rel.replace("/", "_")
                await engine.download(self.conn.bucket, f"{prefix}/{f.rel}", dest, sse_key=self.key)
                try:
                    digest = await anyio.to_thread.run_sync(sha256_file, dest)
                finally:
                    dest.unlink(missing_ok=True)
                if digest != f.sha256:
                    raise VerificationError(f"{prefix}/{f.rel} read back differs from the source")

            await _each(data.files, one)

        try:
            self._run(go)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def presign(self, method: str, keys: Sequence[str]) -> list[str]:
        """URLs whose signature covers the three SSE-C headers (the key itself is not in them)."""
        operation = {"PUT": "put_object", "GET": "get_object"}[method]

        async def go(engine: TransferEngine) -> list[str]:
            return [
                await engine.client.generate_presigned_url(
                    operation,
                    Params={"Bucket": self.conn.bucket, "Key": k, **sse_params(self.key)},
                    ExpiresIn=PRESIGN_SECONDS,
                )
                for k in keys
            ]

        return self._run(go)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object and abort every multipart upload under `prefix`/."""

        async def go(engine: TransferEngine) -> int:
            client = engine.client
            keys = await list_keys(engine, self.conn.bucket, prefix + "/")
            for i in range(0, len(keys), 1000):
                batch = [{"Key": k} for k in keys[i : i + 1000]]
                await client.delete_objects(
                    Bucket=self.conn.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            uploads = await client.list_multipart_uploads(
                Bucket=self.conn.bucket, Prefix=prefix + "/"
            )
            for up in uploads.get("Uploads", []):
                await client.abort_multipart_upload(
                    Bucket=self.conn.bucket, Key=up["Key"], UploadId=up["UploadId"]
                )
            return len(keys)

        return self._run(go)

    def reclaim_space(self, deleted_bytes: int) -> None:
        """Let the embedded server free what was just deleted, when it needs telling and
        enough was deleted; nothing on a user's endpoint."""
        if self.conn.reclaim is not None and deleted_bytes >= self.conn.reclaim_above:
            self.conn.reclaim()

    def server_cpu_seconds(self) -> float | None:
        """CPU seconds the embedded server's processes have used so far (None when none is
        measurable: a user's endpoint, or every process gone)."""
        readings = [process_cpu_seconds(pid) for pid in self.conn.server_pids]
        known = [r for r in readings if r is not None]
        return sum(known) if known else None


async def list_keys(engine: TransferEngine, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    paginator = engine.client.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys


async def _each(
    files: Sequence[DataFile], fn: Callable[[DataFile], Awaitable[None]], limit: int = 8
) -> None:
    limiter = anyio.CapacityLimiter(limit)

    async def one(f: DataFile) -> None:
        async with limiter:
            await fn(f)

    async with anyio.create_task_group() as tg:
        for f in files:
            tg.start_soon(one, f)
