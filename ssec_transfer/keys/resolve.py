"""Finding the keyring key that opens an object: the ledger's record first, then HEAD with
candidate keys.

Resolution needs to ask the server, but keys/ sits below the engine: it is written against
`KeyProbe`, a small Protocol that `TransferEngine` satisfies structurally, so nothing here
imports the engine (and tests can probe with a fake).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Protocol

import anyio

from ssec_transfer.core.errors import ErrorContext, WrongKeyError
from ssec_transfer.keys.derive import derive_key
from ssec_transfer.keys.keyring import Keyring, KeyringError

if TYPE_CHECKING:
    from ssec_transfer.keys.customer import SSECustomerKey
    from ssec_transfer.state.ledger import Ledger


class ObjectHead(Protocol):
    """What resolution reads from a HEAD answer (`core.results.ObjectInfo` has it)."""

    @property
    def version_id(self) -> str | None: ...

    @property
    def etag(self) -> str | None: ...

    @property
    def size(self) -> int: ...


class KeyProbe(Protocol):
    """Where to look up and try keys: a ledger (or none), the endpoint it is keyed by, and a
    HEAD that raises WrongKeyError when the key does not open the object."""

    @property
    def ledger(self) -> Ledger | None: ...

    @property
    def endpoint_url(self) -> str: ...

    async def head(
        self, bucket: str, key: str, *, sse_key: SSECustomerKey, version_id: str | None
    ) -> ObjectHead: ...


async def resolve_key(
    probe: KeyProbe,
    bucket: str,
    key: str,
    version_id: str | None,
    keyring: Keyring,
    *,
    max_tries: int = 8,
) -> SSECustomerKey:
    """The keyring key that opens s3://bucket/key (this version, when given).

    First the ledger: the fingerprint it recorded for the object, looked up in the keyring
    (or re-derived from a master key and the recorded salt). Otherwise up to `max_tries`
    keyring keys are tried with HEAD (keys seen recently in this bucket first), and the one
    the server accepts is recorded in the ledger as a `key-match`, so the next lookup is free.
    A plain object raises UnexpectedKeyError; a missing object NotFoundError.
    """
    ledger, endpoint = probe.ledger, probe.endpoint_url
    known: str | None = None
    recent: list[str] = []
    if ledger is not None:
        known = await anyio.to_thread.run_sync(
            ledger.find_fingerprint, endpoint, bucket, key, version_id
        )
        if known is not None:
            found = keyring.by_fingerprint(known) or await _rederive(
                ledger, endpoint, bucket, key, known, keyring
            )
            if found is not None:
                return found
        recent = await anyio.to_thread.run_sync(ledger.recent_fingerprints, endpoint, bucket)
    candidates = keyring.keys()
    rank = {fp: i for i, fp in enumerate(recent)}
    candidates.sort(key=lambda k: rank.get(k.fingerprint, len(rank)))  # stable: newest next
    tried = 0
    for candidate in candidates[:max_tries]:
        tried += 1
        try:
            info = await probe.head(bucket, key, sse_key=candidate, version_id=version_id)
        except WrongKeyError:
            continue
        if ledger is not None:
            match = partial(
                ledger.record_key_match, endpoint, bucket, key,
                version_id=info.version_id or version_id, etag=info.etag, size=info.size,
                key_fingerprint=candidate.fingerprint,
            )  # fmt: skip
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(match)
        return candidate
    raise _none_fits(bucket, key, keyring, len(candidates), tried, known)


def _none_fits(
    bucket: str, key: str, keyring: Keyring, held: int, tried: int, known: str | None
) -> KeyringError:
    where = f"{held} in the keyring {keyring.path}"
    hint = "add the key with `ssec-transfer keyring add NAME --key-file FILE`"
    if held > tried:
        hint += f", or try more keys (tried {tried})"
    if known is not None:
        hint = (
            f"the ledger says key {known} protects it, and that key is not in the keyring; " + hint
        )
    return KeyringError(
        f"none of the keys tried ({tried} of {where}) opens this object",
        hint=hint,
        context=ErrorContext("resolve key", bucket, key),
    )


async def _rederive(
    ledger: Ledger, endpoint: str, bucket: str, key: str, fingerprint: str, keyring: Keyring
) -> SSECustomerKey | None:
    """The derived key with `fingerprint`, when the ledger has its salt and the keyring its
    master."""
    found = await anyio.to_thread.run_sync(
        ledger.find_derivation, endpoint, bucket, key, fingerprint
    )
    if found is None:
        return None
    salt, master_fingerprint = found
    master = keyring.by_fingerprint(master_fingerprint)
    if master is None:
        return None
    derived = derive_key(master, bucket, key, salt)
    return derived if derived.fingerprint == fingerprint else None
