"""Sharing without S3 credentials: POST grants, the browser upload page and presigned URLs,
each pinned to one SSE-C key by its MD5 fingerprint."""
