"""GetObject, PutObject and UploadPart as botocore describes them, compiled once into lookup
tables: botocore's parameters to headers and query, and an answer's headers back to botocore's
response fields.

The tables come from botocore's own service model, so header names, query names and response
fields are the ones botocore uses. Only plain values are taken (strings, integers, booleans,
`Metadata`, an in-memory or sliced body); a parameter that botocore would transform, validate
or compute something for (`ChecksumAlgorithm`, a key without its MD5, a timestamp, a body of
another kind, a value of the wrong type, an unknown name) makes `serialize` return None, and
the request goes through aiobotocore, which then does what it always did.
"""

from __future__ import annotations

import datetime
import email.utils
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ssec_transfer.s3.bodies import FilePartBody, PartBody

DATA_OPERATIONS = ("GetObject", "PutObject", "UploadPart")

# Parameters botocore acts on before sending (flexible checksums it computes, a length it
# derives from the body): such requests are botocore's.
_BOTOCORE_ONLY = frozenset({"ChecksumAlgorithm", "ContentLength"})
# Bodies the data plane sends as they are (bytes) or slice by slice (`s3.bodies`).
_BODIES = (bytes, bytearray, PartBody, FilePartBody)
_QUERY_SAFE = "-._~"  # botocore.utils.SAFE_CHARS


@dataclass(frozen=True, slots=True)
class Serialized:
    """One request, ready to be addressed (`s3.routes`) and signed (`s3.signing`)."""

    method: str
    bucket: str
    key: str
    query: str  # percent-encoded, in the order of the parameters (as botocore builds it)
    headers: dict[str, str]
    body: Any  # None, bytes, or a body of `s3.bodies`


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _integer(value: Any) -> str | None:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _boolean(value: Any) -> str | None:
    return ("true" if value else "false") if isinstance(value, bool) else None


_WRITERS: dict[str, Callable[[Any], str | None]] = {
    "string": _text,
    "integer": _integer,
    "long": _integer,
    "boolean": _boolean,
}


def _http_date(value: str) -> datetime.datetime:
    return email.utils.parsedate_to_datetime(value)


def _iso_date(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value)


_READERS: dict[str, Callable[[str], Any]] = {
    "string": str,
    "integer": int,
    "long": int,
    "boolean": lambda value: value.lower() == "true",
}


class Operation:
    """One data operation, compiled from botocore's `OperationModel`."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.name: str = model.name
        self.method: str = model.http["method"]
        self.streams: bool = bool(model.has_streaming_output)
        self._headers: dict[str, tuple[str, Callable[[Any], str | None]]] = {}
        self._query: dict[str, tuple[str, Callable[[Any], str | None]]] = {}
        self._prefixed: dict[str, str] = {}  # Metadata -> x-amz-meta-
        self._payload: str | None = model.input_shape.serialization.get("payload")
        for name, shape in model.input_shape.members.items():
            where = shape.serialization.get("location")
            writer = _WRITERS.get(shape.type_name)
            if where == "headers" and shape.type_name == "map":
                self._prefixed[name] = shape.serialization["name"]
            elif writer is None or name in _BOTOCORE_ONLY:
                continue
            elif where == "header":
                self._headers[name] = (shape.serialization["name"], writer)
            elif where == "querystring":
                self._query[name] = (shape.serialization["name"], writer)
        self._fields: dict[str, tuple[str, Callable[[str], Any]]] = {}
        self._field_prefixes: list[tuple[str, str]] = []
        for name, shape in model.output_shape.members.items():
            where = shape.serialization.get("location")
            if where == "headers" and shape.type_name == "map":
                self._field_prefixes.append((shape.serialization["name"].lower(), name))
                continue
            if where != "header":
                continue
            reader = _READERS.get(shape.type_name)
            if shape.type_name == "timestamp":
                iso = shape.serialization.get("timestampFormat") == "iso8601"
                reader = _iso_date if iso else _http_date
            if reader is not None:
                self._fields[shape.serialization["name"].lower()] = (name, reader)

    def serialize(self, params: Mapping[str, Any]) -> Serialized | None:
        """The request botocore would build from `params`, or None if it is botocore's."""
        bucket, key = params.get("Bucket"), params.get("Key")
        if not (isinstance(bucket, str) and bucket and isinstance(key, str) and key):
            return None
        if "SSECustomerKey" in params and "SSECustomerKeyMD5" not in params:
            return None  # botocore computes the MD5 (and may encode the key)
        headers: dict[str, str] = {}
        query: list[str] = []
        body: Any = None
        for name, value in params.items():
            if name in ("Bucket", "Key"):
                continue
            if name == self._payload:
                if not isinstance(value, _BODIES):
                    return None
                body = value
            elif name in self._headers:
                wire, write = self._headers[name]
                text = write(value)
                if text is None:
                    return None
                headers[wire] = text
            elif name in self._query:
                wire, write = self._query[name]
                text = write(value)
                if text is None:
                    return None
                query.append(f"{quote(wire, safe=_QUERY_SAFE)}={quote(text, safe=_QUERY_SAFE)}")
            elif name in self._prefixed:
                if not _ascii_metadata(value):
                    return None  # botocore refuses it (validate_ascii_metadata)
                prefix = self._prefixed[name]
                headers.update({prefix + k: v for k, v in value.items()})
            else:
                return None
        if self._payload is not None and body is None:
            body = b""
        return Serialized(self.method, bucket, key, "&".join(query), headers, body)

    def parse(self, headers: Mapping[str, str]) -> dict[str, Any]:
        """botocore's response fields from an answer's headers (names in lowercase)."""
        parsed: dict[str, Any] = {name: {} for _, name in self._field_prefixes}
        for header, value in headers.items():
            field = self._fields.get(header)
            if field is not None:
                name, read = field
                try:
                    parsed[name] = read(value)
                except (ValueError, TypeError):
                    continue  # a value botocore could not use either
                continue
            for prefix, name in self._field_prefixes:
                if header.startswith(prefix):
                    parsed[name][header[len(prefix) :]] = value
        return parsed


def _ascii_metadata(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    return all(
        isinstance(k, str) and isinstance(v, str) and k.isascii() and v.isascii()
        for k, v in value.items()
    )


def response_metadata(headers: Mapping[str, str], status: int) -> dict[str, Any]:
    """botocore's `ResponseMetadata` of an answer (RetryAttempts is the sender's)."""
    metadata: dict[str, Any] = {}
    if "x-amzn-requestid" in headers:
        metadata["RequestId"] = headers["x-amzn-requestid"]
    elif "x-amz-request-id" in headers:
        metadata["RequestId"] = headers["x-amz-request-id"]
        metadata["HostId"] = headers.get("x-amz-id-2", "")
    metadata["HTTPStatusCode"] = status
    metadata["HTTPHeaders"] = dict(headers)
    return metadata
