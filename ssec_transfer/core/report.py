"""The one shape of every machine-readable line the commands print (`--json`).

Every line is a JSON object with `"schema"` (`SCHEMA_VERSION`) and a `"type"`:

- `object`: one object's outcome (put, get, cp, rotate, rm, watch, sync, mv), built only by
  `object_record`, so the same thing has the same name in every command;
- `summary`: the end of a run (`summary_record`);
- `event`: a moment in a long run that concerns no single object (`event_record`);
- `error`: a failure of the command itself, before or outside any object (`error_record`);
- `interrupted`: stopped by a signal (`interrupted_record`);
- `listing`: one entry of `ls` (`listing_record`);
- `grant`: what `grant` wrote (`grant_record`).
- `presign`: a presigned URL `presign` made (`presign_record`).

A failure is always the same flat fields (`error_fields`): `error` (one line, no hint),
`error_type`, `hint`, `request`, `part`, `http_status`, `request_id` and `exit_code`. Within a
schema version fields are only ever added; `output_schema.json` beside this module is the
JSON Schema of it all, and `docs/json.md` explains it. Nothing here ever sees key material:
records are built from results and errors, which hold fingerprints only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from ssec_transfer.core.errors import SSECTransferError

if TYPE_CHECKING:
    from ssec_transfer.core.results import TransferResult

SCHEMA_VERSION = 1
SCHEMA_FILE = "output_schema.json"  # in this package (`ssec_transfer.core`)

Operation = Literal["upload", "download", "copy", "rotate", "delete", "move"]
Status = Literal["ok", "skipped", "failed", "dryrun"]
MOVES_BYTES = frozenset({"upload", "download", "copy", "rotate", "move"})

# The fields every object record has, in the order docs/json.md lists them (null if unknown).
OBJECT_FIELDS = (
    "operation", "status", "source", "destination", "bucket", "key", "path", "size",
    "seconds", "mib_per_s", "etag", "version_id", "key_fingerprint", "checksum", "parts",
    "reason",
)  # fmt: skip
GRANT_FIELDS = (
    "url", "bucket", "prefix", "key_fingerprint", "algorithm", "expires", "min_size", "max_size",
)  # fmt: skip
ERROR_FIELDS = (
    "error", "error_type", "hint", "request", "part", "http_status", "request_id", "exit_code",
)  # fmt: skip


def mib_per_s(size: int | None, seconds: float | None) -> float | None:
    """MiB/s to two decimals; None when nothing can be said (no size, no time)."""
    if size is None or not seconds or seconds <= 0:
        return None
    return round(size / 1048576 / seconds, 2)


def error_fields(error: BaseException | str | None) -> dict[str, Any]:
    """A failure as flat fields: `error` is one line (where, what, HTTP details) without the
    hint, which has a field of its own, as have the HTTP status and request id the server
    gave. No error: every field null and `exit_code` 0."""
    if error is None:
        return {name: None for name in ERROR_FIELDS} | {"exit_code": 0}
    if isinstance(error, SSECTransferError):
        ctx = error.context
        return {
            "error": error.describe(),
            "error_type": type(error).__name__,
            "hint": error.hint,
            "request": ctx.operation,
            "part": ctx.part,
            "http_status": ctx.status,
            "request_id": ctx.request_id,
            "exit_code": error.exit_code,
        }
    if isinstance(error, BaseException):
        text = str(error) or type(error).__name__
        kind: str | None = type(error).__name__
    else:
        text, kind = error, None
    fields = {name: None for name in ERROR_FIELDS}
    return fields | {"error": text, "error_type": kind, "exit_code": 1}


def object_record(
    operation: Operation,
    status: Status,
    *,
    source: str | None = None,
    destination: str | None = None,
    bucket: str | None = None,
    key: str | None = None,
    path: str | None = None,
    size: int | None = None,
    seconds: float | None = None,
    result: TransferResult | None = None,
    etag: str | None = None,
    version_id: str | None = None,
    key_fingerprint: str | None = None,
    checksum: str | None = None,
    parts: int | None = None,
    reason: str | None = None,
    error: BaseException | str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One object's outcome. Values given win over those of `result` (a finished transfer's
    result fills bucket, key, size, seconds, etag, version id, fingerprint, checksum, parts;
    its path only for uploads and downloads, where it is local). `mib_per_s` is computed for
    operations that move bytes and succeeded. `extra` adds fields an operation has on top
    (a copy's `via`, a delete's `delete_marker`...); it cannot replace a common field."""
    r = result
    local = operation in ("upload", "download")
    size = size if size is not None else (r.size if r else None)
    seconds = seconds if seconds is not None else (r.seconds if r else None)
    rate = mib_per_s(size, seconds) if status == "ok" and operation in MOVES_BYTES else None
    record: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "type": "object",
        "operation": operation,
        "status": status,
        "source": source,
        "destination": destination,
        "bucket": bucket if bucket is not None else (r.bucket if r else None),
        "key": key if key is not None else (r.key if r else None),
        "path": path if path is not None else (r.path if r and local else None),
        "size": size,
        "seconds": round(seconds, 4) if seconds is not None else None,
        "mib_per_s": rate,
        "etag": etag if etag is not None else (r.etag if r else None),
        "version_id": version_id if version_id is not None else (r.version_id if r else None),
        "key_fingerprint": (
            key_fingerprint if key_fingerprint is not None else (r.key_fingerprint if r else None)
        ),
        "checksum": checksum if checksum is not None else (r.checksum if r else None),
        "parts": parts if parts is not None else (r.parts if r else None),
        "reason": reason,
        **error_fields(error),
    }
    for name, value in (extra or {}).items():
        if name in record:
            raise ValueError(f"extra field {name!r} would replace a common one")
        record[name] = value
    return record


def result_record(result: TransferResult, *, status: Status = "ok", **given: Any) -> dict[str, Any]:
    """A finished upload or download (`TransferResult`) as an object record: source and
    destination are its file and its s3:// URL, in the direction it went; `given` are
    `object_record`'s keywords, for what the caller knows better."""
    url = f"s3://{result.bucket}/{result.key}"
    upload = result.operation == "upload"
    given.setdefault("source", result.path if upload else url)
    given.setdefault("destination", url if upload else result.path)
    # Parts (ranges, for a download) an interrupted earlier run had already moved (--resume).
    given["extra"] = {"resumed_parts": result.resumed_parts, **given.get("extra", {})}
    operation: Operation = "upload" if upload else "download"
    return object_record(operation, status, result=result, **given)


def summary_record(command: str, **counts: Any) -> dict[str, Any]:
    """The end of a run of `command`: counts (`ok`, `skipped`, `failed`, `not_run`,
    `excluded`...), `bytes`, `seconds`, `mib_per_s`, as the command has them."""
    return {"schema": SCHEMA_VERSION, "type": "summary", "command": command, **counts}


def event_record(command: str, event: str, **fields: Any) -> dict[str, Any]:
    """A moment of a long run (watch's `started`, `stopping`) that concerns no one object."""
    return {"schema": SCHEMA_VERSION, "type": "event", "command": command, "event": event,
            **fields}  # fmt: skip


def error_record(command: str | None, error: SSECTransferError) -> dict[str, Any]:
    """The command itself failed: the error's fields, the object it concerned if any, and
    what its kind adds (`SSECTransferError.details`: a refused manifest's `problems`)."""
    ctx = error.context
    record: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "type": "error",
        "command": command,
        "bucket": ctx.bucket,
        "key": ctx.key,
        **error_fields(error),
    }
    return record | {k: v for k, v in error.details().items() if k not in record}


def interrupted_record(command: str | None, signal_name: str, exit_code: int) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "type": "interrupted",
        "command": command,
        "signal": signal_name,
        "exit_code": exit_code,
    }


def listing_record(entry: Literal["object", "prefix", "bucket"], **fields: Any) -> dict[str, Any]:
    """One line of `ls --json`: what it lists (`entry`) and that entry's own fields."""
    return {"schema": SCHEMA_VERSION, "type": "listing", "entry": entry, **fields}


def grant_record(grant: Mapping[str, Any], *, file: str, html: str | None) -> dict[str, Any]:
    """What `grant` wrote: the grant's facts (never its signed fields: they are in the file)
    and where it went (`file`, `-` for stdout; `html`, the upload page, or null)."""
    return {
        "schema": SCHEMA_VERSION,
        "type": "grant",
        "command": "grant",
        **{name: grant[name] for name in GRANT_FIELDS},
        "file": file,
        "html": html,
    }


def presign_record(
    *,
    method: Literal["GET", "PUT"],
    url: str,
    bucket: str,
    key: str,
    expires: str,
    expires_in: int,
    key_fingerprint: str,
    signed_headers: list[str],
    curl_headers: str | None,
) -> dict[str, Any]:
    """A presigned URL (`presign`): the URL (no key in it), what it is for and until when, the
    fingerprint of the key its holder must have, and the headers file written, if any."""
    return {
        "schema": SCHEMA_VERSION,
        "type": "presign",
        "method": method,
        "url": url,
        "bucket": bucket,
        "key": key,
        "expires": expires,
        "expires_in": expires_in,
        "key_fingerprint": key_fingerprint,
        "signed_headers": signed_headers,
        "curl_headers": curl_headers,
    }
