"""`python -m ssec_transfer.benchmark`: the same as `ssec-transfer bench`."""

from __future__ import annotations

import argparse
import sys

from ssec_transfer.benchmark import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ssec_transfer.benchmark",
        description="Benchmark ssec-transfer against aws s3 cp, rclone, boto3 and curl with SSE-C.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
