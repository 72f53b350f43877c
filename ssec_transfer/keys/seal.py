"""What an upload knew about its source, sealed into the object's user metadata.

`sync` must tell, from one HEAD and without this machine's ledger, whether an object holds
the bytes of a local file. Under SSE-C the ETag is no MD5 of the content, and a listing's
LastModified is the upload's time, not the file's. So every upload by this tool stores the
source's size, modification time and (when the bytes were read before the request started:
a single PutObject) their CRC32C in `x-amz-meta-ssec-transfer`, sealed with AES-GCM.

The sealing key is derived from the object's SSE-C key with HKDF-SHA256, so whoever holds
the key can read and trust the facts, and no one else can read or forge them: S3 servers
store user metadata in clear, and anyone with write access could set it. The object's bucket
and name are the associated data, so a seal copied onto another object does not open there;
copies and rotations re-seal for their target (`reseal`).

What the stored value reveals without the key: that this tool wrote the object, and the
length of the sealed text (which varies only with the number of digits of the facts).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from ssec_transfer.keys.customer import SSECustomerKey

# The user-metadata name (sent as x-amz-meta-ssec-transfer; servers return it lower-case).
METADATA_NAME = "ssec-transfer"
_VERSION = "1"
_INFO = b"ssec-transfer/sealed-source-facts/v1"
_NONCE_BYTES = 12
# What a seal takes of the 2 KB that user metadata may hold (name and value), with room to spare.
SEAL_BUDGET = 160


@dataclass(frozen=True)
class SourceFacts:
    """What an upload knew when it started. None: not known (a stream's size, a multipart
    upload's CRC32C, which would need the file read twice)."""

    size: int | None
    mtime_ns: int | None
    crc32c: int | None = None

    def to_json(self) -> bytes:
        facts = {"size": self.size, "mtime_ns": self.mtime_ns, "crc32c": self.crc32c}
        return json.dumps({k: v for k, v in facts.items() if v is not None}).encode()

    def to_dict(self) -> dict[str, Any]:
        """For reports: the mtime as ISO 8601 text, the CRC32C as `crc32c:BASE64`."""
        from ssec_transfer.core.crc import digest_text

        mtime = None
        if self.mtime_ns is not None:
            when = datetime.fromtimestamp(self.mtime_ns / 1e9, UTC)
            mtime = when.isoformat(timespec="microseconds")
        checksum = digest_text(self.crc32c) if self.crc32c is not None else None
        return {"size": self.size, "mtime": mtime, "checksum": checksum}

    @classmethod
    def from_json(cls, text: bytes) -> SourceFacts:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("sealed facts are not an object")
        values = [data.get(name) for name in ("size", "mtime_ns", "crc32c")]
        if any(v is not None and (not isinstance(v, int) or isinstance(v, bool)) for v in values):
            raise ValueError("sealed facts hold a non-integer")
        return cls(*values)


_aeads: weakref.WeakKeyDictionary[SSECustomerKey, AESGCM] = weakref.WeakKeyDictionary()


def _aead(key: SSECustomerKey) -> AESGCM:
    """The AES-GCM key derived from `key` (derived once per key and kept while it lives)."""
    aead = _aeads.get(key)
    if aead is None:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(key._raw)
        aead = _aeads[key] = AESGCM(derived)
    return aead


def _associated(bucket: str, object_key: str) -> bytes:
    return bucket.encode() + b"\0" + object_key.encode("utf-8", "surrogateescape")


def seal(facts: SourceFacts, key: SSECustomerKey, bucket: str, object_key: str) -> str:
    """The metadata value: `1:` and the base64 of a random nonce and the AES-GCM ciphertext."""
    nonce = os.urandom(_NONCE_BYTES)
    sealed = _aead(key).encrypt(nonce, facts.to_json(), _associated(bucket, object_key))
    return f"{_VERSION}:" + base64.b64encode(nonce + sealed).decode("ascii")


def unseal(value: str, key: SSECustomerKey, bucket: str, object_key: str) -> SourceFacts | None:
    """The facts sealed in `value` for this object under `key`; None when they do not open
    (another key, another object, altered, or not ours): such facts cannot be trusted."""
    from cryptography.exceptions import InvalidTag

    version, _, text = value.partition(":")
    if version != _VERSION:
        return None
    try:
        blob = base64.b64decode(text, validate=True)
        if len(blob) <= _NONCE_BYTES:
            return None
        plain = _aead(key).decrypt(
            blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], _associated(bucket, object_key)
        )
        return SourceFacts.from_json(plain)
    except (binascii.Error, InvalidTag, ValueError):
        return None


def sealed_metadata(
    facts: SourceFacts, key: SSECustomerKey | None, bucket: str, object_key: str
) -> dict[str, str]:
    """The `Metadata` entry an upload sends: the seal, or nothing for a plain object."""
    if key is None:
        return {}
    return {METADATA_NAME: seal(facts, key, bucket, object_key)}


def facts_in(
    metadata: dict[str, Any] | None, key: SSECustomerKey | None, bucket: str, object_key: str
) -> SourceFacts | None:
    """The trusted facts of an object from its HEAD's `Metadata`, if it carries a seal that
    opens under `key` for this name."""
    value = (metadata or {}).get(METADATA_NAME)
    if key is None or not isinstance(value, str):
        return None
    return unseal(value, key, bucket, object_key)


def reseal(
    metadata: dict[str, str],
    source: tuple[SSECustomerKey | None, str, str],
    target: tuple[SSECustomerKey | None, str, str],
) -> dict[str, str]:
    """A copy's metadata: the source's seal opened and sealed again for the target's key and
    name. A seal that does not open is dropped rather than carried as something untrustworthy."""
    if METADATA_NAME not in metadata:
        return metadata
    rest = {k: v for k, v in metadata.items() if k != METADATA_NAME}
    facts = facts_in(metadata, *source)
    if facts is None:
        return rest
    return {**rest, **sealed_metadata(facts, *target)}
