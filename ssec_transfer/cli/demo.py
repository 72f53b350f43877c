"""`make demo`: the whole story on the embedded server, in one command.

Start SeaweedFS over HTTPS, make a key, upload a random file, download it, prove it is
byte-identical, prove that reading without the key or with another key fails, print MiB/s.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import sys
import tempfile
from pathlib import Path

import anyio

from ssec_transfer.cli.progress import ProgressBar
from ssec_transfer.core.errors import MissingKeyError, WrongKeyError
from ssec_transfer.core.units import format_size
from ssec_transfer.engine import TransferConfig, TransferEngine
from ssec_transfer.keys.customer import SSECustomerKey


def _say(text: str) -> None:
    print(text, flush=True)


def write_random_file(path: Path, size: int) -> None:
    chunk = 8 * 1024 * 1024
    with path.open("wb") as f:
        left = size
        while left:
            n = min(chunk, left)
            f.write(os.urandom(n))
            left -= n


async def run_demo(*, size: int, workdir: Path | None, config: TransferConfig) -> int:
    from ssec_transfer.servers.seaweedfs import SeaweedFS

    own_dir = workdir is None
    root = Path(tempfile.mkdtemp(prefix="ssec-transfer-demo-")) if workdir is None else workdir
    root.mkdir(parents=True, exist_ok=True)
    try:
        _say("1. starting the embedded SeaweedFS server (HTTPS only, fresh CA and credentials)")
        server = SeaweedFS(root / "server")
        info = await anyio.to_thread.run_sync(server.start)
        try:
            return await _demo_steps(root, info, size, config)
        finally:
            _say("8. stopping the server")
            await anyio.to_thread.run_sync(server.stop)
    finally:
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)


async def _demo_steps(root: Path, info: object, size: int, config: TransferConfig) -> int:
    from ssec_transfer.servers.base import ServerInfo

    assert isinstance(info, ServerInfo)
    _say(f"   endpoint {info.endpoint_url}, CA {info.ca_bundle}")
    os.environ.update(
        AWS_ACCESS_KEY_ID=info.access_key,
        AWS_SECRET_ACCESS_KEY=info.secret_key,
    )
    key_path = root / "sse-c.key"
    key = SSECustomerKey.generate()
    key.write_new_file(key_path)
    _say(f"2. made a key in {key_path} (mode 0600), fingerprint {key.fingerprint}")

    source = root / "random.bin"
    _say(f"3. writing {format_size(size)} of random data to {source}")
    await anyio.to_thread.run_sync(write_random_file, source, size)

    bucket = "ssec-demo"
    progress = sys.stderr.isatty()
    # A throwaway server: keep its objects out of the user's ledger and resume journal.
    async with TransferEngine(
        endpoint_url=info.endpoint_url,
        ca_bundle=str(info.ca_bundle),
        config=config,
        ledger=None,
        journal=None,
    ) as engine:
        await engine.client.create_bucket(Bucket=bucket)
        with ProgressBar("upload", enabled=progress) as bar:
            up = await engine.upload(source, bucket, "random.bin", sse_key=key, progress=bar)
        _say(f"4. uploaded in {up.parts} parts: {up.seconds:.2f} s, {up.mib_per_s:.1f} MiB/s")
        copy = root / "random.copy"
        with ProgressBar("download", enabled=progress) as bar:
            down = await engine.download(bucket, "random.bin", copy, sse_key=key, progress=bar)
        _say(
            f"5. downloaded in {down.parts} ranged GETs: {down.seconds:.2f} s, "
            f"{down.mib_per_s:.1f} MiB/s"
        )
        same = await anyio.to_thread.run_sync(filecmp.cmp, source, copy, False)
        _say(f"6. byte-identical: {'yes' if same else 'NO'}")
        copy.unlink()

        failures = 0
        try:
            await engine.download(bucket, "random.bin", root / "nokey.bin")
        except MissingKeyError as exc:
            _say(f"7. without the key: refused as expected -> {exc.message}")
        else:
            failures += 1
            _say("7. without the key: the server returned data (unexpected)")
        try:
            await engine.download(
                bucket, "random.bin", root / "wrongkey.bin", sse_key=SSECustomerKey.generate()
            )
        except WrongKeyError as exc:
            _say(f"   with a wrong key: refused as expected -> {exc.message}")
        else:
            failures += 1
            _say("   with a wrong key: the server returned data (unexpected)")
        leftovers = [
            name
            for name in await anyio.to_thread.run_sync(os.listdir, root)
            if name.lstrip(".").startswith(("nokey", "wrongkey"))
        ]
        if leftovers:
            failures += 1
            _say(f"   partial files were left behind: {leftovers}")
    _say(
        f"summary: upload {up.mib_per_s:.1f} MiB/s, download {down.mib_per_s:.1f} MiB/s, "
        f"byte-identical {'yes' if same else 'NO'}"
    )
    return 0 if same and not failures else 1
