"""rotate, cp and sync across a Dask cluster (`--dask-local 2`): the same lines, summary and
exit code as a local run, one ledger on the client, restartable rotations (a rerun skips
what is done; a worker killed mid-rotation loses nothing), and --keyring carried to workers.

On Ceph RGW 16 CopyObject from an SSE-C source answers 501, so every rotation and copy here
streams through the workers; on SeaweedFS the server paths run. Nothing below depends on
which path ran."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ssec_transfer.core.plan import MiB
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.sse import sse_params
from ssec_transfer.state.ledger import Ledger
from tests.support.helpers import make_key_file, random_file, run_cli

pytestmark = pytest.mark.integration

DASK = ("--dask-local", "2")
# Fields of a JSON line that do not depend on which object (or which run) it was.
_STABLE = ("type", "operation", "status", "size", "key_fingerprint", "verified", "via",
           "source_key_fingerprint", "old_key_refused", "exit_code", "reason")  # fmt: skip


def _keys(tmp_path: Path) -> tuple[Path, SSECustomerKey, Path, SSECustomerKey]:
    old_path, old = make_key_file(tmp_path, "old.key")
    new_path, new = make_key_file(tmp_path, "new.key")
    return old_path, old, new_path, new


def _fill(admin: Any, bucket: str, prefix: str, key: SSECustomerKey, n: int) -> dict[str, bytes]:
    """`n` small objects and one multipart-sized one under `key`: name -> bytes."""
    bodies = {f"{prefix}d{i % 3}/o-{i}.bin": os.urandom(100 + i * 37) for i in range(n)}
    bodies[f"{prefix}big.bin"] = os.urandom(11 * MiB + 5)
    for name, body in bodies.items():
        admin.put_object(Bucket=bucket, Key=name, Body=body, **sse_params(key))
    return bodies


def _lines(out: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    summaries = [r for r in rows if r["type"] == "summary"]
    assert len(summaries) == 1, rows[-3:]
    return [r for r in rows if r["type"] != "summary"], summaries[0]


def _stable(rows: list[dict[str, Any]], prefix: str) -> list[tuple[Any, ...]]:
    """Each line's object-independent fields and its name relative to `prefix`."""
    return sorted(
        (r["key"][len(prefix) :], *(str(r.get(f)) for f in _STABLE)) for r in rows
    )  # fmt: skip


def _only_new_key_opens(
    admin: Any, bucket: str, bodies: dict[str, bytes], old: SSECustomerKey, new: SSECustomerKey
) -> None:
    import botocore.exceptions

    for name, body in bodies.items():
        got = admin.get_object(Bucket=bucket, Key=name, **sse_params(new))["Body"].read()
        assert got == body, name
        with pytest.raises(botocore.exceptions.ClientError):
            admin.head_object(Bucket=bucket, Key=name, **sse_params(old))


def test_rotate_recursive_on_dask_prints_what_a_local_run_prints_and_reruns_skip(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str]
) -> None:
    old_path, old, new_path, new = _keys(tmp_path)
    runs = {}
    for prefix, extra in (("here/", ()), ("dask/", DASK)):
        bodies = _fill(admin, bucket, prefix, old, 24)
        done = run_cli(
            "rotate", f"s3://{bucket}/{prefix}", "--recursive", "--key-file", old_path,
            "--new-key-file", new_path, "--json", *extra, env=server_env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert "INFO" not in done.stderr  # Dask's own start-up chatter stays out of stderr
        rows, summary = _lines(done.stdout)
        assert (summary["objects"], summary["ok"], summary["failed"]) == (25, 25, 0)
        assert all(r["verified"] and r["old_key_refused"] for r in rows)
        runs[prefix] = _stable(rows, prefix)
        _only_new_key_opens(admin, bucket, bodies, old, new)
    assert runs["dask/"] == runs["here/"]
    # The client wrote the ledger: every rotated object under the new key's fingerprint.
    book = Ledger(Path(server_env["XDG_DATA_HOME"]) / "ssec-transfer" / "ledger.sqlite")
    endpoint = server_env["AWS_ENDPOINT_URL"]
    dask_names = [r[0] for r in runs["dask/"]]
    for rel in dask_names:
        entry = book.latest(endpoint, bucket, "dask/" + rel)
        assert entry is not None, rel
        assert entry.key_fingerprint == new.fingerprint, rel
    # Running it again finds every object under the new key: nothing is rewritten.
    again = run_cli(
        "rotate", f"s3://{bucket}/dask/", "--recursive", "--key-file", old_path,
        "--new-key-file", new_path, "--json", *DASK, env=server_env,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    rows, summary = _lines(again.stdout)
    assert (summary["ok"], summary["skipped"], summary["failed"]) == (0, 25, 0)
    assert {r["reason"] for r in rows} == {"already-rotated"}


def test_rotate_all_versions_on_dask(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str]
) -> None:
    admin.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    old_path, old, new_path, new = _keys(tmp_path)
    latest = {}
    for i in range(4):
        for v in range(2):
            latest[f"v/o-{i}"] = body = os.urandom(1000 + i * 10 + v)
            admin.put_object(Bucket=bucket, Key=f"v/o-{i}", Body=body, **sse_params(old))
    argv = ("rotate", f"s3://{bucket}/v/", "--recursive", "--all-versions",
            "--delete-old-versions", "--key-file", old_path, "--new-key-file", new_path,
            "--json", *DASK)  # fmt: skip
    done = run_cli(*argv, env=server_env)
    assert done.returncode == 0, done.stderr[-3000:]
    _, summary = _lines(done.stdout)
    assert (summary["objects"], summary["ok"], summary["failed"]) == (8, 8, 0)
    versions = admin.list_object_versions(Bucket=bucket, Prefix="v/").get("Versions", [])
    assert len(versions) == 8  # each old version deleted once its copy was verified
    for version in versions:
        admin.head_object(
            Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"], **sse_params(new)
        )
    _only_new_key_opens(admin, bucket, latest, old, new)
    again = run_cli(*argv, env=server_env)
    assert again.returncode == 0, again.stderr[-3000:]
    _, summary = _lines(again.stdout)
    assert (summary["ok"], summary["skipped"], summary["failed"]) == (0, 8, 0)


def test_cp_recursive_on_dask(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str]
) -> None:
    old_path, old, new_path, new = _keys(tmp_path)
    bodies = _fill(admin, bucket, "src/", old, 20)
    done = run_cli(
        "cp", f"s3://{bucket}/src/", f"s3://{bucket}/dst/", "--recursive", "--source-key-file",
        old_path, "--key-file", new_path, "--json", *DASK, env=server_env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows, summary = _lines(done.stdout)
    assert (summary["objects"], summary["ok"], summary["failed"]) == (21, 21, 0)
    assert all(r["verified"] and r["source"].startswith(f"s3://{bucket}/src/") for r in rows)
    copied = {"dst/" + name[len("src/") :]: body for name, body in bodies.items()}
    _only_new_key_opens(admin, bucket, copied, old, new)
    # The source is untouched.
    for name, body in bodies.items():
        assert admin.get_object(Bucket=bucket, Key=name, **sse_params(old))["Body"].read() == body


def test_sync_on_dask_local_to_s3_s3_to_s3_and_back(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str]
) -> None:
    a_path, a, b_path, b = _keys(tmp_path)
    tree = tmp_path / "tree"
    for i in range(15):
        random_file(tree / f"d{i % 3}" / f"f-{i}.bin", 500 + i * 101)
    random_file(tree / "big.nc", 6 * MiB + 1)
    files = {p.relative_to(tree).as_posix(): p.read_bytes() for p in tree.rglob("*") if p.is_file()}
    up = run_cli("sync", tree, f"s3://{bucket}/one/", "--key-file", a_path, "--json", *DASK,
                 env=server_env)  # fmt: skip
    assert up.returncode == 0, up.stderr[-3000:]
    rows, summary = _lines(up.stdout)
    assert (summary["ok"], summary["failed"]) == (16, 0)
    assert {r["operation"] for r in rows} == {"upload"}
    again = run_cli("sync", tree, f"s3://{bucket}/one/", "--key-file", a_path, "--json", *DASK,
                    env=server_env)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    _, summary = _lines(again.stdout)
    assert (summary["ok"], summary["skipped"]) == (0, 16)

    across = run_cli(
        "sync", f"s3://{bucket}/one/", f"s3://{bucket}/two/", "--source-key-file", a_path,
        "--key-file", b_path, "--json", *DASK, env=server_env,
    )  # fmt: skip
    assert across.returncode == 0, across.stderr[-3000:]
    rows, summary = _lines(across.stdout)
    assert (summary["ok"], summary["failed"]) == (16, 0)
    assert {r["operation"] for r in rows} == {"copy"}
    _only_new_key_opens(admin, bucket, {f"two/{k}": v for k, v in files.items()}, a, b)

    mirror = tmp_path / "mirror"
    down = run_cli("sync", f"s3://{bucket}/two/", mirror, "--key-file", b_path, "--json", *DASK,
                   env=server_env)  # fmt: skip
    assert down.returncode == 0, down.stderr[-3000:]
    got = {p.relative_to(mirror).as_posix(): p.read_bytes() for p in mirror.rglob("*")
           if p.is_file()}  # fmt: skip
    assert got == files


def test_keyring_with_dask_sends_each_objects_key_over_tls_only(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str]
) -> None:
    # A keyring (and ledger) of this test's own: the session's would keep these names.
    env = dict(server_env, SSEC_TRANSFER_KEYRING_PASSPHRASE="correct horse battery staple",
               XDG_DATA_HOME=str(tmp_path / "data"))  # fmt: skip
    keys = {}
    for name in ("one", "two"):
        assert run_cli("keyring", "generate", name, env=env).returncode == 0
        out = tmp_path / f"{name}.key"
        assert run_cli("keyring", "export", name, "--to", out, env=env).returncode == 0
        keys[name] = SSECustomerKey.from_file(out)
    bodies = {}
    for i in range(8):
        name = f"k/o-{i}.bin"
        bodies[name] = os.urandom(2000 + i)
        key = keys["one" if i % 2 else "two"]
        admin.put_object(Bucket=bucket, Key=name, Body=bodies[name], **sse_params(key))
    out = tmp_path / "out"
    got = run_cli("get", f"s3://{bucket}/k/", out, "--recursive", "--keyring", "--json", *DASK,
                  env=env)  # fmt: skip
    assert got.returncode == 0, got.stderr[-3000:]
    _, summary = _lines(got.stdout)
    assert (summary["ok"], summary["failed"]) == (8, 0)
    for name, body in bodies.items():
        assert (out / name[len("k/") :]).read_bytes() == body
    # Over a plain tcp:// scheduler the keyring's keys would travel in clear: refused before
    # anything is sent (the scheduler address is never even contacted).
    refused = run_cli("get", f"s3://{bucket}/k/", tmp_path / "no", "--recursive", "--keyring",
                      "--dask", "tcp://127.0.0.1:9", env=env)  # fmt: skip
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "refusing to send SSE-C key material" in refused.stderr
    assert not (tmp_path / "no").exists()
    for key in keys.values():
        assert key.export_base64() not in refused.stderr + got.stderr + got.stdout
        assert base64.b64decode(key.export_base64()).hex() not in got.stderr


def _workers_of(pid: int) -> list[int]:
    """The Dask worker processes a CLI run's LocalCluster spawned (its nannies' children)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if ppid == pid and b"spawn_main" in cmdline:
            found.append(int(entry))
    return found


def test_a_worker_killed_mid_rotation_loses_nothing_and_a_rerun_finishes(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str]
) -> None:
    old_path, old, new_path, new = _keys(tmp_path)
    bodies = {f"many/o-{i:03}.bin": os.urandom(64 + i) for i in range(160)}
    for name, body in bodies.items():
        admin.put_object(Bucket=bucket, Key=name, Body=body, **sse_params(old))
    argv = [sys.executable, "-m", "ssec_transfer", "rotate", f"s3://{bucket}/many/",
            "--recursive", "--key-file", str(old_path), "--new-key-file", str(new_path),
            "--json", "--concurrency", "2", *DASK]  # fmt: skip
    first: list[dict[str, Any]] = []
    killed = None
    deadline = time.monotonic() + 300
    with subprocess.Popen(
        argv, env=server_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        for line in proc.stdout:
            first.append(json.loads(line))
            if killed is None and len(first) == 20:  # both workers are mid-batch now
                workers = _workers_of(proc.pid)
                assert len(workers) == 2, workers
                killed = workers[0]
                os.kill(killed, signal.SIGKILL)
            assert time.monotonic() < deadline
        stderr = proc.stderr.read()
        proc.wait(timeout=60)
    assert killed is not None, stderr[-3000:]
    assert proc.returncode in (0, 1), stderr[-3000:]
    done_first = {r["key"] for r in first if r["type"] != "summary" and r["status"] == "ok"}
    # Each object reported once, however its batch ended.
    keys_first = [r["key"] for r in first if r["type"] != "summary"]
    assert len(keys_first) == len(set(keys_first))

    again = run_cli(
        "rotate", f"s3://{bucket}/many/", "--recursive", "--key-file", old_path,
        "--new-key-file", new_path, "--json", *DASK, env=server_env,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    rows, summary = _lines(again.stdout)
    assert summary["failed"] == 0
    assert summary["ok"] + summary["skipped"] == len(bodies)
    if proc.returncode == 0:  # the lost batch ran again elsewhere: the first run finished it
        assert first[-1]["ok"] + first[-1]["skipped"] == len(bodies)
        assert summary["ok"] == 0
    # Nothing rotated twice: what the first run finished, the rerun skipped.
    assert all(r["status"] == "skipped" for r in rows if r["key"] in done_first)
    # Every object is there, under the new key only, with its bytes.
    listed = admin.list_objects_v2(Bucket=bucket, Prefix="many/").get("Contents", [])
    assert sorted(o["Key"] for o in listed) == sorted(bodies)
    _only_new_key_opens(admin, bucket, bodies, old, new)
