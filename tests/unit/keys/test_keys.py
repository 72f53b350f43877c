"""Key loading from files and the environment, key generation, and that keys never show."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import stat
from pathlib import Path

import pytest

from ssec_transfer.cli.main import main
from ssec_transfer.core.errors import KeyFileError
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.keys.redact import REDACTED
from ssec_transfer.s3.sse import copy_source_sse_params, sse_params

RAW = bytes(range(32))
B64 = base64.b64encode(RAW).decode()
PASSPHRASE = b"32bytesOfTotallyRandomCharacters"


def write(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def test_headers_match_the_sse_c_definition() -> None:
    key = SSECustomerKey(RAW)
    params = sse_params(key)
    assert params["SSECustomerAlgorithm"] == "AES256"
    assert base64.b64decode(params["SSECustomerKey"]) == RAW
    assert params["SSECustomerKeyMD5"] == base64.b64encode(hashlib.md5(RAW).digest()).decode()
    assert key.fingerprint == params["SSECustomerKeyMD5"]
    copy = copy_source_sse_params(key)
    assert copy["CopySourceSSECustomerKey"] == params["SSECustomerKey"]


def test_repr_and_str_never_show_the_key() -> None:
    key = SSECustomerKey(PASSPHRASE)
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert base64.b64encode(PASSPHRASE).decode() not in text
        assert PASSPHRASE.decode() not in text
        assert key.fingerprint in text


def test_raw_file(tmp_path: Path) -> None:
    assert SSECustomerKey.from_file(write(tmp_path / "k", RAW)) == SSECustomerKey(RAW)


def test_base64_file_with_newline(tmp_path: Path) -> None:
    key = SSECustomerKey.from_file(write(tmp_path / "k", (B64 + "\n").encode()))
    assert key == SSECustomerKey(RAW)


def test_passphrase_file_as_in_the_aws_cli_guides(tmp_path: Path) -> None:
    """`echo -n "$secret" > key`: 32 printable characters are the raw key."""
    key = SSECustomerKey.from_file(write(tmp_path / "k", PASSPHRASE))
    assert key.export_base64() == base64.b64encode(PASSPHRASE).decode()


@pytest.mark.parametrize(
    ("data", "found"),
    [
        (RAW[:31], "holds 31 bytes"),
        (RAW + b"!", "holds 33 bytes"),
        (b"", "an empty file"),
        (PASSPHRASE + b"\n", "echo -n"),
        (base64.b64encode(RAW[:16]), "decodes to 16 bytes"),
    ],
)
def test_wrong_length_says_what_was_found(tmp_path: Path, data: bytes, found: str) -> None:
    with pytest.raises(KeyFileError, match=found) as info:
        SSECustomerKey.from_file(write(tmp_path / "k", data))
    assert "expected 32 raw bytes" in str(info.value)
    assert info.value.exit_code == 2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        SSECustomerKey.from_file(tmp_path / "nope.key")


@pytest.mark.parametrize("value", [B64, PASSPHRASE.decode()])
def test_key_material_given_as_path_is_explained(value: str) -> None:
    with pytest.raises(KeyFileError) as info:
        SSECustomerKey.from_file(value)
    text = str(info.value)
    assert "looks like key material" in text
    assert "never accepted on the command line" in text
    assert value not in text  # do not echo the key back either


def test_group_readable_key_file_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "k", RAW, mode=0o644)
    with caplog.at_level(logging.WARNING, logger="ssec_transfer.keys.customer"):
        SSECustomerKey.from_file(path)
    assert "readable by group or others" in caplog.text
    assert "chmod 600" in caplog.text


def test_private_key_file_does_not_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ssec_transfer.keys.customer"):
        SSECustomerKey.from_file(write(tmp_path / "k", RAW))
    assert caplog.text == ""


def test_env_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SSEC_KEY", B64)
    assert SSECustomerKey.from_env("MY_SSEC_KEY") == SSECustomerKey(RAW)
    monkeypatch.setenv("MY_SSEC_KEY", "not base64!")
    with pytest.raises(KeyFileError, match="not valid base64"):
        SSECustomerKey.from_env("MY_SSEC_KEY")
    monkeypatch.delenv("MY_SSEC_KEY")
    with pytest.raises(KeyFileError, match="is not set"):
        SSECustomerKey.from_env("MY_SSEC_KEY")


def test_keygen_writes_0600_and_prints_fingerprint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "new.key"
    assert main(["keygen", str(path)]) == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == 32
    printed = capsys.readouterr().out.strip()
    assert printed == SSECustomerKey.from_file(path).fingerprint


def test_keygen_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "existing.key", RAW)
    assert main(["keygen", str(path)]) == 2
    assert path.read_bytes() == RAW
    assert "refusing to overwrite" in capsys.readouterr().err


def test_literal_key_on_command_line_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["put", str(tmp_path), "s3://b/k", "--sse-c-key", PASSPHRASE.decode()])
    err = capsys.readouterr().err
    assert code == 2
    assert "never accepted on the command line" in err
    assert PASSPHRASE.decode() not in err


def test_debug_logs_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    key = SSECustomerKey(PASSPHRASE)
    params = sse_params(key)
    with caplog.at_level(logging.DEBUG, logger="botocore.test"):
        logging.getLogger("botocore.test").debug("params: %s", params)
        logging.getLogger("botocore.test").debug("raw %r", PASSPHRASE)
    assert params["SSECustomerKey"] not in caplog.text
    assert PASSPHRASE.decode() not in caplog.text
    assert caplog.text.count(REDACTED) >= 2


def test_keys_cannot_be_pickled() -> None:
    import pickle

    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(SSECustomerKey(RAW))


def test_generated_keys_differ() -> None:
    assert SSECustomerKey.generate() != SSECustomerKey.generate()
    assert os.urandom  # keys come from the secrets module, i.e. os.urandom
