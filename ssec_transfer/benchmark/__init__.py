"""The benchmark harness behind `ssec-transfer bench`: ssec-transfer beside aws s3 cp, rclone,
boto3's TransferManager and curl, on the same server and the same data, with SSE-C.

Kept import-light: the harness (and matplotlib) load only when `run` is called; the options
are in `cli_args`.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `bench` options to `parser`."""
    from ssec_transfer.benchmark.cli_args import add_arguments as add

    add(parser)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; returns 0, 1 (some run failed) or 2 (bad options)."""
    from ssec_transfer.benchmark.harness import run as run_harness

    return run_harness(args)


__all__ = ["add_arguments", "run"]
