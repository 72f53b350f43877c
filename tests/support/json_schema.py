"""Validate `--json` output against the one schema every command shares
(`ssec_transfer/core/output_schema.json`, explained in docs/json.md)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from ssec_transfer.core.report import SCHEMA_FILE, SCHEMA_VERSION

# Commands whose --json lines follow the schema (head, doctor, keyring... print their own).
SCHEMA_COMMANDS = frozenset(
    {"put", "get", "cp", "rotate", "rm", "watch", "ls", "sync", "mv", "grant", "post", "presign"}
)


@cache
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(resources.files("ssec_transfer.core").joinpath(SCHEMA_FILE).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate_record(record: Any) -> None:
    """Raise `jsonschema.ValidationError` (saying which field) unless `record` fits."""
    validator().validate(record)
    assert record["schema"] == SCHEMA_VERSION


def validate_lines(stdout: str) -> list[dict[str, Any]]:
    """Every line of `stdout` parsed and validated; the records, in order."""
    records = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        try:
            validate_record(record)
        except jsonschema.ValidationError as exc:
            raise AssertionError(f"{exc.message} at {list(exc.absolute_path)} in {line}") from None
        records.append(record)
    return records
