"""--bwlimit: offered by every command that moves payload, refused with exit 2 when it is
not a rate, carried into the engine as one bucket, and divided among --dask-local workers."""

from __future__ import annotations

import argparse

import pytest

from ssec_transfer.apps.distributed import DaskCluster, worker_config
from ssec_transfer.apps.distributed_worker import process_bucket
from ssec_transfer.cli.common import engine_for
from ssec_transfer.cli.main import build_parser, main
from ssec_transfer.core.config import TransferConfig
from ssec_transfer.core.errors import UsageError

MiB = 1024 * 1024


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices)


def test_every_transfer_command_takes_bwlimit() -> None:
    commands = _subparsers(build_parser())
    for name in ("put", "get", "cp", "rotate", "watch"):
        flags = {f for a in commands[name]._actions for f in a.option_strings}
        assert "--bwlimit" in flags, name
    assert "per process" in commands["put"].format_help().replace("\n", " ")


def test_the_rate_reaches_the_engine_as_one_bucket() -> None:
    args = build_parser().parse_args(["get", "s3://b/k", "out", "--bwlimit", "2MiB"])
    engine = engine_for(args)
    assert engine.config.bwlimit == 2 * MiB
    assert engine.bandwidth is not None
    assert engine.bandwidth.rate == 2 * MiB


@pytest.mark.parametrize("value", ["0", "off"])
def test_zero_or_off_means_no_limit(value: str) -> None:
    args = build_parser().parse_args(["put", "f", "s3://b/k", "--bwlimit", value])
    engine = engine_for(args)
    assert engine.config.bwlimit is None
    assert engine.bandwidth is None


def test_no_option_no_bucket() -> None:
    engine = engine_for(build_parser().parse_args(["put", "f", "s3://b/k"]))
    assert engine.bandwidth is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("fast", "invalid rate 'fast': use bytes per second with a unit such as 10MiB"),
        ("100", "below the lowest limit, 1KiB/s"),
    ],
)
def test_a_bad_rate_is_refused_with_exit_2(
    value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["put", "f", "s3://b/k", "--bwlimit", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--bwlimit" in err
    assert message in err


def test_the_engine_refuses_a_rate_below_one_byte() -> None:
    with pytest.raises(UsageError, match="bandwidth limit 0"):
        TransferConfig(bwlimit=0).validate()


def test_dask_local_workers_share_the_rate_and_remote_workers_each_apply_it() -> None:
    config = TransferConfig(bwlimit=10 * MiB)
    assert worker_config(config, DaskCluster(local_workers=4)).bwlimit == 10 * MiB // 4
    assert worker_config(config, DaskCluster(address="tcp://h:8786")).bwlimit == 10 * MiB
    assert worker_config(TransferConfig(), DaskCluster(local_workers=4)).bwlimit is None


def test_a_dask_worker_process_runs_all_its_batches_under_one_bucket() -> None:
    """Batches run one after another, or side by side in a worker's threads: one limit."""
    config = TransferConfig(bwlimit=3 * MiB)
    first = process_bucket(config)
    assert first is not None
    assert process_bucket(TransferConfig(bwlimit=3 * MiB, concurrency=2)) is first
    assert process_bucket(TransferConfig()) is None
