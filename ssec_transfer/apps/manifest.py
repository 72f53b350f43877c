"""The manifest of a bulk run (`put/get --manifest FILE`): its grammar, checked whole first.

A manifest is exactly one of two shapes, in UTF-8 (a byte-order mark is accepted in both):

- JSON lines: each line one JSON object with the string fields `source`, `destination`,
  optional `key_file` and, in a get manifest only, optional `version_id`;
- CSV: a first row naming those columns (in any order, separated by commas), then one row per
  transfer; an empty `key_file` or `version_id` cell means none.

Blank lines (and CSV rows of empty cells) are ignored. For put the source is a local path and
the destination an s3:// URL (a key that is empty or ends in `/` receives the file's base
name, as `put` does); for get the reverse (a destination that is a directory receives the
object's base name). Relative paths are relative to the current directory, not to the
manifest. Values are taken verbatim: one that starts or ends with a space is refused.

Anything else refuses the whole manifest before any request (exit 2), with every problem found
listed by line: a line of another shape (a CSV row in JSON lines, a JSON array, a CSV without
its header row), unparsable text, a missing or unknown field, a value that is not a string,
a source or destination on the wrong side, two lines writing the same destination, a key
file that does not load, or no transfer at all.

`parse_manifest` is the grammar alone (pure: text in, entries out); `read_manifest` reads the
file, loads the key files and plans the `TransferJob`s.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssec_transfer.apps.bulk import Operation, TransferJob
from ssec_transfer.core.errors import SSECTransferError, UsageError
from ssec_transfer.keys import redact
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.urls import parse_s3_url

REQUIRED = ("source", "destination")
OPTIONAL: dict[Operation, tuple[str, ...]] = {
    "upload": ("key_file",),
    "download": ("key_file", "version_id"),
}
MAX_LISTED = 10  # problems listed in the error; the rest are counted

BOM = "\ufeff"
_VERB: dict[Operation, str] = {"upload": "put", "download": "get"}


@dataclass(frozen=True)
class ManifestEntry:
    """One transfer named by a manifest, with put's base-name rule applied to `key`."""

    line: int
    local: str  # the local path, as written
    bucket: str
    key: str
    key_file: str | None = None
    version_id: str | None = None


Problem = tuple[int, str]  # (line number, what is wrong with it)


class ManifestError(UsageError):
    """The manifest is refused as a whole: nothing was sent. `problems` lists every line."""

    def __init__(self, name: str, operation: Operation, problems: Sequence[Problem]) -> None:
        self.problems = tuple(sorted(problems))
        super().__init__(_describe(name, self.problems), hint=shapes_hint(operation))

    def details(self) -> dict[str, object]:
        return {"problems": [{"line": line, "message": text} for line, text in self.problems]}

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), **self.details()}


def shapes_hint(operation: Operation) -> str:
    """The two accepted shapes, with an example each."""
    local, remote = "data/a.nc", "s3://bucket/l1/a.nc"
    source, destination = (local, remote) if operation == "upload" else (remote, local)
    optional = " and version_id are" if operation == "download" else " is"
    example = {"source": source, "destination": destination, "key_file": "sse-c.key"}
    return (
        "a manifest is JSON lines, one object per line:\n"
        f"    {json.dumps(example)}\n"
        "  or CSV whose first row names the columns:\n"
        "    source,destination,key_file\n"
        f"    {source},{destination},sse-c.key\n"
        f"  key_file{optional} optional; each destination at most once; UTF-8, a byte-order "
        "mark is accepted"
    )


# -- the grammar (pure) ------------------------------------------------------------------------


def _no_directories(_path: str) -> bool:
    return False


def parse_manifest(
    text: str,
    *,
    operation: Operation,
    name: str = "",
    is_dir: Callable[[str], bool] = _no_directories,
) -> list[ManifestEntry]:
    """The entries of a manifest, or `ManifestError` listing every line in the wrong shape.

    `is_dir` tells which local paths are existing directories (a get destination that is one
    receives the object's base name); by default none is, keeping this free of I/O."""
    entries, problems = _parse(text, operation, is_dir)
    if problems:
        raise ManifestError(name, operation, problems)
    if not entries:
        raise _empty(name, operation)
    return entries


def _empty(name: str, operation: Operation) -> UsageError:
    return UsageError(
        f"{_called(name)} names no transfer (it is empty, blank or only a header row); "
        "a run that would do nothing is refused",
        hint=shapes_hint(operation),
    )


def _parse(
    text: str, operation: Operation, is_dir: Callable[[str], bool]
) -> tuple[list[ManifestEntry], list[Problem]]:
    text = text.removeprefix(BOM)
    first = next((line.lstrip() for line in text.split("\n") if line.strip()), "")
    if first.startswith(("{", "[")):
        rows, problems = _json_rows(text)
    else:
        rows, problems = _csv_rows(text, operation)
    entries = []
    for line, fields in rows:
        entry = _entry(line, fields, operation, problems)
        if entry is not None:
            entries.append(entry)
    problems += _duplicates(entries, operation, is_dir)
    return entries, problems


class _DuplicateField(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


def _object_no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for name, value in pairs:
        if name in seen:
            raise _DuplicateField(name)
        seen[name] = value
    return seen


_DECODER = json.JSONDecoder(object_pairs_hook=_object_no_duplicates)

_JSON_KINDS: tuple[tuple[type, str], ...] = (
    (str, "a string"), (bool, "true/false"), (int, "a number"), (float, "a number"),
    (list, "an array"), (dict, "an object"), (type(None), "null"),
)  # fmt: skip


def _kind(value: object) -> str:
    return next((name for kind, name in _JSON_KINDS if isinstance(value, kind)), "a value")


def _json_rows(text: str) -> tuple[list[tuple[int, dict[str, object]]], list[Problem]]:
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    missing = object()
    try:
        whole: object = json.loads(text)
    except (ValueError, RecursionError):
        whole = missing
    if isinstance(whole, list) or (isinstance(whole, dict) and len(numbered) > 1):
        what = "a JSON array" if isinstance(whole, list) else "one JSON object"
        return [], [
            (numbered[0][0], f"the file is {what}, not JSON lines: write each object on a "
                             "line of its own, without [ ]")
        ]  # fmt: skip
    rows: list[tuple[int, dict[str, object]]] = []
    problems: list[Problem] = []
    for number, line in numbered:
        if line.startswith(BOM):
            problems.append((number, "a byte-order mark inside the file (files joined?)"))
            continue
        try:
            value = _DECODER.decode(line)
        except _DuplicateField as exc:
            problems.append((number, f"field {_shown(exc.name)} given twice"))
            continue
        except json.JSONDecodeError as exc:
            if line.lstrip().startswith("{"):
                problems.append((number, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            else:
                problems.append((number, "not a JSON object: a JSON-lines manifest has one per "
                                         "line"))  # fmt: skip
            continue
        except RecursionError:
            problems.append((number, "not valid JSON (nested too deeply)"))
            continue
        if not isinstance(value, dict):
            problems.append((number, f"{_kind(value)}, not a JSON object"))
            continue
        rows.append((number, value))
    return rows, problems


def _csv_rows(
    text: str, operation: Operation
) -> tuple[list[tuple[int, dict[str, object]]], list[Problem]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    rows: list[tuple[int, dict[str, object]]] = []
    problems: list[Problem] = []
    start = 1
    try:
        for row in reader:
            number, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue  # a blank line, or a spreadsheet's row of empty cells
            if header is None:
                wrong = _header_problems(row, operation)
                if wrong:
                    return [], [(number, wrong)]
                header = [cell.strip() for cell in row]
                continue
            if row[0].lstrip().startswith("{"):
                problems.append((number, "a JSON line in a CSV manifest: use one shape only"))
            elif len(row) != len(header):
                problems.append(
                    (number, f"{len(row)} fields, but the header row names {len(header)} "
                             f"({','.join(header)})")
                )  # fmt: skip
            else:
                rows.append((number, {k: v for k, v in zip(header, row, strict=True) if v}))
    except csv.Error as exc:
        problems.append((start, f"not valid CSV ({exc})"))
    return rows, problems


def _header_problems(row: list[str], operation: Operation) -> str | None:
    names = [cell.strip() for cell in row]
    allowed = REQUIRED + OPTIONAL[operation]
    if not any(name.lower() in allowed for name in names):
        found = ",".join(_shown(cell) for cell in row[:4]) + (",..." if len(row) > 4 else "")
        text = (
            f"not a header row: a CSV manifest starts with a row naming its columns "
            f"({','.join(allowed)}); found {found}"
        )
        if any(sep in row[0] for sep in (";", "\t")):
            text += " (columns are separated by commas)"
        return text
    wrong = [_unknown(name, operation) for name in names if name not in allowed]
    wrong += [f"no {name} column" for name in REQUIRED if name not in names]
    twice = sorted({n for n in names if names.count(n) > 1})
    wrong += [f"column {_shown(n)} named twice" for n in twice]
    return "; ".join(wrong) or None


def _unknown(name: str, operation: Operation) -> str:
    text = f"unknown field {_shown(name)}"
    if name.lower() in REQUIRED + OPTIONAL[operation]:
        return text + " (names are lower case)"
    if operation == "upload" and name == "version_id":
        return text + " (version_id applies to get manifests)"
    return text + f" (expected {', '.join(REQUIRED + OPTIONAL[operation])})"


def _entry(
    line: int, fields: dict[str, object], operation: Operation, problems: list[Problem]
) -> ManifestEntry | None:
    """The entry one parsed line names, or None with its problems added to `problems`."""
    allowed = REQUIRED + OPTIONAL[operation]
    wrong = [_unknown(name, operation) for name in fields if name not in allowed]
    values: dict[str, str] = {}
    for name in allowed:
        if name not in fields:
            continue
        value = fields[name]
        if not isinstance(value, str):
            wrong.append(f"{name} must be a string, not {_kind(value)}")
        elif not value:
            wrong.append(f"{name} is empty (leave the field out instead)")
        elif value != value.strip():
            wrong.append(f"{name} {_shown(value)} starts or ends with a space")
        elif BOM in value:
            wrong.append(f"{name} holds a byte-order mark (files joined?)")
        elif "\x00" in value:
            wrong.append(f"{name} contains a NUL character")
        elif not _is_utf8(value):
            wrong.append(f"{name} is not valid Unicode text")
        else:
            values[name] = value
    absent = [name for name in REQUIRED if name not in fields]
    if absent:
        wrong.append(f"no {' and no '.join(absent)}")
    if wrong:
        problems.append((line, "; ".join(wrong)))
        return None
    source, destination = values["source"], values["destination"]
    verb = _VERB[operation]
    if operation == "upload":
        local, remote, remote_side = source, destination, "destination"
        if local.startswith("s3://"):
            wrong.append(
                f"the source must be a local path in a put manifest, not {_shown(local)} "
                "(copies between buckets are `ssec-transfer cp`)"
            )
    else:
        local, remote, remote_side = destination, source, "source"
        if local.startswith("s3://"):
            wrong.append(f"the destination must be a local path in a get manifest, not "
                         f"{_shown(local)}")  # fmt: skip
    url = None
    if not remote.startswith("s3://"):
        wrong.append(f"the {remote_side} must be an s3:// URL in a {verb} manifest, not "
                     f"{_shown(remote)}")  # fmt: skip
    else:
        try:
            url = parse_s3_url(remote)
        except UsageError as exc:
            wrong.append(f"the {remote_side}: {exc.message}")
    if wrong or url is None:
        problems.append((line, "; ".join(wrong)))
        return None
    key = url.key
    if operation == "upload" and (not key or key.endswith("/")):
        key += Path(local).name
        if not key or key.endswith("/"):
            problems.append((line, f"no object key: {_shown(remote)} ends with / and the source "
                                   f"{_shown(local)} has no file name"))  # fmt: skip
            return None
    if operation == "download" and (not key or key.endswith("/")):
        problems.append(
            (line, f"the source {_shown(remote)} names no object (get --recursive downloads a "
                   "prefix)")
        )  # fmt: skip
        return None
    return ManifestEntry(
        line, local, url.bucket, key, values.get("key_file"), values.get("version_id")
    )


def destination_of(
    entry: ManifestEntry, operation: Operation, is_dir: Callable[[str], bool] = _no_directories
) -> str:
    """Where the entry writes, normalized so that two spellings of one place are equal."""
    if operation == "upload":
        return f"s3://{entry.bucket}/{entry.key}"
    path = entry.local
    if path.endswith(("/", os.sep)) or is_dir(path):
        path = os.path.join(path, entry.key.rsplit("/", 1)[-1])
    return os.path.abspath(path)


def _duplicates(
    entries: Sequence[ManifestEntry], operation: Operation, is_dir: Callable[[str], bool]
) -> list[Problem]:
    first: dict[str, int] = {}
    problems = []
    for entry in entries:
        where = destination_of(entry, operation, is_dir)
        if where in first:
            problems.append(
                (entry.line, f"the destination {_shown(where)} is also that of line "
                             f"{first[where]}: each destination at most once")
            )  # fmt: skip
        else:
            first[where] = entry.line
    return problems


# -- the file, its key files and the jobs ------------------------------------------------------


def read_manifest(
    path: Path, *, operation: Operation, default_key: SSECustomerKey | None
) -> list[TransferJob]:
    """The jobs a manifest names, or a `UsageError` (exit 2) before anything is sent.

    Every key file is loaded here: one that is missing or malformed refuses the manifest with
    the other problems, as `--key-file` would (a wrong but valid key is found per object by
    the server, exit 3 for that object)."""
    name = str(path)
    text = decode_manifest(_read(path), name)
    entries, problems = _parse(text, operation, os.path.isdir)
    keys: dict[str, SSECustomerKey | SSECTransferError] = {}
    itself = os.path.abspath(path)
    for entry in entries:
        if entry.key_file is not None:
            if entry.key_file not in keys:
                try:
                    keys[entry.key_file] = SSECustomerKey.from_file(entry.key_file)
                except SSECTransferError as exc:
                    keys[entry.key_file] = exc
            loaded = keys[entry.key_file]
            if isinstance(loaded, SSECTransferError):
                problems.append((entry.line, loaded.message))
        elif operation == "upload" and default_key is None:
            problems.append((entry.line, "no key for this upload: give key_file or --key-file"))
        if operation == "download" and destination_of(entry, operation, os.path.isdir) == itself:
            problems.append((entry.line, "the destination is the manifest itself"))
    if problems:
        raise ManifestError(name, operation, problems)
    if not entries:
        raise _empty(name, operation)
    jobs = []
    for entry in entries:
        key = keys[entry.key_file] if entry.key_file is not None else default_key
        assert not isinstance(key, SSECTransferError)  # refused above
        size = None
        if operation == "upload":
            try:
                size = os.stat(entry.local).st_size
            except (OSError, ValueError):
                size = None  # reported when its transfer runs, like today
        jobs.append(
            TransferJob(
                operation, Path(entry.local), entry.bucket, entry.key, key,
                version_id=entry.version_id, size=size,
            )
        )  # fmt: skip
    return jobs


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise UsageError(f"manifest {path} is a directory", hint="give the manifest file") from None
    except OSError as exc:
        raise UsageError(f"cannot read manifest {path}: {exc.strerror}") from None


def decode_manifest(data: bytes, name: str = "") -> str:
    """UTF-8 text (a byte-order mark stays, `parse_manifest` accepts it), or exit 2."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        found = ""
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            found = " (it is UTF-16, as spreadsheets write 'Unicode text')"
        raise UsageError(
            f"{_called(name)} is not UTF-8 text{found}: byte 0x{data[exc.start]:02x} on line "
            f"{line} is not valid UTF-8",
            hint="save the manifest as UTF-8 (with or without a byte-order mark)",
        ) from None


def _is_utf8(value: str) -> bool:
    """False for text no file name or object key can hold (a lone surrogate from JSON)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- messages ----------------------------------------------------------------------------------


def _shown(value: str) -> str:
    """`value` quoted for a message, shortened; never what looks like key material (hex or
    base64: a 32-character value is as likely an ordinary path here)."""
    if redact.key_form(value, raw=False) is not None:
        return redact.KEY_MATERIAL
    text = repr(value)
    return text if len(text) <= 240 else text[:236] + "...'"


def _called(name: str) -> str:
    return f"manifest {name}" if name else "the manifest"


def _line_numbers(numbers: Sequence[int], most: int = 5) -> str:
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    shown = [f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:most]]
    text = ("line " if len(numbers) == 1 else "lines ") + ", ".join(shown)
    if len(runs) > most:
        text += f" and {sum(b - a + 1 for a, b in runs[most:])} more"
    return text


def _describe(name: str, problems: Sequence[Problem]) -> str:
    """One line per distinct problem, naming the lines it is found on."""
    lines_by_message: dict[str, list[int]] = {}
    for line, message in problems:
        lines_by_message.setdefault(message, []).append(line)
    count = len({line for line, _ in problems})
    text = (
        f"{_called(name)} is refused, nothing was sent: {count} "
        f"{'line is' if count == 1 else 'lines are'} not as expected"
    )
    groups = list(lines_by_message.items())
    for message, lines in groups[:MAX_LISTED]:
        text += f"\n  {_line_numbers(lines)}: {message}"
    if len(groups) > MAX_LISTED:
        text += f"\n  ... and {len(groups) - MAX_LISTED} more problems"
    return text
