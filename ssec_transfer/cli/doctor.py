"""`ssec-transfer doctor`: what this endpoint really does with SSE-C, as a table or JSON.

Users paste the output into bug reports; the engine reads the cached findings (per endpoint)
to skip probes it would otherwise repeat.
"""

from __future__ import annotations

import os
import socket
import ssl
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import urlsplit

import anyio

from ssec_transfer.core.errors import ErrorContext
from ssec_transfer.s3.capabilities import Finding, probe_endpoint, save_cache
from ssec_transfer.s3.client import ConnectionSettings, open_client
from ssec_transfer.s3.errors import translate


def _tls_finding(endpoint_url: str, ca_bundle: str | None) -> Finding:
    parts = urlsplit(endpoint_url)
    if parts.scheme != "https":
        return Finding(
            "tls", "plain-http",
            "the endpoint is plain HTTP: SSE-C is refused there (a key sent in clear is burnt); "
            "SSE-C checks skipped",
            False,
        )  # fmt: skip
    host, port = parts.hostname or "", parts.port or 443
    context = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else (
        ssl.create_default_context())  # fmt: skip
    try:
        with (
            socket.create_connection((host, port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            cert = tls.getpeercert() or {}
            version = tls.version()
    except ssl.SSLCertVerificationError as exc:
        return Finding(
            "tls", "untrusted",
            f"certificate not trusted ({exc.verify_message}); pass --ca-bundle for a private CA",
            False,
        )  # fmt: skip
    except OSError as exc:
        return Finding("tls", "unreachable", f"cannot connect to {host}:{port} ({exc})", False)
    expires = cert.get("notAfter", "?")
    return Finding("tls", "verified", f"{version}, certificate valid until {expires}", True)


async def run_doctor(settings: ConnectionSettings, bucket: str | None) -> tuple[str, list[Finding]]:
    async with AsyncExitStack() as stack:
        client = await open_client(stack, settings, pool_size=4)
        endpoint = str(client.meta.endpoint_url)
        ca = settings.ca_bundle or os.environ.get("AWS_CA_BUNDLE")
        findings = [await anyio.to_thread.run_sync(_tls_finding, endpoint, ca)]
        if findings[0].value in ("untrusted", "unreachable"):
            return endpoint, findings
        try:
            if bucket:
                await client.head_bucket(Bucket=bucket)
            else:
                await client.list_buckets()
        except Exception as exc:
            error = translate(exc, ErrorContext("credentials check", bucket), key_sent=False)
            findings.append(Finding("credentials", "refused", error.message, False))
            return endpoint, findings
        findings.append(Finding("credentials", "accepted", "the credentials are accepted", True))
        if findings[0].value == "plain-http":
            return endpoint, findings
        if not bucket:
            findings.append(Finding(
                "sse_c", "not-probed", "give --bucket B to probe SSE-C behaviour", None
            ))  # fmt: skip
            return endpoint, findings
        streamed = await open_client(stack, settings, pool_size=2, botocore_checksums=True)
        findings += await probe_endpoint(client, bucket, streamed_client=streamed)
    save_cache(endpoint, findings)
    return endpoint, findings


def render_table(endpoint: str, findings: list[Finding]) -> str:
    mark = {True: "ok", False: "!!", None: "--"}
    width = max(len(f.check) for f in findings)
    value_width = max(len(f.value) for f in findings)
    lines = [f"ssec-transfer doctor: {endpoint}", ""]
    lines += [
        f"  {mark[f.ok]}  {f.check:<{width}}  {f.value:<{value_width}}  {f.detail}"
        for f in findings
    ]
    return "\n".join(lines)


def as_json(endpoint: str, findings: list[Finding]) -> dict[str, Any]:
    return {"endpoint": endpoint, "findings": [f.to_dict() for f in findings]}
