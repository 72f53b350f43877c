"""Every command's --json lines fit the one schema (docs/json.md), on a real server; and
--quiet/--only-show-errors leave stderr to failures.

`run_cli` validates the --json output of every command of the schema in every test; here each
command is run on purpose, and the fields a pipeline reads are checked for their values."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ssec_transfer.keys.customer import SSECustomerKey
from tests.support.helpers import make_key_file, random_file, run_cli
from tests.support.json_schema import validate_lines

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def records(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return validate_lines(done.stdout)


def objects_and_summary(
    done: subprocess.CompletedProcess[str],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    lines = records(done)
    assert [r["type"] for r in lines].count("summary") == 1
    assert lines[-1]["type"] == "summary"
    return [r for r in lines if r["type"] == "object"], lines[-1]


def test_put_get_cp_rotate_rm_share_one_schema(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, key = key_file
    new_path, new_key = make_key_file(tmp_path, "new.key")
    src = random_file(tmp_path / "f.bin", 6 * MiB)
    url = f"s3://{bucket}/one/f.bin"

    put = run_cli("put", src, url, "--key-file", key_path, "--part-size", "5MiB",
                  "--multipart-threshold", "5MiB", "--json", env=server_env)  # fmt: skip
    assert put.returncode == 0, put.stderr
    [up] = records(put)
    assert (up["type"], up["operation"], up["status"], up["exit_code"]) == (
        "object", "upload", "ok", 0,
    )  # fmt: skip
    assert (up["source"], up["destination"], up["path"]) == (str(src), url, str(src))
    assert (up["bucket"], up["key"], up["size"], up["parts"]) == (bucket, "one/f.bin", 6 * MiB, 2)
    assert up["key_fingerprint"] == key.fingerprint
    assert up["mib_per_s"] > 0
    assert up["seconds"] > 0
    assert up["checksum"].startswith("crc32c:")
    assert (up["error"], up["hint"], up["http_status"]) == (None, None, None)

    dest = tmp_path / "back.bin"
    get = run_cli("get", url, dest, "--key-file", key_path, "--json", env=server_env)
    assert get.returncode == 0, get.stderr
    [down] = records(get)
    assert (down["operation"], down["source"], down["destination"], down["path"]) == (
        "download", url, str(dest), str(dest),
    )  # fmt: skip
    assert (down["size"], down["etag"]) == (6 * MiB, up["etag"])

    cp = run_cli("cp", url, f"s3://{bucket}/two/", "--source-key-file", key_path,
                 "--key-file", new_path, "--json", env=server_env)  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    [copied] = records(cp)
    assert (copied["operation"], copied["status"], copied["key"]) == ("copy", "ok", "two/f.bin")
    assert copied["destination"].startswith(f"s3://{bucket}/two/f.bin")
    assert copied["source"].startswith(url)
    assert (copied["key_fingerprint"], copied["source_key_fingerprint"]) == (
        new_key.fingerprint, key.fingerprint,
    )  # fmt: skip
    assert (copied["path"], copied["verified"]) == (None, True)

    rotate = run_cli("rotate", f"s3://{bucket}/two/", "--recursive", "--key-file", new_path,
                     "--new-key-file", key_path, "--json", env=server_env)  # fmt: skip
    assert rotate.returncode == 0, rotate.stderr
    [rotated], summary = objects_and_summary(rotate)
    assert (rotated["operation"], rotated["status"], rotated["key"]) == (
        "rotate", "ok", "two/f.bin",
    )  # fmt: skip
    assert rotated["key_fingerprint"] == key.fingerprint
    assert (summary["command"], summary["ok"], summary["failed"], summary["exit_code"]) == (
        "rotate", 1, 0, 0,
    )  # fmt: skip

    rm = run_cli("rm", f"s3://{bucket}/two/", "--recursive", "--json", env=server_env)
    assert rm.returncode == 0, rm.stderr
    [gone], summary = objects_and_summary(rm)
    assert (gone["operation"], gone["status"], gone["source"], gone["destination"]) == (
        "delete", "ok", f"s3://{bucket}/two/f.bin", None,
    )  # fmt: skip
    assert (summary["command"], summary["ok"]) == ("rm", 1)


# How each server refuses a GET with another key (test_server_differences: wrong_key).
WRONG_KEY_STATUS = {"seaweedfs": 403, "ceph": 400}


def test_bulk_runs_a_failing_object_and_a_command_error(
    s3_server: Any, tmp_path: Path, bucket: str, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, key = key_file
    refused = WRONG_KEY_STATUS[s3_server.name]
    wrong_path, _ = make_key_file(tmp_path, "wrong.key")
    tree = tmp_path / "tree"
    for name in ("a.bin", "sub/b.bin"):
        random_file(tree / name, 1000)
    put = run_cli("put", tree, f"s3://{bucket}/t/", "--recursive", "--key-file", key_path,
                  "--json", env=server_env)  # fmt: skip
    assert put.returncode == 0, put.stderr
    sent, summary = objects_and_summary(put)
    assert sorted(r["key"] for r in sent) == ["t/a.bin", "t/sub/b.bin"]
    assert {(r["operation"], r["status"]) for r in sent} == {("upload", "ok")}
    assert (summary["command"], summary["files"], summary["ok"], summary["bytes"]) == (
        "put", 2, 2, 2000,
    )  # fmt: skip

    out = tmp_path / "out"
    got = run_cli("get", f"s3://{bucket}/t/", out, "--recursive", "--key-file", key_path,
                  "--json", env=server_env)  # fmt: skip
    assert got.returncode == 0, got.stderr
    fetched, summary = objects_and_summary(got)
    assert sorted(r["path"] for r in fetched) == [str(out / "a.bin"), str(out / "sub/b.bin")]
    assert {r["key_fingerprint"] for r in fetched} == {key.fingerprint}

    # The wrong key: each object fails with the error split into fields, and exit code 3.
    bad = run_cli("get", f"s3://{bucket}/t/", tmp_path / "bad", "--recursive",
                  "--key-file", wrong_path, "--json", env=server_env)  # fmt: skip
    assert bad.returncode == 1, bad.stderr  # a bulk run that failed
    failed, summary = objects_and_summary(bad)
    assert len(failed) == 2
    for row in failed:
        assert (row["status"], row["exit_code"], row["error_type"]) == (
            "failed", 3, "WrongKeyError",
        )  # fmt: skip
        assert row["http_status"] == refused
        assert row["hint"]
        assert row["hint"] not in row["error"]
        assert "\n" not in row["error"]
        assert row["request"]
        assert row["mib_per_s"] is None
    assert (summary["failed"], summary["exit_code"]) == (2, 1)

    # The same with one object: no object record, the command's own error.
    one = run_cli("get", f"s3://{bucket}/t/a.bin", tmp_path / "one.bin", "--key-file",
                  wrong_path, "--json", env=server_env)  # fmt: skip
    assert one.returncode == 3
    [error] = records(one)
    assert (error["type"], error["command"], error["error_type"]) == (
        "error", "get", "WrongKeyError",
    )  # fmt: skip
    assert (error["bucket"], error["key"], error["http_status"]) == (bucket, "t/a.bin", refused)
    assert error["exit_code"] == 3

    usage = run_cli("put", tree, f"s3://{bucket}/t/", "--key-file", key_path, "--json",
                    env=server_env)  # fmt: skip
    assert usage.returncode == 2
    [error] = records(usage)
    assert (error["type"], error["error_type"], error["exit_code"]) == ("error", "UsageError", 2)
    assert error["hint"] == "add --recursive to upload its files"


def test_watch_lines_fit_the_schema(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file: Any, admin: Any
) -> None:
    key_path, key = key_file
    inbox = tmp_path / "inbox"
    random_file(inbox / "p.nc", 3000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ssec_transfer", "watch", str(inbox), f"s3://{bucket}/in/",
         "--key-file", str(key_path), "--interval", "0.1", "--settle", "0.2", "--json"],
        env=server_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not admin.list_objects_v2(Bucket=bucket, Prefix="in/").get("Contents"):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the watcher uploaded nothing"
            time.sleep(0.1)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode in (0, 130), err
    lines = validate_lines(out)
    [sent] = [r for r in lines if r["type"] == "object"]
    assert (sent["operation"], sent["status"], sent["key"], sent["relative_path"]) == (
        "upload", "ok", "in/p.nc", "p.nc",
    )  # fmt: skip
    assert (sent["source"], sent["size"]) == (str(inbox / "p.nc"), 3000)
    assert sent["key_fingerprint"] == key.fingerprint
    if proc.returncode == 0:
        summary = lines[-1]
        assert (summary["type"], summary["command"], summary["ok"], summary["bytes"]) == (
            "summary", "watch", 1, 3000,
        )  # fmt: skip


def test_quiet_and_only_show_errors_leave_stderr_to_failures(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, _ = key_file
    src = random_file(tmp_path / "f.bin", 1000)
    env = {**server_env, "SSEC_KEY": SSECustomerKey.generate().export_base64()}
    url = f"s3://{bucket}/q/f.bin"
    loud = run_cli("put", src, url, "--key-env", "SSEC_KEY", env=env)
    assert loud.returncode == 0, loud.stderr
    assert "saved nowhere else" in loud.stderr
    assert "uploaded" in loud.stderr
    # --only-show-errors keeps the warning about a key saved nowhere; --quiet drops it too.
    shown = run_cli("put", src, url, "--key-env", "SSEC_KEY", "--only-show-errors", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "saved nowhere else" in shown.stderr
    assert "uploaded" not in shown.stderr
    quiet = run_cli("put", src, url, "--key-env", "SSEC_KEY", "--quiet", "--progress", env=env)
    assert (quiet.returncode, quiet.stderr, quiet.stdout) == (0, "", "")

    # JSON on stdout is the same with --quiet.
    as_json = run_cli("put", src, url, "--key-file", key_path, "--json", "-q", env=server_env)
    assert (as_json.returncode, as_json.stderr) == (0, "")
    assert [r["status"] for r in records(as_json)] == ["ok"]

    tree = tmp_path / "tree"
    random_file(tree / "a.bin", 10)
    os.mkfifo(tree / "pipe")  # cannot be sent: a failure, so it is shown
    for flag in ("--quiet", "--only-show-errors"):
        bulk = run_cli("put", tree, f"s3://{bucket}/qt/", "--recursive", "--key-file", key_path,
                       flag, env=server_env)  # fmt: skip
        assert bulk.returncode == 1
        assert "1 transferred, 0 skipped, 1 failed" in bulk.stderr
        assert f"failed: {tree / 'pipe'}: special file" in bulk.stderr
    (tree / "pipe").unlink()
    clean = run_cli("put", tree, f"s3://{bucket}/qt/", "--recursive", "--key-file", key_path,
                    "--quiet", env=server_env)  # fmt: skip
    assert (clean.returncode, clean.stderr) == (0, "")

    for argv in (
        ["get", url, tmp_path / "o.bin", "--key-file", key_path],
        ["cp", url, f"s3://{bucket}/q/c.bin", "--source-key-file", key_path, "--key-file",
         key_path],
        ["rm", f"s3://{bucket}/qt/", "--recursive"],
    ):  # fmt: skip
        done = run_cli(*argv, "--quiet", env=server_env)
        assert (done.returncode, done.stderr, done.stdout) == (0, "", ""), argv
    gone = run_cli("rm", f"s3://{bucket}/q/f.bin", "--quiet", "--json", env=server_env)
    assert gone.stderr == ""
    assert [r["type"] for r in records(gone)] == ["object", "summary"]

    # A failure still speaks, with its hint.
    missing = run_cli("get", f"s3://{bucket}/q/none", tmp_path / "n.bin", "--key-file",
                      key_path, "--quiet", env=server_env)  # fmt: skip
    assert missing.returncode == 1
    assert "error:" in missing.stderr


def test_help_explains_quiet_and_json(server_env: dict[str, str]) -> None:
    for command in ("put", "get", "cp", "rotate", "rm", "watch"):
        shown = run_cli(command, "--help", env=server_env)
        assert shown.returncode == 0
        text = " ".join(shown.stdout.split())
        assert "--only-show-errors" in text, command
        assert "--quiet" in text, command
        assert "docs/json.md" in text, command
