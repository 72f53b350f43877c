"""The command line without a server: every command reaches a handler, and combinations the
bulk runner cannot honour are refused before any connection."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from ssec_transfer.cli import transfer_commands
from ssec_transfer.cli.main import HANDLERS, build_parser, main


def _subcommands(parser: argparse.ArgumentParser) -> list[str]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(actions[0].choices)


def test_every_command_has_a_handler_and_keeps_its_place_in_the_help() -> None:
    names = _subcommands(build_parser())
    assert names == [
        "put", "get", "head", "presign", "keygen", "cp", "rotate", "sync", "ls", "rm", "mv",
        "grant", "post", "watch", "cleanup", "doctor", "server", "bench", "demo", "ledger",
        "keyring", "config", "completion",
    ]  # fmt: skip
    assert set(HANDLERS) == set(names)


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the command gets as far as opening an engine."""

    def refuse(args: Any) -> Any:
        raise AssertionError("the command tried to connect")

    monkeypatch.setattr(transfer_commands, "engine_for", refuse)


@pytest.mark.usefixtures("no_engine")
def test_dask_for_a_single_object_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["get", "s3://bucket/key", str(tmp_path / "out"), "--dask-local", "2"])
    assert code == 2
    assert "add --recursive or --manifest" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["cp", "rotate"])
def test_dask_for_one_object_copy_or_rotation_is_refused_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:  # fmt: skip
    from ssec_transfer.cli import copy_commands
    from tests.support.helpers import make_key_file

    def refuse(args: Any) -> Any:
        raise AssertionError("the command tried to connect")

    monkeypatch.setattr(copy_commands, "engine_for", refuse)
    old, _ = make_key_file(tmp_path, "old.key")
    new, _ = make_key_file(tmp_path, "new.key")
    argv = (
        ["cp", "s3://b/a", "s3://b/c", "--key-file", str(new)]
        if command == "cp"
        else ["rotate", "s3://b/a", "--key-file", str(old), "--new-key-file", str(new)]
    )
    assert main([*argv, "--dask-local", "2"]) == 2
    err = capsys.readouterr().err
    assert f"--dask and --dask-local {command} many objects: add --recursive" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["head", "s3://b/k"],
        ["get", "s3://b/k", "dest"],
        ["put", "src", "s3://b/k"],
        ["ls", "s3://b/"],
    ],
)
def test_every_command_that_answers_in_json_accepts_json(argv: list[str]) -> None:
    assert build_parser().parse_args([*argv, "--json"]).json is True


@pytest.mark.parametrize("flag", ["--recursive", "--versions", "--summarize"])
def test_ls_without_a_bucket_refuses_object_flags(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ls` alone lists buckets: a flag about objects would be ignored, so it is refused."""
    assert main(["ls", flag]) == 2
    err = capsys.readouterr().err
    assert f"{flag} lists objects, but no bucket was named" in err
    assert f"ssec-transfer ls s3://BUCKET/ {flag}" in err
