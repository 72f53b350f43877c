"""What `sync` sends, skips and deletes: pure decisions over what each side is known to hold.

Equality is proven, strongest evidence first, without relying on this machine's ledger:

1. Sizes differ: send (no request needed beyond the listings).
2. The object carries sealed source facts (`keys.seal`) that open under the key: the file is
   the same when its mtime matches the sealed one, or, where the seal holds a CRC32C (a file
   sent with one PutObject), when the file's CRC32C matches it.
3. Otherwise a CRC32C known for this object: the ledger's (this very version), then the
   server's stored full-object checksum; the file is read and compared.
4. Otherwise size and time, as `aws s3 sync` does (an upload when the file is newer than the
   object, a download when the object is newer than the file), said as such in the output;
   `--checksum` reads the object instead.

Each verdict carries a short reason code for the JSON lines and the summary.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ssec_transfer.core.crc import digest_text
from ssec_transfer.keys.seal import SourceFacts

Direction = Literal["upload", "download", "copy"]
Action = Literal["send", "skip", "delete"]

# Reason codes, as the JSON lines carry them; what the summary says for each.
REASONS = {
    "new": "not at the destination",
    "size-differs": "size differs",
    "mtime-differs": "modification time differs from the sealed one",
    "checksum-differs": "CRC32C differs",
    "newer": "newer than the destination (size and time, as aws does)",
    "same-sealed": "same size and mtime as sealed by the upload",
    "same-checksum": "same CRC32C",
    "same-size-and-time": "same size, not newer (size and time only, as aws does)",
    "not-in-source": "not in the source",
}


@dataclass(frozen=True)
class Facts:
    """What is known of one side's copy of a path.

    A local file: size and mtime (and its CRC32C once read). An object: size, LastModified,
    and, once a HEAD was made, its sealed facts and the CRC32C of the ledger or server."""

    size: int
    mtime_ns: int | None = None  # a file's modification time, or an object's LastModified
    sealed: SourceFacts | None = None
    checksum: str | None = None  # `crc32c:BASE64` known without reading: ledger or server

    @property
    def sealed_checksum(self) -> str | None:
        if self.sealed is None or self.sealed.crc32c is None:
            return None
        return digest_text(self.sealed.crc32c)

    @property
    def any_checksum(self) -> str | None:
        return self.checksum or self.sealed_checksum


@dataclass(frozen=True)
class Verdict:
    """`send` or `skip`, and why. A `same-checksum` skip is provisional: the caller reads the
    local file's CRC32C and sends (`checksum-differs`) unless it equals `verify`, or, with
    `read_object`, the CRC32C of the object, read whole (`--checksum` with nothing recorded)."""

    action: Action
    reason: str
    verify: str | None = None  # the `crc32c:BASE64` the local file must have to be skipped
    read_object: bool = False


def needs_inspection(source: Facts, dest: Facts | None) -> bool:
    """Whether a HEAD (for sealed facts or a checksum) could change the verdict: only when
    both sides exist with the same size."""
    return dest is not None and dest.size == source.size


def verdict(
    source: Facts, dest: Facts | None, *, direction: Direction, checksum: bool = False
) -> Verdict:
    """What to do with one path, from what is known of both sides (see the module's order).
    `direction` says which side is an object that may carry a seal: the destination for an
    upload, the source for a download; for a copy both do."""
    if dest is None:
        return Verdict("send", "new")
    if dest.size != source.size:
        return Verdict("send", "size-differs")
    if direction == "copy":
        return _between_objects(source, dest, checksum=checksum)
    obj, local = (dest, source) if direction == "upload" else (source, dest)
    sealed = obj.sealed
    if sealed is not None:
        mtime_same = sealed.mtime_ns is not None and sealed.mtime_ns == local.mtime_ns
        if obj.sealed_checksum is not None and (checksum or not mtime_same):
            return Verdict("skip", "same-checksum", verify=obj.sealed_checksum)
        if mtime_same and not checksum:
            return Verdict("skip", "same-sealed")
        if not mtime_same:
            return Verdict("send", "mtime-differs")
    if obj.checksum is not None:
        return Verdict("skip", "same-checksum", verify=obj.checksum)
    if checksum:
        return Verdict("skip", "same-checksum", read_object=True)
    return _by_time(local, obj, direction)


def _by_time(local: Facts, obj: Facts, direction: Direction) -> Verdict:
    """aws's rule for objects without evidence: send only what is newer than its copy."""
    if local.mtime_ns is None or obj.mtime_ns is None:
        return Verdict("send", "newer")
    # LastModified has whole seconds: compare at that resolution.
    local_s, obj_s = local.mtime_ns // 10**9, obj.mtime_ns // 10**9
    newer = local_s > obj_s if direction == "upload" else obj_s > local_s
    return Verdict("send", "newer") if newer else Verdict("skip", "same-size-and-time")


def _between_objects(source: Facts, dest: Facts, *, checksum: bool) -> Verdict:
    """Both sides objects: their sealed facts, else their checksums, else aws's time rule.
    With `checksum` and no CRC32C on both sides, the copy is made (reading two objects to
    compare them costs more than copying one)."""
    a, b = source.sealed, dest.sealed
    crc_a, crc_b = source.any_checksum, dest.any_checksum
    if crc_a is not None and crc_b is not None:
        same = crc_a == crc_b
        return Verdict("skip", "same-checksum") if same else Verdict("send", "checksum-differs")
    if a is not None and b is not None:
        if not checksum and a.mtime_ns is not None and a.mtime_ns == b.mtime_ns:
            return Verdict("skip", "same-sealed")
        return Verdict("send", "mtime-differs")
    if checksum:
        return Verdict("send", "checksum-differs")
    if source.mtime_ns is None or dest.mtime_ns is None:
        return Verdict("send", "newer")
    newer = source.mtime_ns // 10**9 > dest.mtime_ns // 10**9
    return Verdict("send", "newer") if newer else Verdict("skip", "same-size-and-time")


def extra(source: Iterable[str], dest: Iterable[str]) -> list[str]:
    """Relative paths only at the destination: what `--delete` removes, in sorted order."""
    return sorted(set(dest) - set(source))
