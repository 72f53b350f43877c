"""--connect-timeout, --read-timeout and --request-timeout: parsed, defaulted and explained the
same way in every command that connects, and carried into the engine."""

from __future__ import annotations

import argparse

import pytest

from ssec_transfer.cli.common import engine_for
from ssec_transfer.cli.main import build_parser
from ssec_transfer.core.retry import CONNECT_TIMEOUT, READ_TIMEOUT, REQUEST_TIMEOUT
from ssec_transfer.s3.client import ConnectionSettings

OPTIONS = ("--connect-timeout", "--read-timeout", "--request-timeout")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices)


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


def test_every_command_that_connects_takes_the_timeouts() -> None:
    commands = _subparsers(build_parser())
    connecting = [name for name, p in commands.items() if "--max-attempts" in _flags(p)]
    assert {"put", "get", "head", "cp", "rotate", "ls", "watch", "cleanup", "doctor"} <= set(
        connecting
    )
    for name in connecting:
        assert set(OPTIONS) <= _flags(commands[name]), name


def test_defaults_suit_a_lan_and_a_slow_wan() -> None:
    """Connect 10 s (a handshake is a few round trips; three SYN retransmits fit), read 60 s
    per silence, and 120 s without progress per request: a silent server is reported in two
    minutes, after one retry."""
    assert (CONNECT_TIMEOUT, READ_TIMEOUT, REQUEST_TIMEOUT) == (10.0, 60.0, 120.0)
    settings = ConnectionSettings()
    assert (settings.connect_timeout, settings.read_timeout, settings.request_timeout) == (
        10.0, 60.0, 120.0,
    )  # fmt: skip
    args = build_parser().parse_args(["head", "s3://b/k"])
    engine = engine_for(args)
    assert engine.settings.connect_timeout == 10.0
    assert engine.settings.read_timeout == 60.0
    assert engine.settings.request_timeout == 120.0
    assert engine.settings.max_attempts == 5


def test_given_values_reach_the_engine_and_the_part_retries() -> None:
    args = build_parser().parse_args([
        "get", "s3://b/k", "out", "--connect-timeout", "1.5", "--read-timeout", "7",
        "--request-timeout", "30", "--max-attempts", "3",
    ])  # fmt: skip
    engine = engine_for(args)
    assert engine.settings.connect_timeout == 1.5
    assert engine.settings.read_timeout == 7.0
    assert engine.settings.request_timeout == 30.0
    assert engine.retry_policy.request_timeout == 30.0
    assert engine.retry_policy.max_attempts == 3


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("0", "must be a number of seconds > 0"),  # 0 would mean: wait for ever
        ("-5", "must be a number of seconds >= 0"),
        ("soon", "is not a number of seconds"),
        ("inf", "must be a number of seconds >= 0"),
        ("nan", "must be a number of seconds >= 0"),
    ],
)
def test_bad_values_are_refused_before_any_request(
    option: str, value: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["head", "s3://b/k", option, value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert option in err
    assert words in err


def test_help_explains_the_options_and_their_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["get", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--connect-timeout SECONDS" in text
    assert "TLS handshake included (default 10)" in text
    assert "--read-timeout SECONDS" in text
    assert "(default 60)" in text
    assert "--request-timeout SECONDS" in text
    assert "without progress" in text
    assert "(default 120)" in text
