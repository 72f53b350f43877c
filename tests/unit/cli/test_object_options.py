"""`--content-type`, `--metadata NAME=VALUE` and `--storage-class` read into the attributes an
upload sets; what S3 cannot carry is refused (exit 2) before any connection."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ssec_transfer.cli import argtypes
from ssec_transfer.cli.common import object_attributes
from ssec_transfer.cli.main import build_parser, main
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.transfer.attributes import ObjectAttributes

NOWHERE = ("--endpoint-url", "https://127.0.0.1:9")  # nothing listens: a request would fail 1


def test_name_value_pairs_and_the_json_form() -> None:
    assert argtypes.metadata("project=goes-r") == {"project": "goes-r"}
    assert argtypes.metadata("expr=a=b") == {"expr": "a=b"}  # split at the first =
    assert argtypes.metadata("empty=") == {"empty": ""}
    assert argtypes.metadata('{"a": "b", "c": "d"}') == {"a": "b", "c": "d"}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("novalue", "is not NAME=VALUE"),
        ("=value", "is not NAME=VALUE"),
        ("{not json", "not valid JSON"),
        ('{"a": 1}', "an object of strings"),
        ('{"a": null}', "an object of strings"),
    ],
)
def test_malformed_metadata_is_an_argparse_error(text: str, says: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=says):
        argtypes.metadata(text)


def test_content_type_and_storage_class_must_fit_a_header() -> None:
    assert argtypes.header_text("text/plain; charset=utf-8") == "text/plain; charset=utf-8"
    assert argtypes.storage_class("GLACIER_IR") == "GLACIER_IR"
    assert argtypes.storage_class("cold-tier") == "cold-tier"  # a server's own name
    for bad in ("text/plain\r\nX-Evil: 1", "tëxt/plain", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            argtypes.header_text(bad)
    for bad in ("STANDARD IA", "", "GLACIER\n"):
        with pytest.raises(argparse.ArgumentTypeError):
            argtypes.storage_class(bad)


def _put(*options: str) -> argparse.Namespace:
    return build_parser().parse_args(["put", "f", "s3://b/k", *options])


def test_options_become_the_engines_object_attributes() -> None:
    args = _put("--metadata", "a=1", "--metadata", '{"b": "2"}', "--content-type", "text/csv",
                "--storage-class", "STANDARD_IA")  # fmt: skip
    assert object_attributes(args) == ObjectAttributes("text/csv", {"a": "1", "b": "2"},
                                                       "STANDARD_IA")  # fmt: skip
    assert object_attributes(_put()) == ObjectAttributes()
    assert (_put().no_clobber, _put("--no-clobber").no_clobber) == (False, True)


def test_sync_and_watch_take_the_attributes_but_not_no_clobber() -> None:
    parser = build_parser()
    for argv in (["sync", "d", "s3://b/p/"], ["watch", "d", "s3://b/p/", "--key-file", "k"]):
        args = parser.parse_args([*argv, "--metadata", "a=1"])
        assert object_attributes(args) == ObjectAttributes(metadata={"a": "1"})
        with pytest.raises(SystemExit):
            parser.parse_args([*argv, "--no-clobber"])


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (("--metadata", "A=1", "--metadata", "a=2"), "metadata name 'a' is given twice"),
        (("--metadata", "ssec-transfer=x"), "reserved for the sealed source facts"),
        (("--metadata", "x=" + "y" * 1900), "at most"),
        (("--metadata", "x=\u00e9"), "printable ASCII"),
        (("--metadata", "x"), "is not NAME=VALUE"),
    ],
)
def test_put_refuses_metadata_s3_cannot_carry_before_any_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: tuple[str, ...], says: str
) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(b"x")
    key = tmp_path / "k.key"
    SSECustomerKey.generate().write_new_file(key)
    argv = ["put", str(src), "s3://b/k", "--key-file", str(key), *options, *NOWHERE]
    try:
        code: object = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    assert says in capsys.readouterr().err


def test_sync_refuses_attributes_where_nothing_is_uploaded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "k.key"
    SSECustomerKey.generate().write_new_file(key)
    argv = ["sync", "s3://b/p/", str(tmp_path), "--key-file", str(key), "--storage-class", "X"]
    assert main([*argv, *NOWHERE]) == 2
    assert "apply to uploads" in capsys.readouterr().err
