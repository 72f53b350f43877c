"""Ask an endpoint what it really does, with throwaway objects under a prefix of our own.

S3 servers differ exactly where SSE-C is delicate (see the README's table). Each probe here
answers one question by trying it; `ssec-transfer doctor` runs them all, and the engine runs
the checksum probe before honouring an explicit `--checksum`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
import botocore.exceptions as bx

from ssec_transfer.core.checksums import ALGORITHMS, ChecksumAlgorithm
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.errors import status_of
from ssec_transfer.s3.sse import copy_source_sse_params, sse_params

PROBE_PREFIX = ".ssec-transfer-probe/"


def probe_key() -> str:
    return f"{PROBE_PREFIX}{uuid.uuid4().hex}"


async def delete_quietly(client: Any, bucket: str, key: str) -> None:
    """Shielded: probes are removed in `finally` blocks, also when a signal stops the run."""
    with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
        await client.delete_object(Bucket=bucket, Key=key)


async def server_verifies_checksum(
    client: Any, bucket: str, algorithm: ChecksumAlgorithm, sse_key: SSECustomerKey
) -> bool:
    """True when a PUT carrying a wrong checksum is refused (so a right one was checked)."""
    key = probe_key()
    data = os.urandom(64)
    try:
        await client.put_object(
            Bucket=bucket,
            Key=key,
            Body=data,
            **{algorithm.param: algorithm.corrupt(algorithm.of(data))},
            **sse_params(sse_key),
        )
    except Exception as exc:
        status = status_of(exc)
        if status is not None and 400 <= status < 500 and status not in (403, 404):
            return True
        raise
    await delete_quietly(client, bucket, key)
    return False


# -- cached findings, per endpoint --------------------------------------------------------


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ssec-transfer" / "capabilities.json"


def load_cached(endpoint_url: str) -> dict[str, str]:
    """Findings of the last doctor run against this endpoint (`check -> value`), if any."""
    try:
        data = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}
    found = data.get(endpoint_url, {})
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def save_cache(endpoint_url: str, findings: list[Finding]) -> None:
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        data[endpoint_url] = {f.check: f.value for f in findings}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(path)
    except OSError:
        pass  # a cache is an optimisation; never fail the doctor over it


# -- the doctor's probes ----------------------------------------------------------------------


@dataclass
class Finding:
    """One probed behaviour: a short machine-readable `value` and a sentence for people."""

    check: str
    value: str
    detail: str
    ok: bool | None = None  # True good, False bad for users, None informative

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _answer(exc: BaseException) -> str:
    """`403 AccessDenied`-style summary of a failed request."""
    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = error.get("Code", "")
        return f"{status} {code}".strip() if code and code != str(status) else str(status)
    return type(exc).__name__


async def _read(client: Any, bucket: str, key: str, params: dict[str, Any]) -> bytes:
    resp = await client.get_object(Bucket=bucket, Key=key, **params)
    async with resp["Body"] as body:
        data: bytes = await body.read()
    return data


async def probe_endpoint(
    client: Any, bucket: str, *, streamed_client: Any | None = None
) -> list[Finding]:
    """Run every probe against `bucket`, removing each throwaway object it creates."""
    findings: list[Finding] = []
    key = SSECustomerKey.generate()
    other = SSECustomerKey.generate()
    probe = probe_key()
    data = os.urandom(1024)
    add = findings.append

    try:
        put = await client.put_object(Bucket=bucket, Key=probe, Body=data, **sse_params(key))
    except Exception as exc:
        answer = _answer(exc)
        blocked = answer.startswith("403")
        add(Finding(
            "sse_c_writes", "blocked" if blocked else "failed",
            f"an SSE-C PutObject was refused ({answer})"
            + ("; the bucket may block SSE-C (AWS BlockedEncryptionTypes)" if blocked else ""),
            False,
        ))  # fmt: skip
        return findings
    try:
        add(Finding("sse_c_writes", "accepted", "SSE-C PutObject works", True))
        etag = (put.get("ETag") or "").strip('"')
        is_md5 = etag == hashlib.md5(data).hexdigest()  # noqa: S324 - comparing with the server
        add(Finding(
            "etag", "md5-of-plaintext" if is_md5 else "opaque",
            "single-part ETag is the MD5 of the plaintext" if is_md5
            else "the ETag is not the MD5 of the data (as on AWS); do not use it as a checksum",
        ))  # fmt: skip

        for check, params, label in (
            ("wrong_key", sse_params(other), "a GET with another key"),
            ("missing_key", {}, "a GET without a key"),
        ):
            try:
                await _read(client, bucket, probe, params)
            except Exception as exc:
                answer = _answer(exc)
                add(Finding(check, answer, f"{label} is refused with {answer}", True))
            else:
                add(Finding(check, "served", f"{label} returned data", False))

        add(await _probe_part_keys(client, bucket, key, other))
        add(await _probe_copy(client, bucket, probe, key, other))
        add(await _probe_part_copy(client, bucket, probe, key))
        add(await _probe_checksums(client, bucket, key))
        if streamed_client is not None:
            add(await _probe_streamed_checksums(streamed_client, bucket, key))
        add(await _probe_conditional_write(client, bucket, probe, key))
        add(await _probe_conditional_complete(client, bucket, probe, key))
    finally:
        await delete_quietly(client, bucket, probe)
    return findings


async def _probe_part_keys(
    client: Any, bucket: str, key: SSECustomerKey, other: SSECustomerKey
) -> Finding:
    name = probe_key()
    upload = await client.create_multipart_upload(Bucket=bucket, Key=name, **sse_params(key))
    upload_id = upload["UploadId"]
    try:
        await client.upload_part(
            Bucket=bucket, Key=name, UploadId=upload_id, PartNumber=1, Body=b"x" * 1024,
            **sse_params(other),
        )  # fmt: skip
    except Exception as exc:
        return Finding(
            "part_keys", "checked", f"a part under another key is refused ({_answer(exc)})", True
        )
    finally:
        with contextlib.suppress(Exception):
            await client.abort_multipart_upload(Bucket=bucket, Key=name, UploadId=upload_id)
    return Finding(
        "part_keys", "not-checked",
        "a part under another key was accepted: such an object would read back as garbage "
        "(ssec-transfer pins one key per object itself)",
        False,
    )  # fmt: skip


async def _probe_copy(
    client: Any, bucket: str, source: str, key: SSECustomerKey, other: SSECustomerKey
) -> Finding:
    target = probe_key()
    try:
        await client.copy_object(
            Bucket=bucket, Key=target, CopySource={"Bucket": bucket, "Key": source},
            **sse_params(other), **copy_source_sse_params(key),
        )  # fmt: skip
    except Exception as exc:
        return Finding(
            "copy_object", _answer(exc),
            f"CopyObject from an SSE-C source is refused ({_answer(exc)}); key rotation must "
            "stream the data through the client",
            False,
        )  # fmt: skip
    finally:
        await delete_quietly(client, bucket, target)
    return Finding("copy_object", "supported", "CopyObject re-encrypts under a new key", True)


async def _probe_part_copy(client: Any, bucket: str, source: str, key: SSECustomerKey) -> Finding:
    target = probe_key()
    upload = await client.create_multipart_upload(Bucket=bucket, Key=target, **sse_params(key))
    upload_id = upload["UploadId"]
    try:
        await client.upload_part_copy(
            Bucket=bucket, Key=target, UploadId=upload_id, PartNumber=1,
            CopySource={"Bucket": bucket, "Key": source},
            **sse_params(key), **copy_source_sse_params(key),
        )  # fmt: skip
    except Exception as exc:
        return Finding(
            "upload_part_copy", _answer(exc),
            f"UploadPartCopy from an SSE-C source is refused ({_answer(exc)})",
            False,
        )  # fmt: skip
    finally:
        with contextlib.suppress(Exception):
            await client.abort_multipart_upload(Bucket=bucket, Key=target, UploadId=upload_id)
    return Finding(
        "upload_part_copy", "supported", "UploadPartCopy from an SSE-C source works", True
    )


async def _probe_checksums(client: Any, bucket: str, key: SSECustomerKey) -> Finding:
    algorithm = ALGORITHMS["crc32c"]
    if await server_verifies_checksum(client, bucket, algorithm, key):
        return Finding(
            "flexible_checksums", "verified",
            "a part with a wrong CRC32C header is refused: checksums are verified", True,
        )  # fmt: skip
    return Finding(
        "flexible_checksums", "ignored",
        "checksum headers are accepted but not verified; integrity in transit rests on TLS",
        False,
    )  # fmt: skip


async def _probe_streamed_checksums(client: Any, bucket: str, key: SSECustomerKey) -> Finding:
    name = probe_key()
    try:
        await client.put_object(Bucket=bucket, Key=name, Body=b"x" * 1024, **sse_params(key))
    except Exception as exc:
        return Finding(
            "streamed_checksums", _answer(exc),
            f"botocore's default streamed (aws-chunked) checksums are refused ({_answer(exc)}); "
            "tools using defaults fail here",
            False,
        )  # fmt: skip
    finally:
        await delete_quietly(client, bucket, name)
    return Finding(
        "streamed_checksums", "accepted", "botocore's default streamed checksums work", True
    )


async def _probe_conditional_write(
    client: Any, bucket: str, existing: str, key: SSECustomerKey
) -> Finding:
    try:
        await client.put_object(
            Bucket=bucket, Key=existing, Body=b"x", IfNoneMatch="*", **sse_params(key)
        )
    except Exception as exc:
        if status_of(exc) == 412:
            return Finding(
                "conditional_writes", "supported",
                "PutObject with If-None-Match: * refuses to overwrite", True,
            )  # fmt: skip
        return Finding("conditional_writes", _answer(exc), "If-None-Match gave an error", False)
    return Finding(
        "conditional_writes", "ignored",
        "If-None-Match: * was ignored and overwrote: --no-clobber rests on its HEAD alone "
        "(racy)",
        False,
    )  # fmt: skip


async def _probe_conditional_complete(
    client: Any, bucket: str, existing: str, key: SSECustomerKey
) -> Finding:
    """CompleteMultipartUpload onto an existing object with If-None-Match: *, which servers
    honour separately from PutObject's: `put --no-clobber` of a large file relies on it."""
    upload = await client.create_multipart_upload(Bucket=bucket, Key=existing, **sse_params(key))
    upload_id = upload["UploadId"]
    try:
        part = await client.upload_part(
            Bucket=bucket, Key=existing, UploadId=upload_id, PartNumber=1, Body=b"x",
            **sse_params(key),
        )  # fmt: skip
        await client.complete_multipart_upload(
            Bucket=bucket, Key=existing, UploadId=upload_id, IfNoneMatch="*",
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
            **sse_params(key),
        )  # fmt: skip
    except Exception as exc:
        if status_of(exc) == 412:
            return Finding(
                "conditional_complete", "supported",
                "CompleteMultipartUpload with If-None-Match: * refuses to overwrite", True,
            )  # fmt: skip
        return Finding(
            "conditional_complete", _answer(exc),
            "CompleteMultipartUpload with If-None-Match gave an error", False,
        )  # fmt: skip
    finally:
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await client.abort_multipart_upload(Bucket=bucket, Key=existing, UploadId=upload_id)
    return Finding(
        "conditional_complete", "ignored",
        "If-None-Match: * on CompleteMultipartUpload was ignored and overwrote: "
        "--no-clobber of multipart uploads rests on its HEAD alone (racy)",
        False,
    )  # fmt: skip
