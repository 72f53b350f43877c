"""The one place the SSE-C request parameters are built from a customer key.

Every request that carries a key gets it from here: the three headers on the object itself
(PUT, GET, HEAD, parts, create and complete) and the three `CopySource` headers naming the key
of a copy's source. `key_sent` tells the error translation whether a 400/403 can be the key's.
"""

from __future__ import annotations

from ssec_transfer.keys.customer import ALGORITHM, SSECustomerKey


def sse_params(key: SSECustomerKey | None) -> dict[str, str]:
    """botocore parameters for requests on the object itself; none without a key."""
    if key is None:
        return {}
    return {
        "SSECustomerAlgorithm": ALGORITHM,
        "SSECustomerKey": key.export_base64(),
        "SSECustomerKeyMD5": key.fingerprint,
    }


def copy_source_sse_params(key: SSECustomerKey | None) -> dict[str, str]:
    """botocore parameters naming `key` as the *source* key of a copy; none without a key."""
    if key is None:
        return {}
    return {
        "CopySourceSSECustomerAlgorithm": ALGORITHM,
        "CopySourceSSECustomerKey": key.export_base64(),
        "CopySourceSSECustomerKeyMD5": key.fingerprint,
    }
