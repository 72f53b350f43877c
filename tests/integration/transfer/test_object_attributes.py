"""`put --content-type/--metadata/--storage-class` set what a HEAD shows, beside the sealed
source facts; `--no-clobber` never replaces an object: the HEAD before the upload skips it,
and If-None-Match on PutObject / CompleteMultipartUpload refuses one that appeared since."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from ssec_transfer import ObjectExistsError, SSECustomerKey, TransferConfig, TransferEngine
from ssec_transfer.core.plan import MiB
from ssec_transfer.keys.seal import facts_in
from ssec_transfer.s3.sse import sse_params
from ssec_transfer.servers.base import ServerInfo
from tests.support.helpers import random_file, run_cli, run_cli_bytes

pytestmark = pytest.mark.integration

SMALL_PARTS = ("--multipart-threshold", "5MiB", "--part-size", "5MiB")


def _uploads(admin: Any, bucket: str) -> list[Any]:
    return list(admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def _body(admin: Any, bucket: str, key: str, sse: SSECustomerKey | None = None) -> bytes:
    params = sse_params(sse) if sse else {}
    return bytes(admin.get_object(Bucket=bucket, Key=key, **params)["Body"].read())


STORAGE_CLASS_KEPT = {"seaweedfs": "STANDARD_IA", "ceph": "STANDARD"}


@pytest.mark.parametrize("size", [1000, 6 * MiB])
def test_put_sets_content_type_metadata_and_storage_class(
    s3_server: ServerInfo, bucket: str, server_env: dict[str, str], admin: Any,
    key_file: tuple[Path, SSECustomerKey], tmp_path: Path, size: int,
) -> None:  # fmt: skip
    key_path, key = key_file
    src = random_file(tmp_path / "granule.nc", size)
    # SeaweedFS keeps any class name as given (it has no tiers behind it); Ceph RGW takes only
    # its placement targets' classes, STANDARD by default, and does not echo STANDARD.
    storage_class = STORAGE_CLASS_KEPT[s3_server.name]
    result = run_cli(
        "put", src, f"s3://{bucket}/granule.nc", "--key-file", key_path, *SMALL_PARTS,
        "--content-type", "application/x-netcdf", "--metadata", "project=goes-r",
        "--metadata", '{"Level": "L1b"}', "--storage-class", storage_class, env=server_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    head = admin.head_object(Bucket=bucket, Key="granule.nc", **sse_params(key))
    assert head["ContentType"] == "application/x-netcdf"
    assert head["Metadata"]["project"] == "goes-r"
    assert head["Metadata"]["level"] == "L1b"  # S3 folds names to lower case
    assert head.get("StorageClass", "STANDARD") == storage_class
    facts = facts_in(head["Metadata"], key, bucket, "granule.nc")  # the seal is still there
    assert facts is not None
    assert facts.size == size
    assert _body(admin, bucket, "granule.nc", key) == src.read_bytes()


def test_stream_put_takes_the_attributes_and_default_type_is_guessed(
    bucket: str, server_env: dict[str, str], admin: Any, key_file: tuple[Path, SSECustomerKey],
    tmp_path: Path,
) -> None:  # fmt: skip
    key_path, key = key_file
    streamed = run_cli_bytes(
        "put", "-", f"s3://{bucket}/s.bin", "--key-file", key_path, "--metadata", "a=b",
        "--content-type", "text/plain", env=server_env, input=b"streamed",
    )  # fmt: skip
    assert streamed.returncode == 0, streamed.stderr
    head = admin.head_object(Bucket=bucket, Key="s.bin", **sse_params(key))
    assert (head["ContentType"], head["Metadata"]) == ("text/plain", {"a": "b"})
    (tmp_path / "page.html").write_text("<p>")
    result = run_cli("put", tmp_path / "page.html", f"s3://{bucket}/page.html",
                     "--key-file", key_path, env=server_env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (
        admin.head_object(Bucket=bucket, Key="page.html", **sse_params(key))["ContentType"]
        == "text/html"
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("big=" + "x" * 2000, "at most"),
        ("ssec-transfer=mine", "reserved for the sealed source facts"),
        ("name=café", "printable ASCII"),
        ("no-equals-sign", "is not NAME=VALUE"),
        ("bad name=1", "not a valid header name"),
    ],
)
def test_metadata_s3_cannot_carry_is_refused_before_any_request(
    bucket: str, server_env: dict[str, str], admin: Any, key_file: tuple[Path, SSECustomerKey],
    tmp_path: Path, option: str, message: str,
) -> None:  # fmt: skip
    key_path, _ = key_file
    src = random_file(tmp_path / "f.bin", 100)
    result = run_cli("put", src, f"s3://{bucket}/f.bin", "--key-file", key_path,
                     "--metadata", option, env=server_env)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert admin.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


@pytest.mark.parametrize("size", [1000, 11 * MiB])
def test_no_clobber_leaves_an_existing_object_and_writes_a_new_one(
    bucket: str, server_env: dict[str, str], admin: Any, key_file: tuple[Path, SSECustomerKey],
    tmp_path: Path, size: int,
) -> None:  # fmt: skip
    key_path, key = key_file
    src = random_file(tmp_path / "f.bin", size)
    admin.put_object(Bucket=bucket, Key="old.bin", Body=b"the original", **sse_params(key))
    result = run_cli("put", src, f"s3://{bucket}/old.bin", "--key-file", key_path,
                     "--no-clobber", *SMALL_PARTS, env=server_env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"skipped: s3://{bucket}/old.bin exists (--no-clobber)" in result.stderr
    assert _body(admin, bucket, "old.bin", key) == b"the original"
    result = run_cli("put", src, f"s3://{bucket}/new.bin", "--key-file", key_path,
                     "--no-clobber", *SMALL_PARTS, "--json", env=server_env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "ok"
    assert _body(admin, bucket, "new.bin", key) == src.read_bytes()
    assert _uploads(admin, bucket) == []


def test_no_clobber_skips_an_existing_object_under_another_key_or_none(
    bucket: str, server_env: dict[str, str], admin: Any, key_file: tuple[Path, SSECustomerKey],
    tmp_path: Path,
) -> None:  # fmt: skip
    """The HEAD goes without a key: a plain object and one under another key count alike."""
    key_path, _ = key_file
    other = SSECustomerKey.generate()
    admin.put_object(Bucket=bucket, Key="plain", Body=b"plain")
    admin.put_object(Bucket=bucket, Key="other", Body=b"other", **sse_params(other))
    src = random_file(tmp_path / "f.bin", 10)
    for name in ("plain", "other"):
        streamed = run_cli_bytes(
            "put", "-", f"s3://{bucket}/{name}", "--key-file", key_path, "--no-clobber",
            "--json", env=server_env, input=b"new",
        )  # fmt: skip
        assert streamed.returncode == 0, streamed.stderr
        line = json.loads(streamed.stdout)
        assert (line["status"], line["reason"]) == ("skipped", "exists")
        result = run_cli("put", src, f"s3://{bucket}/{name}", "--key-file", key_path,
                         "--no-clobber", env=server_env)  # fmt: skip
        assert result.returncode == 0, result.stderr
    assert _body(admin, bucket, "plain") == b"plain"
    assert _body(admin, bucket, "other", other) == b"other"


def test_no_clobber_in_bulk_runs_reports_existing_objects_as_skipped(
    bucket: str, server_env: dict[str, str], admin: Any, key_file: tuple[Path, SSECustomerKey],
    tmp_path: Path,
) -> None:  # fmt: skip
    key_path, key = key_file
    folder = tmp_path / "products"
    for name, size in (("a.nc", 100), ("b.nc", 6 * MiB), ("c.nc", 100), ("d.nc", 6 * MiB)):
        random_file(folder / name, size)
    for name in ("a.nc", "b.nc"):
        admin.put_object(Bucket=bucket, Key=f"l1/{name}", Body=b"old " + name.encode(),
                         **sse_params(key))  # fmt: skip
    result = run_cli("put", folder, f"s3://{bucket}/l1/", "--recursive", "--key-file", key_path,
                     "--no-clobber", "--json", *SMALL_PARTS, env=server_env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    outcomes = {line["destination"]: line for line in lines if line["type"] == "object"}
    for name, status in (("a.nc", "skipped"), ("b.nc", "skipped"), ("c.nc", "ok"),
                         ("d.nc", "ok")):  # fmt: skip
        outcome = outcomes[f"s3://{bucket}/l1/{name}"]
        assert outcome["status"] == status, outcome
        assert outcome["reason"] == ("exists" if status == "skipped" else None)
    assert (lines[-1]["skipped"], lines[-1]["ok"]) == (2, 2)
    assert "2 transferred, 2 skipped, 0 failed" in result.stderr
    for name in ("a.nc", "b.nc"):
        assert _body(admin, bucket, f"l1/{name}", key) == b"old " + name.encode()
    for name in ("c.nc", "d.nc"):
        assert _body(admin, bucket, f"l1/{name}", key) == (folder / name).read_bytes()
    # A manifest run takes the same path: everything exists now.
    manifest = tmp_path / "todo.jsonl"
    manifest.write_text(
        "".join(
            json.dumps({"source": str(folder / n), "destination": f"s3://{bucket}/l1/{n}"}) + "\n"
            for n in ("a.nc", "d.nc")
        )
    )
    result = run_cli("put", "--manifest", manifest, "--key-file", key_path, "--no-clobber",
                     "--json", env=server_env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["skipped"] == 2
    assert _body(admin, bucket, "l1/a.nc", key) == b"old a.nc"
    assert _uploads(admin, bucket) == []


# -- an object that appears after the HEAD: the server's If-None-Match refuses it ---------------


@pytest.mark.anyio
async def test_an_object_written_during_a_multipart_upload_is_kept_and_the_upload_aborted(
    bucket: str, admin: Any, engine_kwargs: dict[str, str], tmp_path: Path
) -> None:
    key = SSECustomerKey.generate()
    src = random_file(tmp_path / "f.bin", 11 * MiB)
    config = TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB, concurrency=1)

    def racing_writer(done: int, total: int) -> None:  # after the HEAD, before Complete
        if not _exists(admin, bucket, "f.bin"):
            admin.put_object(Bucket=bucket, Key="f.bin", Body=b"racer", **sse_params(key))

    async with TransferEngine(
        **_where(engine_kwargs), config=config, no_clobber=True, resume=True
    ) as engine:  # fmt: skip
        with pytest.raises(ObjectExistsError) as raised:
            await engine.upload(src, bucket, "f.bin", sse_key=key, progress=racing_writer)
    assert raised.value.context.operation == "CompleteMultipartUpload"
    assert _body(admin, bucket, "f.bin", key) == b"racer"
    assert _uploads(admin, bucket) == []  # aborted, --resume or not


@pytest.mark.anyio
async def test_an_object_written_while_a_stream_is_read_is_kept(
    bucket: str, admin: Any, engine_kwargs: dict[str, str]
) -> None:
    key = SSECustomerKey.generate()

    class RacingReader(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            if not _exists(admin, bucket, "s.bin"):
                admin.put_object(Bucket=bucket, Key="s.bin", Body=b"racer", **sse_params(key))
            return super().read(size)

    async with TransferEngine(**_where(engine_kwargs), no_clobber=True) as engine:
        with pytest.raises(ObjectExistsError) as raised:
            await engine.upload_stream(RacingReader(b"late"), bucket, "s.bin", sse_key=key)
    assert raised.value.context.operation == "PutObject"
    assert _body(admin, bucket, "s.bin", key) == b"racer"


def _where(engine_kwargs: dict[str, str]) -> dict[str, Any]:
    return dict(engine_kwargs)


def _exists(admin: Any, bucket: str, key: str) -> bool:
    return bool(admin.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount", 0))


@pytest.mark.parametrize("size", [1000, 6 * MiB])
def test_a_storage_class_the_server_lacks_is_named_in_the_hint(
    s3_server: ServerInfo, bucket: str, server_env: dict[str, str], admin: Any,
    key_file: tuple[Path, SSECustomerKey], tmp_path: Path, size: int,
) -> None:  # fmt: skip
    """Ceph RGW refuses a class none of its placement targets has with a bare 400
    InvalidArgument: the error points at --storage-class, and nothing is written. SeaweedFS
    keeps any name, so there the object is written with it."""
    key_path, key = key_file
    src = random_file(tmp_path / "granule.nc", size)
    result = run_cli("put", src, f"s3://{bucket}/granule.nc", "--key-file", key_path,
                     *SMALL_PARTS, "--storage-class", "GLACIER_IR", env=server_env)  # fmt: skip
    if s3_server.name == "seaweedfs":
        assert result.returncode == 0, result.stderr
        head = admin.head_object(Bucket=bucket, Key="granule.nc", **sse_params(key))
        assert head["StorageClass"] == "GLACIER_IR"
        return
    assert result.returncode == 1
    assert "storage class 'GLACIER_IR'" in result.stderr
    assert "--storage-class" in result.stderr
    assert "Contents" not in admin.list_objects_v2(Bucket=bucket)
    assert _uploads(admin, bucket) == []
