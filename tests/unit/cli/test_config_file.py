"""The config file (`cli.config_file`): where it is, how its defaults merge with a command's
table and the command line, and how every mistake in it is refused (exit 2, naming the file
and the key, never repeating key material). No server: what moves data is in
tests/integration/cli/test_config_cli.py."""

from __future__ import annotations

import argparse
import base64
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from ssec_transfer.cli import config_file
from ssec_transfer.cli.main import build_parser, main
from ssec_transfer.cli.options import load_key
from ssec_transfer.core.config import TransferConfig


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty config file that SSEC_TRANSFER_CONFIG points at; tests write into it."""
    path = tmp_path / "conf" / "config.toml"
    path.parent.mkdir()
    path.write_text("")
    monkeypatch.setenv(config_file.ENV_VAR, str(path))
    return path


def parse(argv: list[str]) -> tuple[argparse.Namespace, str | None]:
    return config_file.parse_args(build_parser(), argv)


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    return err


# -- where the file is ------------------------------------------------------------------------


def test_the_path_follows_the_variable_then_xdg(tmp_path: Path) -> None:
    home = Path.home()
    assert config_file.config_path({}) == home / ".config/ssec-transfer/config.toml"
    xdg = {"XDG_CONFIG_HOME": str(tmp_path)}
    assert config_file.config_path(xdg) == tmp_path / "ssec-transfer/config.toml"
    # The XDG spec: a relative XDG_CONFIG_HOME is ignored.
    relative = {"XDG_CONFIG_HOME": "conf"}
    assert config_file.config_path(relative) == home / ".config/ssec-transfer/config.toml"
    explicit = {**xdg, "SSEC_TRANSFER_CONFIG": "~/my.toml"}
    assert config_file.config_path(explicit) == home / "my.toml"
    assert (
        config_file.config_path({"SSEC_TRANSFER_CONFIG": ""})
        == home / ".config/ssec-transfer/config.toml"
    )


def test_no_file_means_no_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(config_file.ENV_VAR)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    args, note = parse(["put", "a", "s3://b/k"])
    assert (args.endpoint_url, args.key_file, note) == (None, None, None)
    assert args.concurrency == TransferConfig().concurrency


def test_a_variable_naming_a_missing_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(config_file.ENV_VAR, str(tmp_path / "nope.toml"))
    err = refused(["ls", "s3://b"], capsys)
    assert f"config file {tmp_path / 'nope.toml'} (from SSEC_TRANSFER_CONFIG) does not exist" in err
    assert "hint:" in err


# -- merging and precedence -------------------------------------------------------------------


def test_top_level_keys_apply_where_the_option_exists(config: Path) -> None:
    config.write_text(
        'endpoint_url = "https://s3.example.com"\nkey_file = "sse-c.key"\n'
        'part_size = "16MiB"\nmax_memory = 268435456\nretry_mode = "adaptive"\n'
        "read_timeout = 30\nprogress = false\n"
    )
    args, note = parse(["put", "a", "s3://b/k"])
    assert args.endpoint_url == "https://s3.example.com"
    assert args.key_file == str(config.parent / "sse-c.key")  # beside the config file
    assert (args.part_size, args.max_memory) == (16 * 2**20, 256 * 2**20)
    assert (args.retry_mode, args.read_timeout, args.progress) == ("adaptive", 30.0, False)
    assert note == (
        f"defaults from {config}: endpoint_url, key_file, part_size, max_memory, "
        "retry_mode, read_timeout, progress"
    )
    # ls has no key or tuning options: those keys simply do not apply to it.
    args, _ = parse(["ls", "s3://b"])
    assert args.endpoint_url == "https://s3.example.com"
    assert not hasattr(args, "key_file")
    assert not hasattr(args, "part_size")


def test_a_command_table_overrides_the_top_level_for_that_command_only(config: Path) -> None:
    config.write_text("concurrency = 8\n\n[get]\nconcurrency = 32\nmax_files = 4\n")
    assert parse(["get", "s3://b/k", "out"])[0].concurrency == 32
    assert parse(["get", "s3://b/k", "out"])[0].max_files == 4
    assert parse(["put", "a", "s3://b/k"])[0].concurrency == 8
    assert parse(["put", "a", "s3://b/k"])[0].max_files is None


@pytest.mark.parametrize(
    "flags",
    [
        ["--concurrency", "2", "--endpoint-url", "https://other"],
        ["--concurrency=2", "--endpoint-url=https://other"],
        ["--concur", "2", "--endpoint", "https://other"],  # argparse's abbreviations
    ],
)
def test_the_command_line_wins(config: Path, flags: list[str]) -> None:
    config.write_text('concurrency = 8\nendpoint_url = "https://s3.example.com"\n')
    args, note = parse(["put", "a", "s3://b/k", *flags])
    assert (args.concurrency, args.endpoint_url) == (2, "https://other")
    assert note is None  # nothing from the file applied


@pytest.mark.parametrize(
    ("flags", "chosen"),
    [
        (["--key-env", "SSEC_KEY"], ("key_env", "SSEC_KEY")),
        (["--sse-c-key", "fileb://other.key"], ("sse_c_key", "fileb://other.key")),
        (["--keyring"], ("keyring", True)),
        (["--keyring-file", "ring.json"], ("keyring_file", Path("ring.json"))),
        (["--key-file", "other.key"], ("key_file", "other.key")),
    ],
)
def test_a_key_chosen_on_the_command_line_sets_the_files_key_aside(
    config: Path, flags: list[str], chosen: tuple[str, object]
) -> None:
    """No "not allowed with" error, and the file's key_file is not used in its place."""
    config.write_text('key_file = "sse-c.key"\n')
    args, note = parse(["get", "s3://b/k", "out", *flags])
    assert getattr(args, chosen[0]) == chosen[1]
    if chosen[0] != "key_file":
        assert args.key_file is None
    assert note is None


def test_a_command_table_key_sets_the_top_level_alternative_aside(config: Path) -> None:
    config.write_text(
        'key_file = "sse-c.key"\n[put]\nkey_env = "SSEC_KEY"\n[get]\nkeyring = true\n'
    )
    put, _ = parse(["put", "a", "s3://b/k"])
    assert (put.key_file, put.key_env) == (None, "SSEC_KEY")
    get, _ = parse(["get", "s3://b/k", "out"])
    assert (get.key_file, get.keyring) == (None, True)
    head, _ = parse(["head", "s3://b/k"])
    assert head.key_file == str(config.parent / "sse-c.key")


def test_the_files_key_meets_a_required_key_option(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """watch needs --key-file or --key-env (checked when it runs, since `watch --status`
    needs none): the file's key_file counts, --key-env still replaces it, and without either
    no key is made up."""
    config.write_text('key_file = "/keys/sse-c.key"\n')
    assert parse(["watch", "d", "s3://b/p/"])[0].key_file == "/keys/sse-c.key"
    args, _ = parse(["watch", "d", "s3://b/p/", "--key-env", "K"])
    assert (args.key_file, args.key_env) == (None, "K")
    config.write_text("")
    args, _ = parse(["watch", "d", "s3://b/p/"])
    assert (args.key_file, args.key_env) == (None, None)


def test_paths_resolve_beside_the_file_and_tilde_expands(config: Path) -> None:
    config.write_text(
        'key_file = "keys/a.key"\nca_bundle = "~/ca.pem"\nledger = "/var/lib/l.db"\n'
        'keyring_file = "ring.json"\n'
    )
    args, _ = parse(["get", "s3://b/k", "out"])
    assert args.key_file == str(config.parent / "keys/a.key")
    assert args.ca_bundle == str(Path.home() / "ca.pem")
    assert args.ledger == Path("/var/lib/l.db")
    assert args.keyring_file == config.parent / "ring.json"


def test_nested_commands_take_the_top_level_and_their_table(config: Path) -> None:
    config.write_text('endpoint_url = "https://s3.example.com"\nledger = "l.db"\n')
    show, _ = parse(["ledger", "show", "s3://b/k"])
    assert show.ledger == config.parent / "l.db"
    assert show.endpoint_url is None  # a filter there, never filled in from the file
    add, _ = parse(["keyring", "add", "n", "--key-env", "K"])
    assert add.key_file is None
    config.write_text('key_file = "sse-c.key"\n')
    with pytest.raises(SystemExit):  # keyring add never takes its key from the file
        parse(["keyring", "add", "n"])


def test_a_key_file_from_the_file_is_checked_like_key_file(
    config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = config.parent / "sse-c.key"
    key.write_bytes(bytes(range(32)))
    key.chmod(0o644)
    config.write_text('key_file = "sse-c.key"\n')
    args, _ = parse(["put", "a", "s3://b/k"])
    with caplog.at_level(logging.WARNING):
        loaded = load_key(args)
    assert loaded is not None
    assert "is readable by group or others" in caplog.text
    assert f"chmod 600 {key}" in caplog.text


def test_verbose_says_which_defaults_came_from_the_file(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config.write_text('endpoint_url = "https://127.0.0.1:9"\n[put]\nconcurrency = 3\n')
    code = main(["-v", "put", str(tmp_path / "missing"), "s3://b/k", "--key-env", "K"])
    err = capsys.readouterr().err
    assert code == 2  # the missing source, after the defaults were applied
    assert f"defaults from {config}: endpoint_url, concurrency [put]" in err


# -- mistakes in the file ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "argv", "expected"),
    [
        ("concurency = 4\n", ["ls", "s3://b"], "unknown key 'concurency' (top level)"),
        ("[rm]\nkey-file = 'k'\n", ["ls", "s3://b"], "unknown key 'key-file' ([rm])"),
        ("[ls]\nconcurrency = 4\n", ["ls", "s3://b"], "concurrency ([ls]): ls has no such option"),
        ("[lst]\nregion = 'x'\n", ["ls", "s3://b"], "[lst] is not a command"),
        ("concurrency = 'many'\n", ["put", "a", "s3://b/"], "'many' is not a whole number"),
        ("concurrency = 0\n", ["put", "a", "s3://b/"], "concurrency = 0 (top level): must be"),
        ("part_size = '16 MB please'\n", ["put", "a", "s3://b/"], "part_size = '16 MB please'"),
        ("read_timeout = -1\n", ["get", "s3://b/k", "o"], "must be a number of seconds"),
        ("checksum = 'md5'\n", ["put", "a", "s3://b/"], "choose from auto, crc32c"),
        ("keyring = 'yes'\n", ["get", "s3://b/k", "o"], "keyring = 'yes' (top level) must be"),
        ("region = true\n", ["ls", "s3://b"], "region = True (top level) must be a string"),
        ("endpoint_url = https://x\n", ["ls", "s3://b"], "is not valid TOML"),
        ("ledger = 'l'\n[ledger]\n", ["ls", "s3://b"], "a top-level key and a table cannot"),
        (
            "key_file = 'a'\nkey_env = 'B'\n",
            ["put", "a", "s3://b/"],
            "key_file and key_env are both set (top level), but put takes only one",
        ),
    ],
)
def test_mistakes_are_refused_naming_the_file_and_the_key(
    config: Path, capsys: pytest.CaptureFixture[str], text: str, argv: list[str], expected: str
) -> None:
    config.write_text(text)
    err = refused(argv, capsys)
    assert f"ssec-transfer: error: config file {config}" in err
    assert expected in err
    assert "\n  hint: " in err


def test_a_top_level_value_is_checked_only_where_it_applies(config: Path) -> None:
    """A bad `part_size` stops put, not ls (which has no --part-size)."""
    config.write_text("part_size = 'huge'\n")
    assert parse(["ls", "s3://b"])[1] is None


def test_key_material_in_the_file_is_never_repeated(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = base64.b64encode(bytes(range(32))).decode()
    config.write_text(f'concurrency = "{key}"\n')
    err = refused(["put", "a", "s3://b/"], capsys)
    assert "concurrency = (value not repeated)" in err
    assert key not in err
    config.write_text(f"key_env = {key!r}\nkey_file = 12\n")
    err = refused(["put", "a", "s3://b/"], capsys)
    assert key not in err


def test_help_and_version_never_read_the_file(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config.write_text("this is not TOML")
    for argv in (["--version"], ["put", "--help"], ["-v", "--help"], ["keyring", "add", "-h"]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 0
    assert "not valid TOML" not in capsys.readouterr().err
    assert main(["config", "path"]) == 0  # nor does a command that takes no such option
    assert capsys.readouterr().out == f"{config}\n"


def test_version_imports_no_toml_parser() -> None:
    code = "import sys; from ssec_transfer.cli.main import main\ntry: main(['--version'])\n"
    code += "except SystemExit: pass\nprint('tomllib' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.splitlines()[-1] == "False"


# -- config path / config show ----------------------------------------------------------------


def test_config_show_lists_each_commands_defaults_and_their_origin(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = config.parent / "sse-c.key"
    key.write_bytes(b"K" * 32)
    config.write_text('key_file = "sse-c.key"\npart_size = "8MiB"\n[put]\nconcurrency = 4\n')
    assert main(["config", "show", "put", "ls"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"config file: {config}\n")
    assert f'key_file = "{key}"' in out
    assert "part_size = 8388608" in out
    assert "concurrency = 4" in out
    assert "# [put]" in out
    assert "\nls\n" not in out  # no defaults for ls
    assert "KKKK" not in out  # a key file is named, never read
    assert main(["config", "show", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["exists"] is True
    assert report["commands"]["put"]["concurrency"] == {"value": 4, "from": "[put]"}
    assert report["commands"]["get"]["part_size"] == {"value": 8388608, "from": "top level"}
    assert "put" not in report["commands"]["get"]


def test_config_show_checks_every_table(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config.write_text("[get]\nconcurrency = 'x'\n")
    assert main(["config", "show", "put"]) == 2
    assert "'x' is not a whole number" in capsys.readouterr().err


def test_config_path_says_when_there_is_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(config_file.ENV_VAR)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert main(["config", "path"]) == 0
    out, err = capsys.readouterr()
    assert out == f"{tmp_path}/ssec-transfer/config.toml\n"
    assert "does not exist: no defaults apply" in err
    assert main(["config", "show"]) == 0
    assert "(does not exist: no defaults)" in capsys.readouterr().out
