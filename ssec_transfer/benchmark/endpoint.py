"""The S3 side of a benchmark: the embedded SeaweedFS or the user's endpoint, and the untimed
work the harness does there with the ssec-transfer engine (seeding, read-back checks,
presigning for curl, cleanup).

On a user's endpoint the harness touches only objects below a prefix of its own
(`ssec-bench-<time>-<random>/`) and deletes them at the end, whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio

from ssec_transfer.benchmark.measure import prioritise, process_cpu_seconds
from ssec_transfer.benchmark.scenarios import DataFile, DataSet, sha256_file
from ssec_transfer.engine import TransferConfig, TransferEngine
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.sse import sse_params

T = TypeVar("T")
PRESIGN_SECONDS = 6 * 3600
EMBEDDED_BUCKET = "ssec-bench"


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
    server_pid: int | None = None  # the embedded server, to measure its CPU
    master_url: str | None = None  # embedded SeaweedFS master, to reclaim deleted space


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
def embedded_server(workdir: Path, *, nice: int = 0) -> Iterator[Connection]:
    """Start the embedded SeaweedFS (HTTPS only) and put its credentials in this process's
    environment too, where the engine's credential chain finds them."""
    from ssec_transfer.servers.seaweedfs import SeaweedFS, weed_binary

    server = SeaweedFS(workdir)
    info = server.start()
    if nice and server.pid is not None:
        prioritise(server.pid, nice)  # weed runs in a session (autogroup) of its own
    saved = {k: os.environ.get(k) for k in info.env()}
    os.environ.update(info.env())
    try:
        env = _clean_env()
        env.update(info.env())
        master = re.search(r"-master\.port=(\d+)", _last_command_line(server.log_path))
        yield Connection(
            endpoint_url=info.endpoint_url,
            bucket=EMBEDDED_BUCKET,
            region=info.region,
            ca_bundle=info.ca_bundle,
            profile=None,
            env=env,
            server={
                "kind": "embedded SeaweedFS (weed mini), HTTPS on loopback, same machine",
                "version": _weed_version(weed_binary()),
                "endpoint_url": info.endpoint_url,
            },
            server_pid=server.pid,
            master_url=f"http://127.0.0.1:{master.group(1)}" if master else None,
        )
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


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

    def reclaim_space(self) -> None:
        """Ask the embedded SeaweedFS to compact deleted data now (else GiBs pile up on disk)."""
        if self.conn.master_url is None:
            return
        url = f"{self.conn.master_url}/vol/vacuum?garbageThreshold=0.0001"
        # S310: the URL is our own loopback server's, built above.
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=120) as resp:  # noqa: S310
            resp.read()

    def server_cpu_seconds(self) -> float | None:
        return process_cpu_seconds(self.conn.server_pid)


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
