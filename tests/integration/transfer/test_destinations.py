"""A download never replaces what it must not (`transfer.destination`): the run's key file,
keyring and ledger are refused; devices and FIFOs are written into; a replaced DEST keeps its
mode; a symlink is followed; stale temporary files are swept. And an upload to a missing
bucket fails the same way on every server instead of creating it."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ssec_transfer.core.plan import MiB
from tests.support.helpers import make_key_file, random_file, run_cli

pytestmark = pytest.mark.integration

DATA = b"the object's bytes\n"


@pytest.fixture
def stored(bucket: str, server_env: dict[str, str], key_file: Any, tmp_path: Path) -> str:
    """s3://bucket/d.txt holding DATA under the fixture's key."""
    src = tmp_path / "d.txt"
    src.write_bytes(DATA)
    key_path, _ = key_file
    assert run_cli("put", src, f"s3://{bucket}/d.txt", "--key-file", key_path,
                   env=server_env).returncode == 0  # fmt: skip
    return f"s3://{bucket}/d.txt"


def test_the_key_file_of_the_run_is_refused_as_dest(
    tmp_path: Path, stored: str, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, _ = key_file
    before = key_path.read_bytes()
    for dest in (key_path, tmp_path / "." / key_path.name):
        result = run_cli("get", stored, dest, "--key-file", key_path, env=server_env)
        assert result.returncode == 2, result.stderr
        assert "is the key file of this run" in result.stderr
    link = tmp_path / "hardlink.key"
    os.link(key_path, link)  # another name for the same file
    result = run_cli("get", stored, link, "--key-file", key_path, env=server_env)
    assert result.returncode == 2, result.stderr
    assert key_path.read_bytes() == before


def test_recursive_get_into_the_folder_of_the_key_file_spares_it(
    tmp_path: Path, bucket: str, server_env: dict[str, str]
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    key_path, _ = make_key_file(keys, "sse-c.key")
    before = key_path.read_bytes()
    for name in ("sse-c.key", "other.txt"):
        src = tmp_path / name
        src.write_bytes(DATA)
        assert run_cli("put", src, f"s3://{bucket}/p/{name}", "--key-file", key_path,
                       env=server_env).returncode == 0  # fmt: skip
    result = run_cli("get", f"s3://{bucket}/p/", keys, "--recursive", "--key-file", key_path,
                     "--json", env=server_env)  # fmt: skip
    assert result.returncode != 0, result.stderr
    assert "is the key file of this run" in result.stdout + result.stderr
    assert key_path.read_bytes() == before
    assert (keys / "other.txt").read_bytes() == DATA


def test_the_ledger_is_refused_as_dest(
    tmp_path: Path, stored: str, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, _ = key_file
    ledger = tmp_path / "ledger.sqlite"
    assert run_cli("head", stored, "--key-file", key_path, env=server_env).returncode == 0
    result = run_cli("get", stored, ledger, "--key-file", key_path, "--ledger", ledger,
                     env=server_env)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "is the ledger of this run" in result.stderr


def test_dev_null_is_written_into_not_replaced(
    stored: str, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, _ = key_file
    result = run_cli("get", stored, "/dev/null", "--key-file", key_path, env=server_env)
    assert result.returncode == 0, result.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_fifo_is_written_into_and_one_nobody_reads_is_refused(
    tmp_path: Path, stored: str, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, _ = key_file
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    lonely = run_cli("get", stored, fifo, "--key-file", key_path, env=server_env, timeout=60)
    assert lonely.returncode == 2, lonely.stderr
    assert "no process is reading the FIFO" in lonely.stderr
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    try:
        result = run_cli("get", stored, fifo, "--key-file", key_path, env=server_env, timeout=60)
    finally:
        if reader.is_alive():  # unblock the reader if the download never opened the FIFO
            with open(fifo, "wb"):
                pass
        reader.join(timeout=10)
    assert result.returncode == 0, result.stderr
    assert received == [DATA]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_socket_is_refused(
    tmp_path: Path, stored: str, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, _ = key_file
    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        result = run_cli("get", stored, path, "--key-file", key_path, env=server_env)
    assert result.returncode == 2, result.stderr
    assert "is a socket" in result.stderr


def test_a_replaced_dest_keeps_its_mode_and_a_new_one_follows_the_umask(
    tmp_path: Path, stored: str, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, _ = key_file
    private = tmp_path / "private.txt"
    private.write_bytes(b"old")
    private.chmod(0o600)
    assert run_cli("get", stored, private, "--key-file", key_path,
                   env=server_env).returncode == 0  # fmt: skip
    assert (private.read_bytes(), stat.S_IMODE(private.stat().st_mode)) == (DATA, 0o600)
    fresh = tmp_path / "fresh.txt"
    env = dict(server_env)
    result = subprocess.run(
        ["sh", "-c", 'umask 027 && exec "$@"', "sh", sys.executable, "-m", "ssec_transfer",
         "get", stored, str(fresh), "--key-file", str(key_path)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o640


def test_a_read_only_dest_is_refused_except_for_root(
    tmp_path: Path, stored: str, server_env: dict[str, str], key_file: Any
) -> None:
    """Like `cp`: a file its owner made read-only is not replaced, except by root (who may
    write anything), and then it stays read-only."""
    key_path, _ = key_file
    dest = tmp_path / "ro.txt"
    dest.write_bytes(b"old")
    dest.chmod(0o444)
    result = run_cli("get", stored, dest, "--key-file", key_path, env=server_env)
    if os.geteuid() == 0:
        assert result.returncode == 0, result.stderr
        assert (dest.read_bytes(), stat.S_IMODE(dest.stat().st_mode)) == (DATA, 0o444)
    else:
        assert result.returncode == 2, result.stderr
        assert "is read-only" in result.stderr
        assert dest.read_bytes() == b"old"


def test_a_symlink_dest_is_followed_and_a_dangling_one_refused(
    tmp_path: Path, stored: str, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, _ = key_file
    real = tmp_path / "real.txt"
    real.write_bytes(b"old")
    link = tmp_path / "link.txt"
    link.symlink_to(real.name)
    assert run_cli("get", stored, link, "--key-file", key_path,
                   env=server_env).returncode == 0  # fmt: skip
    assert link.is_symlink()
    assert real.read_bytes() == DATA
    dangling = tmp_path / "dangling.txt"
    dangling.symlink_to("no/such/folder/x")
    result = run_cli("get", stored, dangling, "--key-file", key_path, env=server_env)
    assert result.returncode == 2, result.stderr
    assert "symbolic link to no/such/folder/x, which does not exist" in result.stderr
    assert dangling.is_symlink()


def _kill_mid_download(
    env: dict[str, str], url: str, dest: Path, key_path: Path, signum: int = signal.SIGKILL
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ssec_transfer", "get", url, str(dest), "--key-file",
         str(key_path), "--concurrency", "1", "--part-size", "5MiB"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not [n for n in os.listdir(dest.parent) if ".ssec-transfer-" in n]:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signum)
    proc.communicate(timeout=30)


def _temp_files(folder: Path) -> list[str]:
    return [n for n in os.listdir(folder) if ".ssec-transfer-" in n]


def test_stale_temporary_files_are_swept_by_the_next_get_and_by_cleanup(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, _ = key_file
    src = random_file(tmp_path / "src.bin", 100 * MiB)
    url = f"s3://{bucket}/big"
    assert run_cli("put", src, url, "--key-file", key_path, env=server_env).returncode == 0
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    _kill_mid_download(server_env, url, out / "a.bin", key_path)
    assert len(_temp_files(out)) == 1
    # The next download into that folder removes it.
    assert run_cli("get", url, out / "a.bin", "--key-file", key_path,
                   env=server_env).returncode == 0  # fmt: skip
    assert _temp_files(out) == []
    assert (out / "a.bin").read_bytes() == src.read_bytes()
    # `cleanup FOLDER` finds them anywhere below, lists them with --dry-run, then removes them.
    _kill_mid_download(server_env, url, out / "sub" / "b.bin", key_path)
    dry = run_cli("cleanup", out, "--dry-run", env=server_env)
    assert dry.returncode == 0, dry.stderr
    assert "found temp-file" in dry.stdout
    assert len(_temp_files(out / "sub")) == 1
    done = run_cli("cleanup", out, env=server_env)
    assert done.returncode == 0, done.stderr
    assert "removed temp-file" in done.stdout
    assert _temp_files(out / "sub") == []


def test_cleanup_spares_the_temporary_file_of_a_running_download(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, _ = key_file
    src = random_file(tmp_path / "src.bin", 150 * MiB)
    url = f"s3://{bucket}/big"
    assert run_cli("put", src, url, "--key-file", key_path, env=server_env).returncode == 0
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ssec_transfer", "get", url, str(out / "a.bin"), "--key-file",
         str(key_path), "--concurrency", "1", "--part-size", "5MiB"],
        env=server_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not _temp_files(out):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    swept = run_cli("cleanup", out, env=server_env)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "removed 0 leftover(s)" in swept.stderr
    assert (out / "a.bin").read_bytes() == src.read_bytes()


@pytest.mark.parametrize("how", ["file", "stream", "copy"])
def test_a_missing_bucket_is_never_created(
    tmp_path: Path, stored: str, admin: Any, server_env: dict[str, str], key_file: Any,
    how: str,
) -> None:  # fmt: skip
    key_path, _ = key_file
    missing = f"no-such-bucket-{how}-{os.getpid()}"
    src = tmp_path / "x.txt"
    src.write_bytes(DATA)
    if how == "file":
        result = run_cli("put", src, f"s3://{missing}/x", "--key-file", key_path,
                         env=server_env)  # fmt: skip
    elif how == "stream":
        result = subprocess.run(
            [sys.executable, "-m", "ssec_transfer", "put", "-", f"s3://{missing}/x",
             "--key-file", str(key_path)],
            env=server_env, input=DATA.decode(), capture_output=True, text=True, check=False,
        )  # fmt: skip
    else:
        result = run_cli("cp", stored, f"s3://{missing}/x", "--key-file", key_path,
                         "--source-key-file", key_path, env=server_env)  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert f"bucket {missing!r} does not exist; nothing was written" in result.stderr
    names = [b["Name"] for b in admin.list_buckets()["Buckets"]]
    assert missing not in names


def test_a_dest_name_of_255_bytes_still_gets_a_temporary_file(
    tmp_path: Path, stored: str, server_env: dict[str, str], key_file: Any
) -> None:
    """The temporary name keeps only part of DEST's name: the whole must fit NAME_MAX."""
    key_path, _ = key_file
    dest = tmp_path / ("n" * 255)
    result = run_cli("get", stored, dest, "--key-file", key_path, env=server_env)
    assert result.returncode == 0, result.stderr
    assert dest.read_bytes() == DATA
    assert _temp_files(tmp_path) == []


def test_a_dest_ending_in_a_slash_is_a_folder_made_if_missing(
    tmp_path: Path, stored: str, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, _ = key_file
    dest = tmp_path / "new" / "dir"
    result = run_cli("get", stored, f"{dest}/", "--key-file", key_path, env=server_env)
    assert result.returncode == 0, result.stderr
    assert (dest / "d.txt").read_bytes() == DATA


def test_recursive_get_refuses_keys_without_a_path_of_their_own(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str], key_file: Any
) -> None:
    """Keys `d/a`, `d/a/a` and `d/a/b`: `d/a` cannot be a file where `a/` is a folder; it is
    refused (exit 1) instead of landing in `a/a` over another object."""
    from ssec_transfer.s3.sse import sse_params

    key_path, key = key_file
    for name in ("a", "a/a", "a/b"):
        admin.put_object(Bucket=bucket, Key=f"d/{name}", Body=name.encode(), **sse_params(key))
    out = tmp_path / "out"
    result = run_cli("get", f"s3://{bucket}/d/", out, "--recursive", "--key-file", key_path,
                     env=server_env)  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "2 transferred" in result.stderr
    assert "need a folder" in result.stderr
    assert (out / "a" / "a").read_bytes() == b"a/a"
    assert (out / "a" / "b").read_bytes() == b"a/b"


def test_sources_whose_size_cannot_be_known_or_read_are_refused_clearly(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, _ = key_file
    proc_file = run_cli("put", "/proc/self/status", f"s3://{bucket}/status", "--key-file",
                        key_path, env=server_env)  # fmt: skip
    assert proc_file.returncode == 2, proc_file.stderr
    assert "says it holds 0 bytes but has content" in proc_file.stderr
    closed = subprocess.run(
        [sys.executable, "-m", "ssec_transfer", "put", "-", f"s3://{bucket}/x", "--key-file",
         str(key_path)],
        env=server_env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
        preexec_fn=lambda: os.close(0),
    )  # fmt: skip
    assert closed.returncode == 2, closed.stderr
    assert "standard input, but it is closed" in closed.stderr
    long_name = run_cli("get", f"s3://{bucket}/x", tmp_path / ("n" * 300), "--key-file",
                        key_path, env=server_env)  # fmt: skip
    assert long_name.returncode in (1, 2), long_name.stderr
    assert "Traceback" not in long_name.stderr
