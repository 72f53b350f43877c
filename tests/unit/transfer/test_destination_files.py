"""Temporary download files: locked while written, swept only when stale and ours."""

from __future__ import annotations

import os
from pathlib import Path

from ssec_transfer.transfer.destination import (
    Destination,
    TempFile,
    remove_stale_temp_files,
    stale_temp_files,
)


def _leftover(folder: Path, name: str, mode: int = 0o600) -> Path:
    path = folder / name
    path.write_bytes(b"partial")
    path.chmod(mode)
    return path


def test_only_unlocked_files_of_ours_are_stale(tmp_path: Path) -> None:
    stale = _leftover(tmp_path, ".a.nc.ssec-transfer-123-456")
    users_own = _leftover(tmp_path, ".b.nc.ssec-transfer-1-2", mode=0o644)
    journaled = _leftover(tmp_path, ".c.nc.ssec-transfer-7-8")
    other = _leftover(tmp_path, "a.nc")
    live = TempFile(Destination(tmp_path / "d.nc", "file"), size=10)
    try:
        assert stale_temp_files(tmp_path, spare=[str(journaled)]) == [stale]
        assert remove_stale_temp_files(tmp_path, spare=[str(journaled)]) == [stale]
        assert not stale.exists()
        assert [p.exists() for p in (users_own, journaled, other)] == [True, True, True]
        assert live.path.exists()
    finally:
        live.discard()


def test_a_temporary_file_reserves_its_size_and_is_private(tmp_path: Path) -> None:
    temp = TempFile(Destination(tmp_path / "x.bin", "file"), size=4096)
    try:
        st = os.stat(temp.path)
        assert (st.st_size, st.st_mode & 0o777) == (4096, 0o600)
        assert len(temp.path.name) <= 255
    finally:
        temp.discard()
    assert list(tmp_path.iterdir()) == []
