"""What is transferred: random data sets generated once, and the scenarios that move them.

Random bytes, because SeaweedFS stores compressible data compressed and would flatter every
tool. Each file's SHA-256 is recorded at generation (SHA-NI makes it the fastest strong hash
here), so every download and read-back is checked against the bytes that were generated,
without reading the source again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
_CHUNK = 8 * MiB

Direction = Literal["up", "down"]


@dataclass(frozen=True)
class DataFile:
    rel: str  # path below the data set's root, "/"-separated; also the object name suffix
    size: int
    sha256: str


@dataclass(frozen=True)
class DataSet:
    name: str  # "1g", "small", "4g"
    root: Path
    files: tuple[DataFile, ...]

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def is_tree(self) -> bool:
        """Many files, moved as one folder (`--recursive`, `rclone copy`)."""
        return len(self.files) > 1

    def path(self, f: DataFile) -> Path:
        return self.root / f.rel


@dataclass(frozen=True)
class DataSpec:
    """How a data set is made: `count` files of `size` bytes (one file: no folder)."""

    name: str
    label: str
    count: int
    size: int

    def rels(self) -> list[str]:
        if self.count == 1:
            return [f"{self.name}.bin"]
        width = len(str(self.count - 1))
        return [f"{self.name}/{i:0{width}d}.bin" for i in range(self.count)]


# The sizes the issue asks for, and tiny ones for a smoke run (still above the 8 MiB multipart
# threshold for the large files, so the multipart paths of every tool run).
FULL_SPECS = (
    DataSpec("1g", "1 GiB", 1, 1 * GiB),
    DataSpec("small", "500 x 256 KiB", 500, 256 * KiB),
    DataSpec("4g", "4 GiB", 1, 4 * GiB),
)
QUICK_SPECS = (
    DataSpec("1g", "12 MiB (quick)", 1, 12 * MiB),
    DataSpec("small", "20 x 64 KiB (quick)", 20, 64 * KiB),
    DataSpec("4g", "24 MiB (quick)", 1, 24 * MiB),
)


@dataclass(frozen=True)
class Scenario:
    id: str  # "1g-up"
    data: str  # the DataSpec name
    direction: Direction
    label: str

    @property
    def group(self) -> str:
        return self.data


def scenarios_for(specs: Sequence[DataSpec]) -> list[Scenario]:
    """Upload before download per data set; the 1 GiB cases first, 4 GiB last."""
    out: list[Scenario] = []
    for spec in specs:
        for direction in ("up", "down"):
            verb = "upload" if direction == "up" else "download"
            out.append(
                Scenario(f"{spec.name}-{direction}", spec.name, direction, f"{spec.label} {verb}")
            )
    return out


def select_scenarios(
    all_scenarios: Sequence[Scenario], wanted: Sequence[str] | None
) -> list[Scenario]:
    """`wanted` holds scenario ids ("1g-up") or data set names ("small" = both directions)."""
    if not wanted:
        return list(all_scenarios)
    known = {s.id for s in all_scenarios} | {s.data for s in all_scenarios}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise ValueError(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(sorted(known))}"
        )
    return [s for s in all_scenarios if s.id in wanted or s.data in wanted]


# -- generation ------------------------------------------------------------------------------


def _write_random(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    tmp = path.with_name(path.name + ".part")
    with tmp.open("wb") as f:
        left = size
        while left:
            block = os.urandom(min(_CHUNK, left))
            digest.update(block)
            f.write(block)
            left -= len(block)
    tmp.replace(path)
    return digest.hexdigest()


def ensure_dataset(
    spec: DataSpec, base: Path, *, say: Callable[[str], None] = lambda _: None
) -> DataSet:
    """Reuse the files from an earlier run when their size and mtime still match the manifest."""
    manifest_path = base / f"{spec.name}.manifest.json"
    try:
        manifest: dict[str, dict[str, object]] = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    files: list[DataFile] = []
    generated = 0
    for rel in spec.rels():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = manifest.get(rel, {})
        try:
            st = path.stat()
            fresh = st.st_size == spec.size and entry.get("mtime_ns") == st.st_mtime_ns
        except OSError:
            fresh = False
        if fresh and isinstance(entry.get("sha256"), str):
            files.append(DataFile(rel, spec.size, str(entry["sha256"])))
            continue
        if generated == 0:
            say(f"generating {spec.label} of random data in {base}")
        generated += 1
        digest = _write_random(path, spec.size)
        manifest[rel] = {"sha256": digest, "mtime_ns": path.stat().st_mtime_ns}
        files.append(DataFile(rel, spec.size, digest))
    if generated:
        manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    if spec.count == 1:  # the root is the folder holding the single file
        return DataSet(spec.name, base, tuple(files))
    # A tree's root is its own folder; names inside it are what goes under the object prefix.
    inside = tuple(DataFile(f.rel.split("/", 1)[1], f.size, f.sha256) for f in files)
    return DataSet(spec.name, base / spec.name, inside)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as f:
        while n := f.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()
