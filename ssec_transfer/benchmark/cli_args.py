"""The command line of `ssec-transfer bench` (and `python -m ssec_transfer.benchmark`): its
options, and the `Plan` they become once checked.

Kept apart from the harness so the options read as one piece and `ssec-transfer --help` needs
none of the measuring machinery. The options are the benchmark's own (their help speaks of the
embedded server and the peers), but their value types are the CLI's shared `argtypes`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ssec_transfer.benchmark.peers import TOOLS
from ssec_transfer.benchmark.scenarios import (
    FULL_SPECS,
    QUICK_SPECS,
    Scenario,
    scenarios_for,
    select_scenarios,
)
from ssec_transfer.cli import argtypes

# (option, default folder, what it holds): the folders the harness reads and writes.
_FOLDERS = (
    ("--out", "benchmarks/results", "results folder"),
    ("--data-dir", "benchmarks/data", "generated data, reused across runs"),
    ("--peers-dir", "benchmarks/peers", "where the peers are installed"),
)
# The servers the harness can start itself; the first is the default.
SERVERS = ("seaweedfs", "ceph")
# The idle gate of a measuring run: wait up to QUIET_WAIT s before each run for the rest of the
# machine to go idle, and repeat a run during which others used more than MAX_NOISE cores.
# `--quick` judges nothing, so by default it neither waits nor repeats.
QUIET_WAIT = 120.0
MAX_NOISE = 0.25


@dataclass(frozen=True)
class Plan:
    """The validated options."""

    embedded: bool
    server: str | None  # the embedded server to start (one of SERVERS); None on a user endpoint
    endpoint_url: str | None
    bucket: str | None
    profile: str | None
    region: str | None
    ca_bundle: str | None
    quick: bool
    runs: int
    runs_4g: int
    warmup: int
    tools: list[str]
    scenarios: list[Scenario]
    out: Path
    data_dir: Path
    peers_dir: Path
    quiet_wait: float
    max_noise: float
    nice: int

    def rounds(self, scenario: Scenario) -> tuple[int, int]:
        """(warm-up rounds, measured rounds). The 4 GiB cases run the same code paths as the
        1 GiB ones right before them, so they need no warm-up of their own."""
        if scenario.data == "4g":
            return 0, self.runs_4g
        return self.warmup, self.runs


def plan_from_args(args: argparse.Namespace) -> Plan:
    if args.embedded and args.endpoint_url:
        raise ValueError("--embedded and --endpoint-url exclude each other")
    if args.server and args.endpoint_url:
        raise ValueError("--server starts an embedded server; it excludes --endpoint-url")
    if args.endpoint_url and not args.bucket:
        raise ValueError("--endpoint-url needs --bucket (objects go below a prefix of their own)")
    if args.endpoint_url and not args.endpoint_url.startswith("https://"):
        raise ValueError("SSE-C needs HTTPS: give an https:// endpoint")
    tools = list(dict.fromkeys(args.tools or TOOLS))
    unknown = [t for t in tools if t not in TOOLS]
    if unknown:
        raise ValueError(f"unknown tool(s) {', '.join(unknown)}; choose from {', '.join(TOOLS)}")
    specs = QUICK_SPECS if args.quick else FULL_SPECS
    runs = args.runs if args.runs is not None else (1 if args.quick else 3)
    return Plan(
        embedded=not args.endpoint_url,
        server=None if args.endpoint_url else (args.server or SERVERS[0]),
        endpoint_url=args.endpoint_url,
        bucket=args.bucket,
        profile=args.profile,
        region=args.region,
        ca_bundle=args.ca_bundle,
        quick=args.quick,
        runs=runs,
        runs_4g=args.runs_4g if args.runs_4g is not None else runs,
        warmup=args.warmup,
        tools=tools,
        scenarios=select_scenarios(scenarios_for(specs), args.scenarios),
        # Absolute: the tools run with the private work folder as their current directory.
        out=args.out.absolute(),
        data_dir=args.data_dir.absolute(),
        peers_dir=args.peers_dir.absolute(),
        quiet_wait=_default(args.quiet_wait, 0.0 if args.quick else QUIET_WAIT),
        max_noise=_default(args.max_noise, float("inf") if args.quick else MAX_NOISE),
        nice=args.nice,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `ssec-transfer bench` (and `python -m ssec_transfer.benchmark`)."""
    _add_where(parser.add_argument_group("where"))
    _add_what(parser.add_argument_group("what"))
    g = parser.add_argument_group("files")
    for option, default, what in _FOLDERS:
        g.add_argument(
            option,
            type=Path,
            default=Path(default),
            metavar="DIR",
            help=f"{what} (default {default})",
        )


def _add_where(g: argparse._ArgumentGroup) -> None:
    """The server: an embedded one (SeaweedFS or Ceph RGW), or the user's endpoint and bucket.
    Not `add_connection`: there is no retry tuning to offer here and the help speaks of the
    embedded servers."""
    g.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="your S3 endpoint (https://); default: the embedded server",
    )
    g.add_argument(
        "--bucket",
        help="your bucket; objects go below a prefix of their own and are deleted afterwards",
    )
    g.add_argument(
        "--server",
        choices=SERVERS,
        help="the embedded server to start (default seaweedfs): seaweedfs (`weed mini` from "
        "PyPI) or ceph (a throwaway one-node Ceph RGW cluster from Debian's packages, "
        "installed with apt-get when missing, objects kept in RAM)",
    )
    g.add_argument(
        "--embedded",
        action="store_true",
        help="start the embedded server (the default without --endpoint-url; kept for "
        "older scripts: the same as --server seaweedfs unless --server says otherwise)",
    )
    g.add_argument(
        "--profile", help="AWS profile for credentials (else the environment, like the AWS CLI)"
    )
    g.add_argument("--region", help="signing region (default: the profile's, else us-east-1)")
    g.add_argument(
        "--ca-bundle", metavar="PEM", help="CA certificates for your endpoint (else AWS_CA_BUNDLE)"
    )


def _add_what(g: argparse._ArgumentGroup) -> None:
    """Which tools and scenarios, how many rounds, and how to keep other load out of them."""
    g.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and 1 run, without waiting for an idle machine: proves the harness "
        "works, judges nothing",
    )
    g.add_argument(
        "--runs",
        type=argtypes.positive_int,
        metavar="N",
        help="measured runs per tool and scenario (default 3; --quick: 1)",
    )
    g.add_argument(
        "--runs-4g",
        type=argtypes.positive_int,
        metavar="N",
        help="measured runs of the 4 GiB scenarios (default: --runs)",
    )
    g.add_argument(
        "--warmup",
        type=argtypes.non_negative_int,
        default=1,
        metavar="N",
        help="warm-up rounds, not counted (default 1)",
    )
    g.add_argument(
        "--tools",
        type=_names,
        action="extend",
        metavar="LIST",
        help=f"comma-separated subset of {','.join(TOOLS)}",
    )
    g.add_argument(
        "--scenarios",
        type=_names,
        action="extend",
        metavar="LIST",
        help="comma-separated subset of 1g,small,4g or 1g-up,1g-down,small-up,...",
    )
    g.add_argument(
        "--quiet-wait",
        type=float,
        metavar="S",
        help="before each run, wait up to S seconds for other processes to go idle "
        f"(default {QUIET_WAIT:.0f}; --quick: 0)",
    )
    g.add_argument(
        "--max-noise",
        type=float,
        metavar="CORES",
        help="repeat a run (twice at most) when other processes used more than this many "
        f"cores on average during it (default {MAX_NOISE}; --quick: never)",
    )
    g.add_argument(
        "--nice",
        type=int,
        default=0,
        metavar="N",
        help="run the server and the tools at this nice value; a negative one (root only) "
        "makes other work on a shared machine yield the CPU (default 0)",
    )


def _default(value: float | None, default: float) -> float:
    return default if value is None else value


def _names(text: str) -> list[str]:
    """A comma-separated list; `action="extend"` joins repeated options into one."""
    return [part.strip() for part in text.split(",") if part.strip()]
