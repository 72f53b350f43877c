"""The boto3 peer: s3transfer's TransferManager with its default TransferConfig.

Run by the Python of the boto3 virtual environment the harness installs, never imported by
ssec-transfer itself (boto3's botocore pin clashes with aiobotocore's), so it uses only the
standard library and boto3. The key is read from a file: key material never goes into argv.

    python boto3_peer.py put-file|get-file|put-tree|get-tree ARGS --key-file K --endpoint-url URL
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Any


def _transfer_manager(endpoint_url: str, region: str | None) -> tuple[Any, Any]:
    # Imported by name: boto3 lives only in the peer's own environment, not in ssec-transfer's.
    boto3 = importlib.import_module("boto3")
    transfer = importlib.import_module("boto3.s3.transfer")
    client = boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region)
    manager = transfer.create_transfer_manager(client, transfer.TransferConfig())
    return client, manager


def _extra_args(key_file: Path) -> dict[str, Any]:
    # botocore base64-encodes the raw key and adds its MD5 itself.
    return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key_file.read_bytes()}


def _list(client: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="boto3_peer")
    p.add_argument("command", choices=("put-file", "get-file", "put-tree", "get-tree"))
    p.add_argument("local", type=Path, help="file or folder")
    p.add_argument("bucket")
    p.add_argument("key", help="object key, or key prefix for the tree commands")
    p.add_argument("--key-file", type=Path, required=True)
    p.add_argument("--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL"))
    p.add_argument("--region", default=None)
    args = p.parse_args(argv)

    extra = _extra_args(args.key_file)
    client, manager = _transfer_manager(args.endpoint_url, args.region)
    with manager:
        futures = []
        if args.command == "put-file":
            futures.append(manager.upload(str(args.local), args.bucket, args.key, extra_args=extra))
        elif args.command == "get-file":
            futures.append(
                manager.download(args.bucket, args.key, str(args.local), extra_args=extra)
            )
        elif args.command == "put-tree":
            root: Path = args.local
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                name = f"{args.key}/{path.relative_to(root).as_posix()}"
                futures.append(manager.upload(str(path), args.bucket, name, extra_args=extra))
        else:
            prefix = args.key.rstrip("/") + "/"
            for name in _list(client, args.bucket, prefix):
                dest = args.local / name[len(prefix) :]
                dest.parent.mkdir(parents=True, exist_ok=True)
                futures.append(manager.download(args.bucket, name, str(dest), extra_args=extra))
        for future in futures:
            future.result()
    return 0


if __name__ == "__main__":
    sys.exit(main())
