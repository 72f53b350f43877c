"""Key resolution against a fake server that implements `KeyProbe`: the ledger's record first
(with no request), then HEAD with candidate keys in a sensible order, within a bound."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest

from ssec_transfer.core.errors import NoSuchObjectError, WrongKeyError
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.keys.derive import prepare_derived_key
from ssec_transfer.keys.keyring import Keyring, KeyringError
from ssec_transfer.keys.resolve import KeyProbe, resolve_key
from ssec_transfer.state.ledger import Ledger

FAST = 2**14  # the cheapest scrypt cost a keyring accepts
ENDPOINT = "https://s3.example"


@dataclass(frozen=True)
class Head:
    version_id: str | None
    etag: str | None
    size: int


@dataclass
class FakeServer:
    """Objects by (key, version id) -> the fingerprint of the key that opens them."""

    ledger: Ledger | None
    objects: dict[tuple[str, str | None], str]
    endpoint_url: str = ENDPOINT
    heads: list[tuple[str, str | None, str]] = field(default_factory=list)

    async def head(
        self, bucket: str, key: str, *, sse_key: SSECustomerKey, version_id: str | None
    ) -> Head:
        self.heads.append((key, version_id, sse_key.fingerprint))
        wanted = self.objects.get((key, version_id))
        if wanted is None:
            raise NoSuchObjectError(f"no object {key}")
        if wanted != sse_key.fingerprint:
            raise WrongKeyError("the key does not open this object")
        return Head(version_id or "v-latest", '"etag"', 10)


@pytest.fixture
def ring(tmp_path: Path) -> Keyring:
    return Keyring.create(tmp_path / "keyring.json", "a passphrase for tests", n=FAST)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.sqlite")


def resolve(
    probe: KeyProbe, key: str, ring: Keyring, *, version_id: str | None = None, max_tries: int = 8
) -> SSECustomerKey:
    return anyio.run(lambda: resolve_key(probe, "b", key, version_id, ring, max_tries=max_tries))


def test_without_a_ledger_the_key_the_server_accepts_is_found(ring: Keyring) -> None:
    keys = [ring.generate(f"k{i}") for i in range(4)]
    server = FakeServer(None, {("obj", None): keys[2].fingerprint})
    assert resolve(server, "obj", ring) == keys[2]
    assert server.heads[-1] == ("obj", None, keys[2].fingerprint)
    assert len(server.heads) <= 4


def test_a_recorded_fingerprint_needs_no_request(ring: Keyring, ledger: Ledger) -> None:
    keys = [ring.generate(f"k{i}") for i in range(3)]
    ledger.record_key_match(
        ENDPOINT, "b", "obj", version_id=None, etag=None, size=1,
        key_fingerprint=keys[1].fingerprint,
    )  # fmt: skip
    server = FakeServer(ledger, {("obj", None): keys[1].fingerprint})
    assert resolve(server, "obj", ring) == keys[1]
    assert server.heads == []


def test_recent_keys_go_first_and_a_match_is_remembered(ring: Keyring, ledger: Ledger) -> None:
    keys = [ring.generate(f"k{i}") for i in range(4)]
    ledger.record_key_match(
        ENDPOINT, "b", "other", version_id=None, etag=None, size=1,
        key_fingerprint=keys[0].fingerprint,
    )  # fmt: skip
    server = FakeServer(ledger, {("obj", "v3"): keys[0].fingerprint})
    assert resolve(server, "obj", ring, version_id="v3") == keys[0]
    assert server.heads == [("obj", "v3", keys[0].fingerprint)]  # seen in the bucket: first
    (match, *_) = ledger.show(ENDPOINT, "b", "obj")
    assert (match.operation, match.version_id, match.key_fingerprint) == (
        "key-match",
        "v3",
        keys[0].fingerprint,
    )
    server.heads.clear()
    assert resolve(server, "obj", ring, version_id="v3") == keys[0]
    assert server.heads == []


def test_tries_are_bounded_and_the_error_says_so(ring: Keyring) -> None:
    for i in range(5):
        ring.generate(f"k{i}")
    stranger = SSECustomerKey.generate()
    server = FakeServer(None, {("obj", None): stranger.fingerprint})
    with pytest.raises(KeyringError, match="1 of 5") as caught:
        resolve(server, "obj", ring, max_tries=1)
    assert caught.value.exit_code == 3
    assert "tried 1" in str(caught.value.hint)
    assert len(server.heads) == 1
    with pytest.raises(KeyringError, match="none of the keys tried \\(5 of 5"):
        resolve(server, "obj", ring)


def test_a_recorded_key_missing_from_the_keyring_is_named(ring: Keyring, ledger: Ledger) -> None:
    ring.generate("only")
    gone = SSECustomerKey.generate()
    ledger.record_key_match(
        ENDPOINT, "b", "obj", version_id=None, etag=None, size=1,
        key_fingerprint=gone.fingerprint,
    )  # fmt: skip
    server = FakeServer(ledger, {("obj", None): gone.fingerprint})
    with pytest.raises(KeyringError) as caught:
        resolve(server, "obj", ring)
    assert f"the ledger says key {gone.fingerprint}" in str(caught.value.hint)


def test_a_derived_key_is_rederived_from_its_master(ring: Keyring, ledger: Ledger) -> None:
    master = ring.generate("master")
    derived = prepare_derived_key(ledger, ENDPOINT, "b", "obj", master)
    ledger.record_key_match(
        ENDPOINT, "b", "obj", version_id=None, etag=None, size=1,
        key_fingerprint=derived.fingerprint,
    )  # fmt: skip
    server = FakeServer(ledger, {("obj", None): derived.fingerprint})
    assert resolve(server, "obj", ring) == derived
    assert server.heads == []


def test_errors_other_than_a_wrong_key_stop_the_search(ring: Keyring) -> None:
    ring.generate("k")
    server = FakeServer(None, {})
    with pytest.raises(NoSuchObjectError):
        resolve(server, "missing", ring)
    assert len(server.heads) == 1
