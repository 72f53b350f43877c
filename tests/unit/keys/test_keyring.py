"""Keyring crypto and file handling, derived keys, ledger queries and the `keyring`/`ledger`
command handlers (run in-process through a parser built with `keyring_cli.add_commands`)."""

from __future__ import annotations

import argparse
import base64
import io
import json
import sqlite3
import stat
import time
from pathlib import Path

import anyio
import pytest

from ssec_transfer.cli import keyring as keyring_cli
from ssec_transfer.core.errors import SSECTransferError
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.keys.derive import derive_key, prepare_derived_key
from ssec_transfer.keys.keyring import (
    PASSPHRASE_ENV,
    Keyring,
    KeyringError,
    KeyringUsageError,
    WrongPassphraseError,
    read_passphrase,
)
from ssec_transfer.state.ledger import Ledger, LedgerEntry

PASSPHRASE = "correct horse battery staple"
FAST = 2**14  # the cheapest scrypt cost a keyring accepts: keeps the tests quick


@pytest.fixture
def ring_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "keyring.json"


@pytest.fixture
def ring(ring_path: Path) -> Keyring:
    return Keyring.create(ring_path, PASSPHRASE, n=FAST)


def key_forms(key: SSECustomerKey) -> list[bytes]:
    raw = key._raw
    b64 = base64.b64encode(raw)
    return [
        raw,
        b64,
        b64.rstrip(b"="),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
        raw.hex().encode(),
    ]


def entry(
    fingerprint: str | None,
    *,
    key: str = "obj",
    version_id: str | None = None,
    operation: str = "upload",
    at: float | None = None,
    bucket: str = "b",
) -> LedgerEntry:
    return LedgerEntry(
        time.time() if at is None else at, operation, "https://s3.example", bucket, key,
        version_id, '"etag"', 10, None, fingerprint, None, None,
    )  # fmt: skip


# -- keyring crypto ------------------------------------------------------------------------------


def test_round_trip_and_lookup(ring: Keyring, ring_path: Path) -> None:
    a, b = SSECustomerKey.generate(), SSECustomerKey.generate()
    ring.add("alpha", a)
    ring.add("beta", b)
    generated = ring.generate("gamma")
    again = Keyring.open(ring_path, PASSPHRASE)
    assert again.get("alpha") == a
    assert again.get("gamma") == generated
    assert again.by_fingerprint(b.fingerprint) == b
    assert again.by_fingerprint(SSECustomerKey.generate().fingerprint) is None
    assert [i.name for i in again.list()] == ["alpha", "beta", "gamma"]
    assert again.list()[0].fingerprint == a.fingerprint
    assert set(again.keys()) == {a, b, generated}


def test_file_is_private_and_holds_no_key_material(ring: Keyring, ring_path: Path) -> None:
    keys = [ring.generate(f"k{i}") for i in range(5)]
    ring.add("imported", SSECustomerKey.generate())
    keys.append(ring.get("imported"))
    assert stat.S_IMODE(ring_path.stat().st_mode) == 0o600
    data = ring_path.read_bytes()
    for key in keys:
        for form in key_forms(key):
            assert form not in data
        assert key.fingerprint.encode() in data  # fingerprints are public names
    assert PASSPHRASE.encode() not in data
    leftovers = [p.name for p in ring_path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_wrong_passphrase_fails_cleanly_even_when_empty(ring: Keyring, ring_path: Path) -> None:
    with pytest.raises(WrongPassphraseError) as caught:
        Keyring.open(ring_path, "not the passphrase")
    assert caught.value.exit_code == 3
    assert "wrong passphrase" in str(caught.value)
    ring.generate("one")
    before = ring_path.read_bytes()
    with pytest.raises(WrongPassphraseError):
        Keyring.open(ring_path, PASSPHRASE + " ")
    assert ring_path.read_bytes() == before


def test_create_refuses_existing_file_and_weak_settings(ring: Keyring, ring_path: Path) -> None:
    before = ring_path.read_bytes()
    with pytest.raises(KeyringUsageError, match="already exists"):
        Keyring.create(ring_path, PASSPHRASE, n=FAST)
    assert ring_path.read_bytes() == before
    with pytest.raises(KeyringUsageError, match="scrypt"):
        Keyring.create(ring_path.with_name("weak.json"), PASSPHRASE, n=2**10)
    with pytest.raises(KeyringUsageError, match="no keyring"):
        Keyring.open(ring_path.with_name("missing.json"), PASSPHRASE)


def test_add_never_replaces_a_name_or_stores_a_key_twice(ring: Keyring, ring_path: Path) -> None:
    key = ring.generate("prod")
    before = ring_path.read_bytes()
    with pytest.raises(KeyringUsageError, match="already holds a key named 'prod'"):
        ring.add("prod", SSECustomerKey.generate())
    with pytest.raises(KeyringUsageError, match="already in the keyring as 'prod'"):
        ring.add("copy", key)
    with pytest.raises(KeyringUsageError, match="not a valid key name"):
        ring.add("../x", SSECustomerKey.generate())
    assert ring_path.read_bytes() == before


def test_entries_cannot_be_swapped_or_dropped(ring: Keyring, ring_path: Path) -> None:
    ring.generate("a")
    ring.generate("b")
    doc = json.loads(ring_path.read_text())
    # Swap ciphertexts between entries: each is bound to its name and fingerprint.
    e0, e1 = doc["entries"]
    e0["nonce"], e1["nonce"] = e1["nonce"], e0["nonce"]
    e0["ciphertext"], e1["ciphertext"] = e1["ciphertext"], e0["ciphertext"]
    ring_path.write_text(json.dumps(doc))
    with pytest.raises(KeyringError, match="modified"):
        Keyring.open(ring_path, PASSPHRASE)
    # Drop an entry: the seal over the whole file no longer matches.
    doc = json.loads(ring_path.read_text())
    e0["nonce"], e1["nonce"] = e1["nonce"], e0["nonce"]
    e0["ciphertext"], e1["ciphertext"] = e1["ciphertext"], e0["ciphertext"]
    doc["entries"] = doc["entries"][:1]
    ring_path.write_text(json.dumps(doc))
    with pytest.raises(KeyringError, match="modified outside"):
        Keyring.open(ring_path, PASSPHRASE)
    ring_path.write_text("{not json")
    with pytest.raises(KeyringError, match="not a usable keyring"):
        Keyring.open(ring_path, PASSPHRASE)


def test_two_writers_keep_each_others_keys(ring: Keyring, ring_path: Path) -> None:
    first = Keyring.open(ring_path, PASSPHRASE)
    second = Keyring.open(ring_path, PASSPHRASE)
    first.generate("from-first")
    second.generate("from-second")  # opened before the first change: must not drop it
    assert [i.name for i in Keyring.open(ring_path, PASSPHRASE).list()] == [
        "from-first",
        "from-second",
    ]


def test_an_older_copy_is_never_written_back(ring: Keyring, ring_path: Path) -> None:
    old = ring_path.read_bytes()
    ring.generate("new")
    ring_path.write_bytes(old)  # e.g. a backup restored over it
    with pytest.raises(KeyringError, match="older"):
        ring.generate("another")
    assert ring_path.read_bytes() == old


def test_export_writes_a_new_private_file_and_never_overwrites(
    ring: Keyring, tmp_path: Path
) -> None:
    key = ring.generate("prod")
    out = tmp_path / "prod.key"
    ring.export("prod", out)
    assert out.read_bytes() == key._raw
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert SSECustomerKey.from_file(out) == key
    other = tmp_path / "other.key"
    other.write_bytes(b"precious")
    with pytest.raises(KeyringUsageError, match="refusing to overwrite"):
        ring.export("prod", other)
    assert other.read_bytes() == b"precious"
    with pytest.raises(KeyringUsageError, match="no key named"):
        ring.export("missing", tmp_path / "x.key")


def test_remove(ring: Keyring, ring_path: Path) -> None:
    ring.generate("a")
    ring.generate("b")
    ring.remove("a")
    assert [i.name for i in Keyring.open(ring_path, PASSPHRASE).list()] == ["b"]
    with pytest.raises(KeyringUsageError, match="no key named"):
        ring.remove("a")


def test_passphrase_comes_from_env_or_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(KeyringUsageError, match="no terminal") as caught:
        read_passphrase()
    assert caught.value.exit_code == 2
    monkeypatch.setenv(PASSPHRASE_ENV, "short")
    assert read_passphrase() == "short"
    with pytest.raises(KeyringUsageError, match="at least"):
        read_passphrase(new=True)


# -- derived keys ---------------------------------------------------------------------------------


def test_derive_key_is_deterministic_and_distinct_per_object() -> None:
    master = SSECustomerKey.generate()
    salt = b"s" * 16
    one = derive_key(master, "bucket", "a/b.nc", salt)
    assert derive_key(master, "bucket", "a/b.nc", salt) == one
    others = {
        derive_key(master, "bucket", "a/b.nc2", salt),
        derive_key(master, "bucket2", "a/b.nc", salt),
        derive_key(master, "bucke", "ta/b.nc", salt),  # the separator keeps these apart
        derive_key(master, "bucket", "a/b.nc", b"t" * 16),
        derive_key(SSECustomerKey.generate(), "bucket", "a/b.nc", salt),
    }
    assert one not in others
    assert len(others) == 5
    assert one != master
    with pytest.raises(KeyringUsageError, match="salt"):
        derive_key(master, "bucket", "k", b"short")


def test_derived_salt_goes_to_the_ledger_first(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    master = SSECustomerKey.generate()
    key = prepare_derived_key(ledger, "https://s3.example", "b", "obj", master)
    found = ledger.find_derivation("https://s3.example", "b", "obj", key.fingerprint)
    assert found is not None
    salt, master_fp = found
    assert master_fp == master.fingerprint
    assert derive_key(master, "b", "obj", salt) == key
    # The intention is not an object: no fingerprint is claimed for the object yet...
    assert ledger.find_fingerprint("https://s3.example", "b", "obj") is None
    # ...but removing the master would strand it once written.
    ledger.add(entry(key.fingerprint))
    assert [e.key for e in ledger.protected_by(master.fingerprint)] == ["obj"]


# -- ledger ---------------------------------------------------------------------------------------


def test_ledger_show_and_find_by_version(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.add(entry("fp1", version_id="v1", at=100.0))
    ledger.add(entry("fp2", version_id="v2", at=200.0))
    ledger.add(entry("fp3", key="other", at=150.0))
    shown = ledger.show(None, "b", "obj")
    assert [e.version_id for e in shown] == ["v2", "v1"]
    assert ledger.show("https://elsewhere", "b", "obj") == []
    assert ledger.find_fingerprint("https://s3.example", "b", "obj") == "fp2"
    assert ledger.find_fingerprint("https://s3.example", "b", "obj", "v1") == "fp1"
    assert ledger.find_fingerprint("https://s3.example", "b", "obj", "v9") is None


def test_ledger_latest_ignores_bookkeeping_rows(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.add(entry("fp1"))
    ledger.record_key_match(
        "https://s3.example", "b", "obj", version_id=None, etag=None, size=1, key_fingerprint="x"
    )
    latest = ledger.latest("https://s3.example", "b", "obj")
    assert latest is not None
    assert latest.operation == "upload"
    assert ledger.find_fingerprint("https://s3.example", "b", "obj") == "x"


def test_old_ledger_gains_the_salt_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE transfers (id INTEGER PRIMARY KEY, recorded_at REAL NOT NULL, "
            "operation TEXT NOT NULL, endpoint TEXT NOT NULL, bucket TEXT NOT NULL, "
            "key TEXT NOT NULL, version_id TEXT, etag TEXT, size INTEGER NOT NULL, checksum TEXT, "
            "key_fingerprint TEXT, local_path TEXT, local_mtime_ns INTEGER);"
            "INSERT INTO transfers VALUES (1, 5.0, 'upload', 'e', 'b', 'k', NULL, NULL, 3, NULL, "
            "'fp', NULL, NULL);"
        )
    db.close()
    ledger = Ledger(path)
    Ledger(path)  # opening twice is harmless
    (old,) = ledger.show(None, "b", "k")
    assert old.key_fingerprint == "fp"
    assert old.salt is None
    assert old.derived_from is None


def test_export_import_round_trip_without_duplicates(tmp_path: Path) -> None:
    source = Ledger(tmp_path / "a.sqlite")
    source.add(entry("fp1", version_id="v1", at=1.5))
    source.add(entry("fp1", version_id="v1", operation="download", at=2.25))
    prepare_derived_key(source, "https://s3.example", "b", "d", SSECustomerKey.generate())
    out = io.StringIO()
    assert source.export(out) == 3
    lines = out.getvalue().splitlines()
    assert all(
        set(json.loads(line)) >= {"key_fingerprint", "salt", "recorded_at"} for line in lines
    )
    target = Ledger(tmp_path / "b.sqlite")
    target.add(entry("local"))
    assert target.import_(lines) == 3
    assert target.import_(lines) == 0  # merging twice adds nothing
    assert target.count() == 4
    exported_again = io.StringIO()
    target.export(exported_again)
    assert set(lines) <= set(exported_again.getvalue().splitlines())


def test_a_bad_import_line_imports_nothing(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite")
    good = json.dumps(entry("fp").to_dict())
    bad = json.dumps({**entry("fp").to_dict(), "size": "large"})
    with pytest.raises(SSECTransferError, match="line 2") as caught:
        ledger.import_([good, bad])
    assert caught.value.exit_code == 2
    assert ledger.count() == 0
    with pytest.raises(SSECTransferError, match="not JSON"):
        ledger.import_(["{"])


def test_protected_by_follows_the_newest_record(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite")
    ledger.add(entry("old", key="rotated", at=1.0))
    ledger.add(entry("new", key="rotated", operation="rotate", at=2.0))
    ledger.add(entry("old", key="v", version_id="1", at=1.0))
    ledger.add(entry("new", key="v", version_id="2", at=2.0))
    needed = ledger.protected_by("old")
    assert [(e.key, e.version_id) for e in needed] == [("v", "1")]
    assert {e.key for e in ledger.protected_by("new")} == {"rotated", "v"}


# -- command handlers, in-process -----------------------------------------------------------------


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ssec-transfer")
    sub = parser.add_subparsers(dest="command", required=True)
    handlers = keyring_cli.add_commands(sub)
    args = parser.parse_args(argv)
    return anyio.run(handlers[args.command], args)


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ring: Keyring) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data-home"))
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal
    return ring.path


def test_list_shows_names_and_fingerprints_only(
    cli_env: Path, ring: Keyring, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = [ring.generate(name) for name in ("one", "two")]
    capsys.readouterr()
    assert run(["keyring", "list", "--keyring-file", str(cli_env)]) == 0
    assert run(["keyring", "list", "--json", "--keyring-file", str(cli_env)]) == 0
    out = capsys.readouterr()
    text = out.out + out.err
    for key in keys:
        assert key.fingerprint in text
        for form in key_forms(key):
            assert form.decode("latin-1") not in text
    rows = [json.loads(line) for line in out.out.splitlines() if line.startswith("{")]
    assert [set(r) for r in rows] == [{"name", "fingerprint", "created_at"}] * 2


def test_handlers_add_generate_export(
    cli_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = SSECustomerKey.generate()
    key.write_new_file(tmp_path / "k.key")
    ring = ["--keyring-file", str(cli_env)]
    assert run(["keyring", "add", "mine", "--key-file", str(tmp_path / "k.key"), *ring]) == 0
    assert capsys.readouterr().out.strip() == key.fingerprint
    assert run(["keyring", "generate", "fresh", *ring]) == 0
    with pytest.raises(KeyringUsageError):
        run(["keyring", "generate", "fresh", *ring])
    assert run(["keyring", "export", "mine", "--to", str(tmp_path / "out.key"), *ring]) == 0
    assert SSECustomerKey.from_file(tmp_path / "out.key") == key
    with pytest.raises(KeyringUsageError, match="refusing to overwrite"):
        run(["keyring", "export", "fresh", "--to", str(tmp_path / "out.key"), *ring])


def test_generate_creates_the_default_keyring(  # at full scrypt cost: about two seconds
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    assert run(["keyring", "generate", "first"]) == 0
    path = tmp_path / "xdg" / "ssec-transfer" / "keyring.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    fingerprint = capsys.readouterr().out.strip()
    assert Keyring.open(path, PASSPHRASE).get("first").fingerprint == fingerprint


def test_remove_needs_force_while_the_ledger_needs_the_key(
    cli_env: Path, ring: Keyring, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    needed = ring.generate("needed")
    ring.generate("spare")
    ledger_path = tmp_path / "ledger.sqlite"
    ledger = Ledger(ledger_path)
    ledger.add(entry(needed.fingerprint, key="data/a.nc", version_id="v7"))
    opts = ["--keyring-file", str(cli_env), "--ledger", str(ledger_path)]
    with pytest.raises(KeyringUsageError, match="--force") as caught:
        run(["keyring", "remove", "needed", *opts])
    assert caught.value.exit_code == 2
    assert "s3://b/data/a.nc version v7" in str(caught.value)
    assert Keyring.open(cli_env, PASSPHRASE).get("needed") == needed
    assert run(["keyring", "remove", "spare", *opts]) == 0  # nothing needs it
    assert run(["keyring", "remove", "needed", "--force", *opts]) == 0
    assert "s3://b/data/a.nc version v7" in capsys.readouterr().err
    assert Keyring.open(cli_env, PASSPHRASE).list() == []


def test_remove_asks_on_a_terminal(
    cli_env: Path, ring: Keyring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    needed = ring.generate("needed")
    ledger_path = tmp_path / "ledger.sqlite"
    Ledger(ledger_path).add(entry(needed.fingerprint))

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    opts = ["--keyring-file", str(cli_env), "--ledger", str(ledger_path)]
    monkeypatch.setattr("sys.stdin", Tty("no\n"))
    assert run(["keyring", "remove", "needed", *opts]) == 1
    assert len(Keyring.open(cli_env, PASSPHRASE)) == 1
    monkeypatch.setattr("sys.stdin", Tty("needed\n"))
    assert run(["keyring", "remove", "needed", *opts]) == 0
    assert len(Keyring.open(cli_env, PASSPHRASE)) == 0


def test_wrong_passphrase_through_the_handler(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "wrong wrong wrong")
    with pytest.raises(WrongPassphraseError) as caught:
        run(["keyring", "list", "--keyring-file", str(cli_env)])
    assert caught.value.exit_code == 3


def test_ledger_handlers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "l.sqlite"
    ledger = Ledger(path)
    ledger.add(entry("fp-old", version_id="v1", at=10.0))
    ledger.add(entry("fp-new", version_id="v2", at=20.0))
    assert run(["ledger", "show", "s3://b/obj", "--ledger", str(path)]) == 0
    text = capsys.readouterr().out
    assert (
        text.splitlines()[0]
        == "s3://b/obj: key fp-new (version v2), recorded 1970-01-01T00:00:20+00:00"
    )
    assert "fp-old" in text
    assert run(["ledger", "show", "s3://b/obj", "--json", "--ledger", str(path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["version_id"], r["key_fingerprint"]) for r in rows] == [
        ("v2", "fp-new"),
        ("v1", "fp-old"),
    ]
    with pytest.raises(SSECTransferError, match="no record") as caught:
        run(["ledger", "show", "s3://b/nothing", "--ledger", str(path)])
    assert caught.value.exit_code == 1
    out = tmp_path / "export.jsonl"
    assert run(["ledger", "export", "--to", str(out), "--ledger", str(path)]) == 0
    with pytest.raises(SSECTransferError, match="refusing to overwrite"):
        run(["ledger", "export", "--to", str(out), "--ledger", str(path)])
    fresh = tmp_path / "fresh.sqlite"
    assert run(["ledger", "import", str(out), "--ledger", str(fresh), "--json"]) == 0
    assert run(["ledger", "import", str(out), "--ledger", str(fresh), "--json"]) == 0
    counts = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [c["added"] for c in counts] == [2, 0]
    assert Ledger(fresh).show(None, "b", "obj") == ledger.show(None, "b", "obj")


def test_keyring_options_for_reading_commands(cli_env: Path, ring: Keyring) -> None:
    ring.generate("one")
    parser = argparse.ArgumentParser()
    keyring_cli.add_keyring_options(parser)
    assert anyio.run(keyring_cli.keyring_from_args, parser.parse_args([])) is None
    args = parser.parse_args(["--keyring-file", str(cli_env), "--keyring-max-tries", "3"])
    opened = anyio.run(keyring_cli.keyring_from_args, args)
    assert opened is not None
    assert [i.name for i in opened.list()] == ["one"]
    assert args.keyring_max_tries == 3
    assert "keys" in repr(opened)
    assert str(opened.get("one")._raw) not in repr(opened)
