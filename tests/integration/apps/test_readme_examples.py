"""The README's Python examples run as written against a real server: each ```python block
of its "Python API" section, with the embedded server's endpoint and a bucket of the test's
own in place of the placeholders `https://s3.example.com` and `bucket`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ssec_transfer import SSECustomerKey
from ssec_transfer.s3.sse import sse_params

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[3] / "README.md"


def _examples() -> list[str]:
    text = README.read_text()
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_readme_has_python_examples() -> None:
    assert len(_examples()) >= 3


@pytest.mark.parametrize("index", range(len(_examples())))
def test_a_readme_example_runs_as_written(
    index: int, tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str]
) -> None:
    code = _examples()[index]
    code = code.replace("https://s3.example.com", server_env["AWS_ENDPOINT_URL"])
    code = re.sub(r'"bucket"', f'"{bucket}"', code)
    key = SSECustomerKey.generate()
    key.write_new_file(tmp_path / "sse-c.key")
    (tmp_path / "product.nc").write_bytes(b"netcdf " * 1000)
    (tmp_path / "products").mkdir()
    for name in ("a.nc", "b.nc"):
        (tmp_path / "products" / name).write_bytes(name.encode() * 100)
    env = {**server_env, "SSEC_KEY": key.export_base64()}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # What the example wrote is on the server, readable with the key.
    listed = admin.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert listed, "the example stored nothing"
    for obj in listed:
        admin.head_object(Bucket=bucket, Key=obj["Key"], **sse_params(key))
