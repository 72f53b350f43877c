"""The HTTPS session of requests made without S3 credentials (`post`, `get/put --url`).

No botocore client signs them, so aiohttp is used directly, verifying TLS as the S3 client
does: --ca-bundle, else AWS_CA_BUNDLE, else botocore's bundle.
"""

from __future__ import annotations

import os
import ssl

import aiohttp

from ssec_transfer.core.errors import UsageError


def ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Verified TLS with the CAs the S3 client would trust; a bundle that does not load is a
    usage error naming it."""
    from botocore.httpsession import get_cert_path

    cafile = ca_bundle or os.environ.get("AWS_CA_BUNDLE") or get_cert_path(True)
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(
            f"cannot load the CA bundle {cafile}: {exc}",
            hint="give a PEM file of CA certificates with --ca-bundle",
        ) from None


def open_session(
    ca_bundle: str | None, *, connect_timeout: float, read_timeout: float, connections: int = 100
) -> aiohttp.ClientSession:
    """One session for a run: bodies are read as sent (no decompression), a silent server
    times out after `read_timeout`."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=ssl_context(ca_bundle), limit=connections),
        timeout=aiohttp.ClientTimeout(sock_connect=connect_timeout, sock_read=read_timeout),
        auto_decompress=False,
    )
