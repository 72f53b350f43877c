"""Fixtures for the sharing tests: a headless chromium (installed by apt when missing) and
buckets with or without the upload page's CORS rule."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AsyncExitStack
from typing import Any

import anyio
import pytest

from ssec_transfer.servers.base import ServerInfo
from ssec_transfer.share.cors import CorsChange, allow_upload_page
from tests.support.browser import start_chromium


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless chromium for the session; a missing browser that apt cannot install
    fails here with the reason (`tests.support.browser`), it is never skipped."""
    driver = start_chromium()
    try:
        yield driver
    finally:
        driver.quit()


def add_upload_page_rule(server: ServerInfo, bucket: str) -> CorsChange:
    """What `grant --cors` does, through the tool's own S3 client."""
    from ssec_transfer.s3.client import ConnectionSettings, open_client

    async def run() -> CorsChange:
        async with AsyncExitStack() as stack:
            settings = ConnectionSettings(
                endpoint_url=server.endpoint_url, ca_bundle=str(server.ca_bundle)
            )
            client = await open_client(stack, settings, pool_size=1)
            return await allow_upload_page(client, bucket)

    return anyio.run(run)


@pytest.fixture
def page_bucket(s3_server: ServerInfo, bucket: str, s3_env: dict[str, str]) -> str:
    """A bucket whose CORS rule lets a page opened from a file read the POST answers."""
    assert add_upload_page_rule(s3_server, bucket).added
    return bucket
