"""When the ledger proves that an object found under the new key was rotated and verified,
so a re-run need not read it back."""

from __future__ import annotations

from ssec_transfer.core.results import ObjectInfo
from ssec_transfer.state.ledger import LedgerEntry
from ssec_transfer.transfer.copy import ledger_proves_rotation

NEW = "bmV3LWZpbmdlcnByaW50PT0="


def _info(etag: str = '"abc"', size: int = 10, version: str | None = None) -> ObjectInfo:
    return ObjectInfo("b", "k", size, etag, version, None, None, "AES256", NEW)


def _row(etag: str | None = "abc", size: int = 10, fingerprint: str | None = NEW,
         version: str | None = None) -> LedgerEntry:  # fmt: skip
    return LedgerEntry(0.0, "rotate", "https://s3", "b", "k", version, etag, size, None,
                       fingerprint, None, None)  # fmt: skip


def test_the_same_object_under_the_new_key_is_proven() -> None:
    assert ledger_proves_rotation(_row(), _info(), NEW)  # ETag quotes do not matter
    assert ledger_proves_rotation(_row(version="v2"), _info(version="v2"), NEW)


def test_anything_else_is_read_back() -> None:
    assert not ledger_proves_rotation(None, _info(), NEW)
    assert not ledger_proves_rotation(_row(fingerprint="b2xk"), _info(), NEW)
    assert not ledger_proves_rotation(_row(etag="other"), _info(), NEW)
    assert not ledger_proves_rotation(_row(etag=None), _info(etag=None), NEW)
    assert not ledger_proves_rotation(_row(size=11), _info(), NEW)
    assert not ledger_proves_rotation(_row(version="v1"), _info(version="v2"), NEW)
