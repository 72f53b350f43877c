"""Parse `s3://BUCKET/KEY` the way the AWS CLI does, and explain what else people paste."""

from __future__ import annotations

from dataclasses import dataclass

from ssec_transfer.core.errors import UsageError


@dataclass(frozen=True)
class S3Url:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def folder_prefix(prefix: str) -> str:
    """A prefix taken as a folder, as every recursive command and a grant take it: `a/b`
    means `a/b/`, so `s3://b/data` never takes `data-old/` with it; empty: the whole bucket."""
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def parse_s3_url(text: str) -> S3Url:
    if text.startswith(("http://", "https://")):
        hint = "write objects as s3://BUCKET/KEY and give the server with --endpoint-url"
        if "X-Amz-Signature" in text or "Signature=" in text:
            hint = (
                "for a presigned URL (`ssec-transfer presign`), pass it with --url: "
                "`get --url URL DEST --key-file KEY` or `put FILE --url URL --key-file KEY`; "
                "otherwise write s3://BUCKET/KEY and give the server with --endpoint-url"
            )
        raise UsageError(f"{text.split('?', 1)[0]} is an HTTP URL, not an s3:// URL", hint=hint)
    if not text.startswith("s3://"):
        raise UsageError(f"{text!r} is not an s3:// URL", hint="write s3://BUCKET/KEY")
    bucket, _, key = text[len("s3://") :].partition("/")
    if not bucket:
        raise UsageError(f"{text!r} names no bucket", hint="write s3://BUCKET/KEY")
    if any(c.isspace() for c in bucket) or len(bucket) > 255:
        raise UsageError(f"{bucket!r} is not a valid bucket name")
    return S3Url(bucket, key)
