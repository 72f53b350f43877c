"""Key material typed on the command line is never echoed back.

Where an option names a key (its file or its variable), a value that looks like key material is
refused with "this looks like key material" and not repeated; anywhere else an error would echo
it (argparse's errors, a path, the JSON error line), it is redacted. Every case stops before
anything is opened: the engine and the keyring are replaced by tripwires.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from ssec_transfer.cli import copy_commands, transfer_commands, watch_command
from ssec_transfer.cli import keyring as keyring_cli
from ssec_transfer.cli.main import main
from ssec_transfer.cli.options import typed_key_material
from ssec_transfer.core.errors import KeyFileError
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.keys.redact import KEY_MATERIAL, key_form, key_tokens, redact_key_material
from tests.support.json_schema import validate_lines

RAW = bytes(range(200, 232))  # its standard base64 holds "/" and "+", its URL-safe "_" and "-"
STD = base64.b64encode(RAW).decode()
URLSAFE = base64.urlsafe_b64encode(RAW).decode()
assert all(c in STD for c in "/+")
assert all(c in URLSAFE for c in "_-")
FORMS = {
    "raw-32-as-text": "32bytesOfTotallyRandomCharacters",
    "base64": STD,
    "base64-urlsafe": URLSAFE,
    "base64-unpadded": STD.rstrip("="),
    "base64-urlsafe-unpadded": URLSAFE.rstrip("="),
    "hex": RAW.hex(),
}
assert len(FORMS["raw-32-as-text"]) == 32

forms = pytest.mark.parametrize("value", list(FORMS.values()), ids=list(FORMS))
json_or_not = pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])


@pytest.fixture(autouse=True)
def nothing_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a command gets as far as a connection or the keyring."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the command went past its key options")

    for module in (transfer_commands, copy_commands, watch_command):
        monkeypatch.setattr(module, "engine_for", refuse)
    monkeypatch.setattr(keyring_cli, "open_keyring", refuse)
    for name in FORMS.values():  # a variable of that name would make it a name
        monkeypatch.delenv(name, raising=False)


def run(argv: list[str] | None, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's errors
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_not_echoed(value: str, *texts: str) -> None:
    for text in texts:
        assert value not in text
        assert value.rstrip("=") not in text
        assert RAW.hex() not in text
        assert STD.rstrip("=") not in text


def key_option_argvs(value: str) -> dict[str, list[str]]:
    """Every option that names a key, in every command that has it, given `value` (run in a
    folder that holds `src.bin` and `outbox/`)."""
    put = ["put", "src.bin", "s3://b/k"]
    return {
        "put --key-env": [*put, "--key-env", value],
        "put --key-file": [*put, "--key-file", value],
        "put --key-file fileb://": [*put, "--key-file", f"fileb://{value}"],
        "put --sse-c-key fileb://": [*put, "--sse-c-key", f"fileb://{value}"],
        "get --key-env": ["get", "s3://b/k", "out", "--key-env", value],
        "get --key-file": ["get", "s3://b/k", "out", "--key-file", value],
        "head --key-env": ["head", "s3://b/k", "--key-env", value],
        "head --key-file": ["head", "s3://b/k", "--key-file", value],
        "watch --key-env": ["watch", "outbox", "s3://b/", "--key-env", value],
        "cp --source-key-env": ["cp", "s3://a/x", "s3://b/y", "--source-key-env", value],
        "cp --source-key-file": ["cp", "s3://a/x", "s3://b/y", "--source-key-file", value],
        "cp --key-env": ["cp", "s3://a/x", "s3://b/y", "--key-env", value],
        "rotate --new-key-env": ["rotate", "s3://b/x", "--new-key-env", value],
        "rotate --new-key-file": ["rotate", "s3://b/x", "--new-key-file", value],
        "rotate --key-env": ["rotate", "s3://b/x", "--key-env", value, "--new-key-file", "n"],
        "keyring add --key-env": ["keyring", "add", "archive", "--key-env", value],
        "keyring add --key-file": ["keyring", "add", "archive", "--key-file", value],
    }


OPTION_CASES = list(key_option_argvs("V"))


@pytest.mark.parametrize("case", OPTION_CASES)
@forms
@json_or_not
def test_key_material_given_to_a_key_option_is_refused_and_not_repeated(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
    value: str,
    as_json: bool,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src.bin").write_bytes(b"data")
    (tmp_path / "outbox").mkdir()
    argv = key_option_argvs(value)[case]
    as_json = as_json and argv[0] not in ("keyring", "head")  # without a --json option
    if as_json:
        argv.append("--json")
    code, out, err = run(argv, capsys)
    assert code == 2
    assert "this looks like key material" in err
    assert "never accepted on the command line" in err
    assert_not_echoed(value, out, err)
    if as_json:
        [line] = validate_lines(out)
        assert (line["type"], line["error_type"]) == ("error", "KeyFileError")
        assert line["exit_code"] == 2
        assert "this looks like key material" in line["error"]
        assert "never accepted on the command line" in line["hint"]  # not inside "error"


@pytest.mark.parametrize(
    "argv",
    [
        ["get", "s3://b/k", "out", "--key=V"],  # ambiguous: --key-file, --key-env, --keyring...
        ["ls", "s3://b/", "--key=V"],  # no key option at all
        ["cleanup", "s3://b/", "--key=V"],
        ["get", "s3://b/k", "out", "V"],  # a stray positional
        ["put", "in.bin", "s3://b/k", "V", "--json"],
        ["keyring", "list", "V"],
        ["get", "s3://b/k", "out", "--key-file", "--json", "V"],  # --key-file lacks its value
    ],
    ids=["get --key=", "ls --key=", "cleanup --key=", "get stray", "put stray", "keyring stray",
         "missing value"],
)  # fmt: skip
@forms
def test_argparse_errors_do_not_echo_key_material(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    value: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = [value if a == "V" else a.replace("=V", f"={value}") for a in argv]
    code, out, err = run(argv, capsys)
    assert code == 2
    assert "error:" in err
    assert_not_echoed(value, out, err)


@forms
@json_or_not
def test_a_key_in_a_positional_argument_is_redacted_from_the_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    value: str,
    as_json: bool,
) -> None:
    """`get KEY out`: argparse takes it as the URL; the handler's error would repeat it."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["get", value, "out", *(["--json"] if as_json else [])], capsys)
    assert code == 2
    assert "is not an s3:// URL" in err
    assert KEY_MATERIAL in err
    assert_not_echoed(value, out, err)
    if as_json:
        assert KEY_MATERIAL in json.loads(out)["error"]


@forms
def test_key_material_inside_a_key_file_path_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    code, out, err = run(["head", "s3://b/k", "--key-file", f"{tmp_path}/keys/{value}"], capsys)
    assert code == 2
    if len(value) != 32:  # a 32-character path component is a plain name
        assert "this looks like key material" in err
        assert_not_echoed(value, out, err)


# -- no false alarm -------------------------------------------------------------------------


def test_an_existing_file_named_like_a_key_is_a_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Content-addressed names (64 hex digits) are paths when the file is there."""
    monkeypatch.chdir(tmp_path)
    for name in FORMS.values():
        if "/" in name:
            continue
        (tmp_path / name).write_bytes(RAW)
        (tmp_path / name).chmod(0o600)
        assert SSECustomerKey.from_file(name, option="--key-file") == SSECustomerKey(RAW)


def test_a_set_variable_named_like_a_key_is_a_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    name = "MY_PROJECT_PRODUCTION_SSEC_KEY_1"  # 32 characters: a name first, if it is set
    monkeypatch.setenv(name, STD)
    assert SSECustomerKey.from_env(name, option="--key-env") == SSECustomerKey(RAW)
    monkeypatch.delenv(name)
    with pytest.raises(KeyFileError, match="this looks like key material") as info:
        SSECustomerKey.from_env(name, option="--key-env")
    assert name not in str(info.value)


def test_an_unset_ordinary_variable_name_is_still_named() -> None:
    os.environ.pop("SSEC_TRANSFER_TEST_UNSET", None)
    with pytest.raises(KeyFileError, match="SSEC_TRANSFER_TEST_UNSET is not set"):
        SSECustomerKey.from_env("SSEC_TRANSFER_TEST_UNSET", option="--key-env")


def test_an_unset_invalid_variable_name_is_not_repeated() -> None:
    with pytest.raises(KeyFileError, match="not a valid variable name") as info:
        SSECustomerKey.from_env("my key=abc", option="--key-env")
    assert "my key=abc" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "form"),
    [
        (STD, "base64"),
        (URLSAFE.rstrip("="), "base64"),
        (RAW.hex().upper(), "hex"),
        ("32bytesOfTotallyRandomCharacters", "32 characters"),
        (" " + STD + "\n", "base64"),
        ("MY_VERY_LONG_ENVIRONMENT_VARIABLE_NAME_1234", None),  # 43 characters, one case
        ("SSEC_KEY", None),
        ("sse-c.key", None),
        (STD[:-2], None),  # 42 characters: 31 bytes
        (RAW.hex()[:-1], None),
        ("a" * 33, None),
    ],
)
def test_key_form(text: str, form: str | None) -> None:
    found = key_form(text)
    assert (found is None) if form is None else (found is not None and form in found)


def test_key_tokens_find_keys_alone_and_as_path_components() -> None:
    text = f"key file /home/u/{STD} and ./{RAW.hex()}.key, --key={URLSAFE}; fileb://{STD}"
    assert key_tokens(text) == {STD, RAW.hex(), URLSAFE}
    assert key_tokens("s3://bucket/products/2026/01/l1_product_v2.nc HTTP 404") == set()
    assert redact_key_material(f"x {STD} y") == f"x {KEY_MATERIAL} y"
    assert redact_key_material("a passphrase", ["passphrase"], scan=False) == f"a {KEY_MATERIAL}"


def test_typed_key_material_spares_urls_paths_and_options(tmp_path: Path) -> None:
    existing = tmp_path / RAW.hex()
    existing.write_bytes(b"")
    argv = [
        "get", f"s3://b/{RAW.hex()}", str(existing), "s3://bucket/products/file-001.nc",
        "--endpoint-url=https://s3.waw3-1.cloudferro.com", "--include=*.nc-some-pattern-here",
        "32bytesOfTotallyRandomCharacters", f"--key={STD}", f"dir/{URLSAFE}",
    ]  # fmt: skip
    assert len(argv[3]) == len(argv[4].split("=", 1)[1]) == len(argv[5]) == 32
    found = typed_key_material(argv)
    assert set(found) == {"32bytesOfTotallyRandomCharacters", STD, URLSAFE}


@json_or_not
def test_the_entry_point_reads_sys_argv_for_redaction_too(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    as_json: bool,
) -> None:
    """`ssec-transfer ...` passes no argv to `main`: the parsers and the error printer read
    sys.argv."""
    monkeypatch.chdir(tmp_path)
    for argv in (
        ["get", STD, "out"],
        ["get", "s3://b/k", "out", STD],
        ["ls", "s3://b/", f"--key={STD}"],
    ):
        monkeypatch.setattr("sys.argv", ["ssec-transfer", *argv, *(["--json"] * as_json)])
        code, out, err = run(None, capsys)
        assert code == 2
        assert KEY_MATERIAL in err
        assert_not_echoed(STD, out, err)


@pytest.mark.parametrize("action", [["add", "--key-file", "k.key"], ["generate"]])
@forms
def test_a_key_given_as_a_keyring_name_is_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    value: str,
    action: list[str],
) -> None:
    """The name would be printed and kept in clear in the keyring; 32 characters is a name."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "k.key").write_bytes(RAW)
    (tmp_path / "k.key").chmod(0o600)
    argv = ["keyring", action[0], value, *action[1:], "--keyring-file", "ring.json"]
    if len(value) == 32:
        with pytest.raises(AssertionError, match="went past its key options"):
            main(argv)  # on to the keyring
        return
    code, out, err = run(argv, capsys)
    assert code == 2
    assert "looks like key material" in err
    assert_not_echoed(value, out, err)
