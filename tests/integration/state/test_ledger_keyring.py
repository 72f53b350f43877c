"""The ledger and the keyring against a real server: every write path leaves a record with the
key's fingerprint (`ledger show`), ledgers merge by export/import, concurrent writers do not
corrupt the ledger, and `resolve_key` finds the right keyring key with or without a record."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

from ssec_transfer import SSECustomerKey, TransferEngine
from ssec_transfer.core.results import ObjectInfo
from ssec_transfer.keys.derive import prepare_derived_key
from ssec_transfer.keys.keyring import PASSPHRASE_ENV, Keyring, KeyringError
from ssec_transfer.keys.resolve import resolve_key
from ssec_transfer.state.ledger import Ledger
from tests.support.helpers import make_key_file, random_file, run_cli

pytestmark = pytest.mark.integration

PASSPHRASE = "integration passphrase, long enough"
FAST = 2**14  # cheapest scrypt cost a keyring accepts; files made by the CLI use the default


@pytest.fixture
def versioned_bucket(admin: Any) -> Iterator[str]:
    name = f"v-{uuid.uuid4().hex[:20]}"
    admin.create_bucket(Bucket=name)
    admin.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    yield name
    for page in admin.get_paginator("list_object_versions").paginate(Bucket=name):
        for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
            admin.delete_object(Bucket=name, Key=v["Key"], VersionId=v["VersionId"])
    admin.delete_bucket(Bucket=name)


@pytest.fixture
def env(server_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The CLI environment with a ledger and keyring of this test's own."""
    return {
        **server_env,
        "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
        PASSPHRASE_ENV: PASSPHRASE,
    }


def cli_json(*args: str | os.PathLike[str], env: dict[str, str]) -> list[dict[str, Any]]:
    done = run_cli(*args, env=env)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_every_write_path_is_recorded_and_shown(
    versioned_bucket: str, env: dict[str, str], tmp_path: Path
) -> None:
    b = versioned_bucket
    (f1, k1), (f2, k2), (f3, k3) = (make_key_file(tmp_path, f"k{i}.key") for i in range(3))
    src = random_file(tmp_path / "data.bin", 300_000)
    (up1,) = cli_json("put", src, f"s3://{b}/obj", "--key-file", f1, "--json", env=env)
    (up2,) = cli_json("put", src, f"s3://{b}/obj", "--key-file", f2, "--json", env=env)
    v1, v2 = up1["version_id"], up2["version_id"]
    cli_json("get", f"s3://{b}/obj", tmp_path / "back.bin", "--key-file", f2, "--json",
             env=env)  # fmt: skip
    (cp,) = cli_json(
        "cp", f"s3://{b}/obj", f"s3://{b}/copy", "--version-id", v1, "--source-key-file", f1,
        "--key-file", f3, "--json", env=env,
    )  # fmt: skip
    (rot,) = cli_json(
        "rotate", f"s3://{b}/obj", "--version-id", v2, "--key-file", f2, "--new-key-file", f3,
        "--json", env=env,
    )  # fmt: skip
    rows = cli_json("ledger", "show", f"s3://{b}/obj", "--json", env=env)
    seen = {(r["operation"], r["version_id"], r["key_fingerprint"]) for r in rows}
    assert seen == {
        ("upload", v1, k1.fingerprint),
        ("upload", v2, k2.fingerprint),
        ("download", v2, k2.fingerprint),
        ("rotate", rot["version_id"], k3.fingerprint),
    }
    assert rows[0]["operation"] == "rotate"  # newest first
    (copy_row,) = cli_json("ledger", "show", f"s3://{b}/copy", "--json", env=env)
    assert (copy_row["operation"], copy_row["key_fingerprint"]) == ("copy", k3.fingerprint)
    assert copy_row["version_id"] == cp["version_id"]
    # The text form answers "which key protects it" first.
    text = run_cli("ledger", "show", f"s3://{b}/obj", env=env)
    assert text.returncode == 0, text.stderr
    first = text.stdout.splitlines()[0]
    assert first.startswith(f"s3://{b}/obj: key {k3.fingerprint} (version {rot['version_id']})")
    assert k1.fingerprint in text.stdout
    # Nothing about the key itself is shown.
    for key in (k1, k2, k3):
        assert key.export_base64() not in text.stdout + text.stderr
    missing = run_cli("ledger", "show", f"s3://{b}/never-written", env=env)
    assert missing.returncode == 1
    assert "no record" in missing.stderr


def test_export_import_round_trip_into_a_fresh_ledger(
    bucket: str, env: dict[str, str], tmp_path: Path
) -> None:
    f1, k1 = make_key_file(tmp_path, "k1.key")
    for name in ("a", "b", "c"):
        src = random_file(tmp_path / name, 1000)
        cli_json("put", src, f"s3://{bucket}/{name}", "--key-file", f1, "--json", env=env)
    exported = tmp_path / "ledger.jsonl"
    done = run_cli("ledger", "export", "--to", exported, env=env)
    assert done.returncode == 0, done.stderr
    again = run_cli("ledger", "export", "--to", exported, env=env)
    assert again.returncode == 2  # never overwrites
    fresh = tmp_path / "fresh.sqlite"
    (first,) = cli_json("ledger", "import", exported, "--ledger", fresh, "--json", env=env)
    (second,) = cli_json("ledger", "import", exported, "--ledger", fresh, "--json", env=env)
    assert first["added"] == first["records"] >= 3
    assert second["added"] == 0
    original, merged = (
        Ledger(Path(env["XDG_DATA_HOME"]) / "ssec-transfer" / "ledger.sqlite"),
        Ledger(fresh),
    )
    for name in ("a", "b", "c"):
        rows = merged.show(None, bucket, name)
        assert rows == original.show(None, bucket, name)
        assert rows[0].key_fingerprint == k1.fingerprint
    (shown,) = cli_json("ledger", "show", f"s3://{bucket}/a", "--ledger", fresh, "--json", env=env)
    assert shown["key_fingerprint"] == k1.fingerprint
    to_stdout = run_cli("ledger", "export", env=env)
    assert to_stdout.stdout == exported.read_text()


_WRITER = """
import sys, time
from pathlib import Path
from ssec_transfer.state.ledger import Ledger, LedgerEntry
path, who, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
while not go.exists():
    time.sleep(0.001)
ledger = Ledger(path)  # both processes create the schema and migrate at the same moment
for i in range(200):
    ledger.add(LedgerEntry(time.time(), "upload", "https://e", "b", f"{who}/{i}", None, None, i,
                           None, "fp-" + who, None, None))
"""


def test_two_processes_write_at_once(tmp_path: Path) -> None:
    path, go = tmp_path / "shared.sqlite", tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), who, str(go)])
        for who in ("one", "two")
    ]
    time.sleep(0.5)  # both interpreters are up and waiting
    go.touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    ledger = Ledger(path)
    assert ledger.count() == 400
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        per_writer = dict(
            db.execute("SELECT key_fingerprint, COUNT(*) FROM transfers GROUP BY 1").fetchall()
        )
    assert per_writer == {"fp-one": 200, "fp-two": 200}
    assert ledger.find_fingerprint("https://e", "b", "two/199") == "fp-two"


@pytest.mark.anyio
async def test_resolve_key_finds_the_right_key_with_and_without_a_ledger_entry(
    bucket: str, engine_kwargs: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ring = Keyring.create(tmp_path / "keyring.json", PASSPHRASE, n=FAST)
    keys = [ring.generate(f"k{i}") for i in range(5)]
    outsider = SSECustomerKey.generate()
    src = random_file(tmp_path / "data.bin", 5000)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    async with TransferEngine(ledger=None, **engine_kwargs) as engine:  # the ledger never saw these
        await engine.upload(src, bucket, "unknown", sse_key=keys[1])
        await engine.upload(src, bucket, "stranger", sse_key=outsider)
        await engine.upload(src, bucket, "bounded", sse_key=keys[0])
    async with TransferEngine(ledger=ledger, **engine_kwargs) as engine:
        await engine.upload(src, bucket, "known", sse_key=keys[3])
        heads: list[str | None] = []
        real_head = engine.head

        async def counting_head(*args: Any, **kwargs: Any) -> ObjectInfo:
            heads.append(kwargs["sse_key"].fingerprint)
            return await real_head(*args, **kwargs)

        monkeypatch.setattr(engine, "head", counting_head)
        # With a ledger entry: straight from the fingerprint, no request.
        assert await resolve_key(engine, bucket, "known", None, ring) == keys[3]
        assert heads == []
        # Without: HEAD with keyring keys, the bucket's recently seen key first...
        assert await resolve_key(engine, bucket, "unknown", None, ring) == keys[1]
        assert heads[0] == keys[3].fingerprint
        assert heads[-1] == keys[1].fingerprint
        assert len(heads) <= 5
        # ...and the match is recorded, so the next lookup needs no request.
        (match, *_) = ledger.show(engine.endpoint_url, bucket, "unknown")
        assert (match.operation, match.key_fingerprint) == ("key-match", keys[1].fingerprint)
        heads.clear()
        assert await resolve_key(engine, bucket, "unknown", None, ring) == keys[1]
        assert heads == []
        # Bounded: one try (the key seen last in this bucket, just matched), which is wrong.
        with pytest.raises(KeyringError, match="1 of 5") as caught:
            await resolve_key(engine, bucket, "bounded", None, ring, max_tries=1)
        assert caught.value.exit_code == 3
        assert heads == [keys[1].fingerprint]
        # A key the keyring does not hold: every key tried, a clear key problem.
        with pytest.raises(KeyringError, match="none of the keys"):
            await resolve_key(engine, bucket, "stranger", None, ring)
        # The resolved key reads the object.
        key = await resolve_key(engine, bucket, "unknown", None, ring)
        result = await engine.download(bucket, "unknown", tmp_path / "out.bin", sse_key=key)
        assert (tmp_path / "out.bin").read_bytes() == src.read_bytes()
        assert result.key_fingerprint == keys[1].fingerprint


@pytest.mark.anyio
async def test_resolve_key_by_version_and_derived_keys(
    versioned_bucket: str, engine_kwargs: dict[str, str], tmp_path: Path
) -> None:
    ring = Keyring.create(tmp_path / "keyring.json", PASSPHRASE, n=FAST)
    old, new, master = ring.generate("old"), ring.generate("new"), ring.generate("master")
    src = random_file(tmp_path / "data.bin", 5000)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    b = versioned_bucket
    async with TransferEngine(ledger=ledger, **engine_kwargs) as engine:
        v1 = (await engine.upload(src, b, "obj", sse_key=old)).version_id
        v2 = (await engine.upload(src, b, "obj", sse_key=new)).version_id
        assert await resolve_key(engine, b, "obj", v1, ring) == old
        assert await resolve_key(engine, b, "obj", v2, ring) == new
        assert await resolve_key(engine, b, "obj", None, ring) == new
        # A per-object key derived from the master; its salt went to the ledger first.
        derived = await anyio.to_thread.run_sync(
            partial(prepare_derived_key, ledger, engine.endpoint_url, b, "derived", master)
        )
        assert derived != master
        await engine.upload(src, b, "derived", sse_key=derived)
        assert await resolve_key(engine, b, "derived", None, ring) == derived
        assert [e.key for e in ledger.protected_by(master.fingerprint)] == ["derived"]


def test_keyring_commands_end_to_end(bucket: str, env: dict[str, str], tmp_path: Path) -> None:
    ring = tmp_path / "ring.json"
    opt = ("--keyring-file", ring)
    key_path, key = make_key_file(tmp_path, "given.key")
    # The first command creates the keyring (at full scrypt cost).
    added = run_cli("keyring", "add", "given", "--key-file", key_path, *opt, env=env)
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == key.fingerprint
    generated = run_cli("keyring", "generate", "fresh", *opt, env=env)
    assert generated.returncode == 0, generated.stderr
    assert run_cli("keyring", "generate", "fresh", *opt, env=env).returncode == 2
    listed = cli_json("keyring", "list", "--json", *opt, env=env)
    assert [(r["name"], r["fingerprint"]) for r in listed] == [
        ("fresh", generated.stdout.strip()),
        ("given", key.fingerprint),
    ]
    data = ring.read_bytes()
    assert key._raw not in data
    assert key.export_base64().encode() not in data
    # Wrong passphrase: exit 3, nothing changed.
    wrong = run_cli("keyring", "list", *opt, env={**env, PASSPHRASE_ENV: "not it at all"})
    assert wrong.returncode == 3
    assert "wrong passphrase" in wrong.stderr
    # No passphrase and no terminal: exit 2 with a way forward.
    no_pass = subprocess.run(
        [sys.executable, "-m", "ssec_transfer", "keyring", "list", *map(str, opt)],
        env={k: v for k, v in env.items() if k != PASSPHRASE_ENV},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert no_pass.returncode == 2
    assert PASSPHRASE_ENV in no_pass.stderr
    # Export refuses to overwrite.
    out = tmp_path / "exported.key"
    assert run_cli("keyring", "export", "fresh", "--to", out, *opt, env=env).returncode == 0
    assert run_cli("keyring", "export", "given", "--to", out, *opt, env=env).returncode == 2
    # Remove refuses while the ledger needs the key, and names the objects.
    src = random_file(tmp_path / "data.bin", 1000)
    cli_json("put", src, f"s3://{bucket}/needs-it", "--key-file", key_path, "--json",
             env=env)  # fmt: skip
    refused = run_cli("keyring", "remove", "given", *opt, env=env)
    assert refused.returncode == 2
    assert f"s3://{bucket}/needs-it" in refused.stderr
    assert "--force" in refused.stderr
    assert "given" in run_cli("keyring", "list", *opt, env=env).stdout
    forced = run_cli("keyring", "remove", "given", "--force", *opt, env=env)
    assert forced.returncode == 0, forced.stderr
    assert "given" not in run_cli("keyring", "list", *opt, env=env).stdout
