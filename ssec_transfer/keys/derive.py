"""Per-object keys derived from a master key in the keyring.

One master key then gives every object its own key: a key leaked from one object (e.g. sent to
a compromised server) opens nothing else, and rotating one object needs no new master. The
salt is not secret but it is *required*: it lives only in the ledger (a `derive` row, written
before the upload), so losing the ledger's salts loses the objects as surely as losing the
master key. Back the ledger up (or `ledger export` it) alongside the keyring.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from ssec_transfer.keys.customer import KEY_BYTES, SSECustomerKey
from ssec_transfer.keys.keyring import KeyringUsageError

if TYPE_CHECKING:
    from ssec_transfer.state.ledger import Ledger

DERIVE_INFO = b"ssec-transfer/v1\0"
MIN_DERIVE_SALT = 16


def new_salt() -> bytes:
    return secrets.token_bytes(MIN_DERIVE_SALT)


def derive_key(master: SSECustomerKey, bucket: str, object_key: str, salt: bytes) -> SSECustomerKey:
    """A per-object key: HKDF-SHA256 over the master key, salted with `salt`, bound to the
    bucket and object name (info = b"ssec-transfer/v1\\0" + bucket + b"\\0" + key).

    Renaming or copying an object keeps its data under the key derived for the old name; the
    copy records its own key.
    """
    if len(salt) < MIN_DERIVE_SALT:
        raise KeyringUsageError(f"a derivation salt needs at least {MIN_DERIVE_SALT} bytes")
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    info = DERIVE_INFO + bucket.encode() + b"\0" + object_key.encode()
    raw = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=info).derive(
        master._raw
    )
    return SSECustomerKey(raw, source=f"derived from {master.fingerprint}")


def prepare_derived_key(
    ledger: Ledger, endpoint: str, bucket: str, object_key: str, master: SSECustomerKey
) -> SSECustomerKey:
    """A fresh derived key for an upload, its salt recorded in the ledger first. Blocking."""
    salt = new_salt()
    key = derive_key(master, bucket, object_key, salt)
    ledger.record_derivation(
        endpoint, bucket, object_key, salt=salt, master_fingerprint=master.fingerprint,
        key_fingerprint=key.fingerprint,
    )  # fmt: skip
    return key
