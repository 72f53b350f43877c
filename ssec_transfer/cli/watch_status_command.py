"""`watch --status DIR`: the report of `apps.watch_status`, as lines or one JSON summary."""

from __future__ import annotations

import argparse
from pathlib import Path

from ssec_transfer.cli.output import print_json


async def show_status(args: argparse.Namespace) -> int:
    """Print the status of the watcher of DIR; exit 0 (a missing state file is exit 2)."""
    import anyio

    from ssec_transfer.apps.watch_status import describe, read_status
    from ssec_transfer.core.report import summary_record

    status = await anyio.to_thread.run_sync(read_status, Path(args.directory), args.state)
    if args.json:
        print_json(summary_record("watch-status", **status.to_dict(), exit_code=0))
    else:
        for line in describe(status):
            print(line)
    return 0
