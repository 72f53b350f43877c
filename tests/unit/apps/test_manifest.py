"""The manifest grammar: exactly JSON lines or CSV with a header, checked whole before any
request; every other shape refuses the whole manifest, naming its lines."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssec_transfer.apps.manifest import (
    ManifestEntry,
    ManifestError,
    decode_manifest,
    parse_manifest,
    read_manifest,
)
from ssec_transfer.core.errors import KeyFileError, UsageError
from ssec_transfer.keys.customer import SSECustomerKey

BOM = "\ufeff"


def _refused(text: str, operation: str = "upload") -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, operation=operation, name="m")  # type: ignore[arg-type]
    assert caught.value.exit_code == 2
    return caught.value


def _lines(error: ManifestError) -> list[int]:
    return sorted({line for line, _ in error.problems})


# -- the two shapes, with and without a byte-order mark ----------------------------------------


@pytest.mark.parametrize("bom", ["", BOM])
def test_json_lines_are_accepted_with_or_without_bom(bom: str) -> None:
    text = bom + (
        '{"source": "a.nc", "destination": "s3://b/l1/"}\n'
        "\n"
        '{"source": "sub/b.nc", "destination": "s3://b/x.nc", "key_file": "k.key"}\n'
    )
    assert parse_manifest(text, operation="upload") == [
        ManifestEntry(1, "a.nc", "b", "l1/a.nc"),
        ManifestEntry(3, "sub/b.nc", "b", "x.nc", key_file="k.key"),
    ]


@pytest.mark.parametrize("bom", ["", BOM])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_csv_with_a_header_is_accepted_with_or_without_bom(bom: str, newline: str) -> None:
    text = bom + newline.join(
        ["destination,source,key_file", "s3://b/l1/,a.nc,", "s3://b/x.nc,b.nc,k.key", ""]
    )
    assert parse_manifest(text, operation="upload") == [
        ManifestEntry(2, "a.nc", "b", "l1/a.nc"),
        ManifestEntry(3, "b.nc", "b", "x.nc", key_file="k.key"),
    ]


def test_get_manifests_take_version_id() -> None:
    text = '{"source": "s3://b/k.nc", "destination": "out.nc", "version_id": "v1"}\n'
    [entry] = parse_manifest(text, operation="download")
    assert (entry.bucket, entry.key, entry.local, entry.version_id) == ("b", "k.nc", "out.nc", "v1")
    error = _refused(text.replace("s3://b/k.nc", "k.nc").replace("out.nc", "s3://b/k.nc"))
    assert "version_id applies to get manifests" in str(error)


# -- the shapes of the issue -------------------------------------------------------------------


@pytest.mark.parametrize("rows", [1, 50])
def test_csv_without_its_header_is_refused(rows: int) -> None:
    text = "".join(f"data/{i}.nc,s3://b/{i}.nc\n" for i in range(rows))
    error = _refused(text)
    assert _lines(error) == [1]
    assert "not a header row" in str(error)
    assert "'data/0.nc','s3://b/0.nc'" in str(error)


@pytest.mark.parametrize(
    "text",
    [
        '[{"source": "a.nc", "destination": "s3://b/a.nc"}]',
        '[\n  {"source": "a.nc", "destination": "s3://b/a.nc"},\n'
        '  {"source": "b.nc", "destination": "s3://b/b.nc"}\n]\n',
    ],
)
def test_a_json_array_is_refused(text: str) -> None:
    error = _refused(text)
    assert _lines(error) == [1]
    assert "a JSON array, not JSON lines" in str(error)


def test_one_object_over_several_lines_is_refused() -> None:
    error = _refused('{\n  "source": "a.nc",\n  "destination": "s3://b/a.nc"\n}\n')
    assert "one JSON object, not JSON lines" in str(error)


def test_a_line_that_is_an_array_or_a_scalar_is_refused() -> None:
    text = (
        '{"source": "a.nc", "destination": "s3://b/a.nc"}\n'
        '["b.nc", "s3://b/b.nc"]\n'
        '"c.nc"\n'
        "{not json\n"
        "e.nc,s3://b/e.nc\n"
    )
    error = _refused(text)
    assert _lines(error) == [2, 3, 4, 5]
    message = str(error)
    assert "line 2: an array, not a JSON object" in message
    assert "line 3: a string, not a JSON object" in message
    assert "line 4: not valid JSON (Expecting property name" in message
    assert "line 5: not a JSON object: a JSON-lines manifest has one per line" in message


@pytest.mark.parametrize("text", ["[" * 100_000, '{"a":' * 100_000, '{"source": ' + "[" * 100_000])
def test_json_nested_too_deeply_is_refused_not_a_crash(text: str) -> None:
    assert _lines(_refused(text)) == [1]


def test_mixed_shapes_are_refused_naming_every_line() -> None:
    json_first = (
        '{"source": "a.nc", "destination": "s3://b/a.nc"}\n'
        "b.nc,s3://b/b.nc\n"
        '{"source": "c.nc", "destination": "s3://b/c.nc"}\n'
        "d.nc,s3://b/d.nc\n"
    )
    assert _lines(_refused(json_first)) == [2, 4]
    csv_first = (
        'source,destination\na.nc,s3://b/a.nc\n{"source": "b.nc", "destination": "s3://b/b.nc"}\n'
    )
    error = _refused(csv_first)
    assert _lines(error) == [3]
    assert "a JSON line in a CSV manifest" in str(error)


def test_unknown_fields_and_columns_are_refused() -> None:
    error = _refused('{"source": "a.nc", "destination": "s3://b/a.nc", "keyfile": "k"}\n')
    assert "unknown field 'keyfile'" in str(error)
    error = _refused("source,destination,keyfile\na.nc,s3://b/a.nc,k\n")
    assert _lines(error) == [1]
    assert "unknown field 'keyfile'" in str(error)
    error = _refused("Source,Destination\na.nc,s3://b/a.nc\n")
    assert "names are lower case" in str(error)
    # An extra cell beyond the header's columns is a field the manifest does not know.
    error = _refused("source,destination\na.nc,s3://b/a.nc,k.key\n")
    assert _lines(error) == [2]
    assert "3 fields, but the header row names 2" in str(error)


def test_missing_columns_and_fields_are_refused() -> None:
    error = _refused("source,key_file\na.nc,k.key\n")
    assert "no destination column" in str(error)
    error = _refused('{"source": "a.nc"}\n{"destination": "s3://b/x"}\n{}\n')
    assert _lines(error) == [1, 2, 3]
    message = str(error)
    assert "line 1: no destination" in message
    assert "line 2: no source" in message
    assert "line 3: no source and no destination" in message
    error = _refused("source,destination\na.nc,\n")
    assert "no destination" in str(error)


@pytest.mark.parametrize(
    ("value", "kind"),
    [("3", "a number"), ("null", "null"), ('{"a": 1}', "an object"), ('["a"]', "an array"),
     ("true", "true/false"), ("1.5", "a number")],
)  # fmt: skip
def test_values_that_are_not_strings_are_refused(value: str, kind: str) -> None:
    error = _refused(f'{{"source": "a.nc", "destination": "s3://b/a.nc", "key_file": {value}}}')
    assert f"key_file must be a string, not {kind}" in str(error)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"source": "a.nc", "source": "b.nc", "destination": "s3://b/a"}', "given twice"),
        ('{"source": "", "destination": "s3://b/a"}', "source is empty"),
        ('{"source": " a.nc", "destination": "s3://b/a"}', "starts or ends with a space"),
        ('{"source": "a\\u0000b", "destination": "s3://b/a"}', "NUL character"),
        ('{"source": "a\\ud800", "destination": "s3://b/a"}', "not valid Unicode"),
        ('{"source": "\\ufeffa", "destination": "s3://b/a"}', "byte-order mark"),
        ('{"source": "a.nc", "destination": "s3:///a"}', "names no bucket"),
        ('{"source": "a.nc", "destination": "https://host/b/a"}', "must be an s3:// URL"),
        ('{"source": ".", "destination": "s3://b/"}', "has no file name"),
    ],
)
def test_values_in_a_wrong_form_are_refused(line: str, expected: str) -> None:
    assert expected in str(_refused(line + "\n"))


def test_the_wrong_direction_is_refused_for_each_line() -> None:
    put = "source,destination\ns3://b/a,a.nc\nb.nc,c.nc\nc.nc,s3://b/c\n"
    error = _refused(put, "upload")
    assert _lines(error) == [2, 3]
    assert "the source must be a local path in a put manifest" in str(error)
    assert "the destination must be an s3:// URL in a put manifest" in str(error)
    get = "source,destination\na.nc,s3://b/a\ns3://b/folder/,out/\ns3://b/c,c.nc\n"
    error = _refused(get, "download")
    assert _lines(error) == [2, 3]
    assert "the source must be an s3:// URL in a get manifest" in str(error)
    assert "names no object" in str(error)


# -- duplicates --------------------------------------------------------------------------------


def test_two_uploads_to_one_object_are_refused_naming_both_lines() -> None:
    text = (
        "source,destination\n"
        "a.nc,s3://b/x/\n"  # a key ending in / takes the file's name: x/a.nc
        "b.nc,s3://b/y.nc\n"
        "other/a.nc,s3://b/x/a.nc\n"
        "b.nc,s3://c/y.nc\n"  # another bucket
    )
    error = _refused(text)
    assert error.problems == ((4, error.problems[0][1]),)
    assert "'s3://b/x/a.nc' is also that of line 2" in str(error)


def test_two_downloads_to_one_path_are_refused() -> None:
    here = os.path.abspath("out/a.nc")
    text = (
        "source,destination\n"
        "s3://b/1/a.nc,out/a.nc\n"
        "s3://b/2/a.nc,./out/../out/a.nc\n"
        f"s3://b/3/a.nc,{here}\n"
        "s3://b/4/a.nc,out/\n"  # a trailing / names a directory: out/a.nc
        "s3://b/5/a.nc,out/b.nc\n"
    )
    error = _refused(text, "download")
    assert _lines(error) == [3, 4, 5]
    assert all("also that of line 2" in message for _, message in error.problems)


def test_a_directory_destination_receives_the_base_name() -> None:
    text = "source,destination\ns3://b/1/a.nc,out\ns3://b/2/a.nc,out/a.nc\n"
    assert len(parse_manifest(text, operation="download")) == 2  # "out" is a file here
    with pytest.raises(ManifestError, match="also that of line 2"):
        parse_manifest(text, operation="download", is_dir=lambda path: path == "out")


def test_same_object_to_two_places_is_fine() -> None:
    text = "source,destination\ns3://b/a.nc,one.nc\ns3://b/a.nc,two.nc\n"
    assert len(parse_manifest(text, operation="download")) == 2


# -- empty, blank, many problems ---------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "\n\n  \n", BOM, "source,destination,key_file\n", ",,\n"])
def test_a_manifest_naming_no_transfer_is_refused(text: str) -> None:
    with pytest.raises(UsageError, match="names no transfer") as caught:
        parse_manifest(text, operation="upload", name="m")
    assert caught.value.exit_code == 2


def test_blank_lines_are_ignored_and_lines_are_counted_as_in_an_editor() -> None:
    text = '\n\n{"source": "a.nc", "destination": "s3://b/a"}\n  \n{"source": "b.nc"}\n'
    assert _lines(_refused(text)) == [5]
    text = 'source,destination\n\n"a\nb.nc",s3://b/a\nc.nc,s3://b/a\n'  # a quoted line break
    error = _refused(text)
    assert _lines(error) == [5]
    assert "also that of line 3" in str(error)


def test_every_problem_is_collected_and_the_list_stays_short() -> None:
    lines = [f'{{"source": "f{i}", "destination": "s3://b/f{i}", "x{i}": 1}}' for i in range(12)]
    lines += ["a,b"] * 100
    error = _refused("\n".join(lines) + "\n")
    assert len(error.problems) == 112
    message = str(error).split("\n  hint:")[0]
    assert "112 lines are not as expected" in message
    assert "line 1: unknown field 'x0'" in message
    assert "line 10: unknown field 'x9'" in message
    assert "x10" not in message
    assert "... and 3 more problems" in message
    assert len(message.splitlines()) == 1 + 10 + 1
    assert error.to_dict()["problems"][0] == {  # type: ignore[index]
        "line": 1,
        "message": "unknown field 'x0' (expected source, destination, key_file)",
    }


def test_lines_with_the_same_problem_are_named_together() -> None:
    lines = ['{"source": "a", "destination": "s3://b/a"}'] + ["a,b"] * 100 + ["{}"]
    lines += ["a,b"] * 3 + [""] + ["a,b"] * 7
    message = str(_refused("\n".join(lines)))
    assert "lines 2-101, 103-105, 107-113: not a JSON object" in message
    assert "line 102: no source and no destination" in message
    lines = ["{}"] + ["a,b", "{}"] * 8
    message = str(_refused("\n".join(lines)))
    assert "lines 2, 4, 6, 8, 10 and 3 more: not a JSON object" in message


def test_the_hint_shows_both_shapes_with_an_example() -> None:
    hint = _refused("x\n").hint or ""
    assert '{"source": "data/a.nc", "destination": "s3://bucket/l1/a.nc"' in hint
    assert "source,destination,key_file\n    data/a.nc,s3://bucket/l1/a.nc,sse-c.key" in hint
    get_hint = _refused("x\n", "download").hint or ""
    assert "s3://bucket/l1/a.nc,data/a.nc" in get_hint
    assert "version_id" in get_hint


def test_key_material_in_a_value_is_not_repeated() -> None:
    key = SSECustomerKey.generate().export_base64()
    error = _refused(f"{key},s3://b/a\n")
    assert key not in str(error)
    assert "looks like key material" in str(error)


def test_text_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(UsageError, match="not UTF-8 text: byte 0xe9 on line 2"):
        decode_manifest(b"source,destination\ncaf\xe9.nc,s3://b/x\n", "m")
    with pytest.raises(UsageError, match="it is UTF-16"):
        decode_manifest("source,destination\n".encode("utf-16"), "m")
    assert decode_manifest((BOM + "x").encode()) == BOM + "x"


# -- properties --------------------------------------------------------------------------------

_names = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00\ufeff\r\n,\"'/"), min_size=1, max_size=12
).filter(lambda s: s == s.strip() and s not in (".", ".."))
_entries = st.lists(
    st.tuples(_names, _names, st.none() | _names), min_size=1, max_size=20, unique_by=lambda e: e[1]
)


@given(entries=_entries, shape=st.sampled_from(["jsonl", "csv"]), bom=st.booleans())
@settings(max_examples=200, deadline=None)
def test_what_is_written_in_either_shape_is_read_back(
    entries: list[tuple[str, str, str | None]], shape: str, bom: bool
) -> None:
    rows = [
        {"source": f"dir/{source}", "destination": f"s3://bucket/p/{key}"}
        | ({"key_file": key_file} if key_file is not None else {})
        for source, key, key_file in entries
    ]
    if shape == "jsonl":
        text = "".join(json.dumps(row, ensure_ascii=bool(len(rows) % 2)) + "\n" for row in rows)
        first = 1
    else:
        out = io.StringIO()
        writer = csv.DictWriter(out, ["source", "destination", "key_file"])
        writer.writeheader()
        writer.writerows(rows)
        text, first = out.getvalue(), 2
    parsed = parse_manifest((BOM if bom else "") + text, operation="upload")
    assert parsed == [
        ManifestEntry(first + i, f"dir/{source}", "bucket", f"p/{key}", key_file)
        for i, (source, key, key_file) in enumerate(entries)
    ]


@given(entries=_entries, data=st.data())
@settings(max_examples=100, deadline=None)
def test_any_repeated_destination_is_refused(
    entries: list[tuple[str, str, str | None]], data: st.DataObject
) -> None:
    lines = [
        json.dumps({"source": source, "destination": f"s3://b/{key}"}) for source, key, _ in entries
    ]
    repeated = data.draw(st.integers(0, len(lines) - 1))
    at = data.draw(st.integers(0, len(lines)))
    lines.insert(at, lines[repeated])
    with pytest.raises(ManifestError, match="is also that of line"):
        parse_manifest("\n".join(lines), operation="upload")


@given(text=st.text(max_size=300), operation=st.sampled_from(["upload", "download"]))
@settings(max_examples=500, deadline=None)
def test_any_text_is_read_or_refused_with_exit_2(text: str, operation: str) -> None:
    exit_code = 0
    try:
        entries = parse_manifest(text, operation=operation)  # type: ignore[arg-type]
    except UsageError as exc:
        exit_code = exc.exit_code
    else:
        assert entries
    assert exit_code in (0, 2)


# -- the file, its key files and the jobs ------------------------------------------------------


def test_read_manifest_loads_each_key_file_once(tmp_path: Path) -> None:
    good = tmp_path / "good.key"
    SSECustomerKey.generate().write_new_file(good)
    lines = [
        {"source": "s3://b/x.nc", "destination": str(tmp_path / "x.nc"), "key_file": str(good)},
        {"source": "s3://b/y.nc", "destination": str(tmp_path / "y.nc"), "key_file": str(good)},
        {"source": "s3://b/z.nc", "destination": str(tmp_path / "z.nc"), "version_id": "v1"},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(line) for line in lines))
    default = SSECustomerKey.generate()
    jobs = read_manifest(manifest, operation="download", default_key=default)
    assert jobs[0].sse_key == SSECustomerKey.from_file(good)
    assert jobs[0].sse_key is jobs[1].sse_key
    assert jobs[2].sse_key == default
    assert jobs[2].version_id == "v1"
    assert [j.path for j in jobs] == [tmp_path / "x.nc", tmp_path / "y.nc", tmp_path / "z.nc"]
    assert all(j.problem is None for j in jobs)


def test_a_key_file_that_does_not_load_refuses_the_manifest(tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_bytes(b"short")
    bad.chmod(0o600)
    rows = [f"{tmp_path / 'a'},s3://b/a,{bad}", f"{tmp_path / 'b'},s3://b/b,{tmp_path / 'no.key'}"]
    manifest = tmp_path / "m.csv"
    manifest.write_text("source,destination,key_file\n" + "\n".join(rows) + "\n")
    with pytest.raises(ManifestError) as caught:
        read_manifest(manifest, operation="upload", default_key=SSECustomerKey.generate())
    message = str(caught.value)
    assert "line 2: key file" in message
    assert "holds 5 bytes" in message
    assert "line 3: key file" in message
    assert "does not exist" in message
    assert not isinstance(caught.value, KeyFileError)  # one refusal for the whole manifest


def test_an_upload_without_any_key_is_refused(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("source,destination\na,s3://b/a\nb,s3://b/b\n")
    with pytest.raises(ManifestError, match="lines 2-3: no key for this upload"):
        read_manifest(manifest, operation="upload", default_key=None)


def test_read_manifest_sizes_uploads_and_finds_directories(tmp_path: Path) -> None:
    (tmp_path / "a.nc").write_bytes(b"12345")
    (tmp_path / "out").mkdir()
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"source,destination\n{tmp_path / 'a.nc'},s3://b/p/\n")
    [job] = read_manifest(manifest, operation="upload", default_key=SSECustomerKey.generate())
    assert (job.key, job.size) == ("p/a.nc", 5)
    down = tmp_path / "d.csv"
    down.write_text(
        f"source,destination\ns3://b/1/a.nc,{tmp_path / 'out'}\n"
        f"s3://b/2/a.nc,{tmp_path / 'out' / 'a.nc'}\n"
        f"s3://b/m.csv,{down}\n"
    )
    with pytest.raises(ManifestError) as caught:
        read_manifest(down, operation="download", default_key=None)
    message = str(caught.value)
    assert "line 3: the destination" in message
    assert "also that of line 2" in message
    assert "line 4: the destination is the manifest itself" in message


def test_read_manifest_refuses_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read manifest"):
        read_manifest(tmp_path / "missing.jsonl", operation="upload", default_key=None)
    with pytest.raises(UsageError, match="is a directory"):
        read_manifest(tmp_path, operation="upload", default_key=None)
    latin = tmp_path / "latin1.csv"
    latin.write_bytes("source,destination\ncafé.nc,s3://b/x\n".encode("latin-1"))
    with pytest.raises(UsageError, match="not UTF-8"):
        read_manifest(latin, operation="upload", default_key=None)
