"""`ls`: buckets, or objects one level at a time, like `aws s3 ls`, with the fingerprint of the
key that protects each object where this machine's ledger recorded it.

The lines are aws's (date, size, name; `PRE name/` for a folder) with one column more before
the name: the key's fingerprint, 24 characters (`?` where the ledger does not know the
object, `-` for a delete marker), so names still line up and may hold spaces. The formatting
is pure (`object_line`, `prefix_line`, ...); the listing is the engine's.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ssec_transfer.cli.common import engine_for
from ssec_transfer.cli.options import CommandFactory, Handler, add_connection
from ssec_transfer.cli.output import print_json
from ssec_transfer.core.errors import UsageError
from ssec_transfer.core.report import listing_record, summary_record
from ssec_transfer.core.units import listing_size
from ssec_transfer.s3.urls import parse_s3_url

if TYPE_CHECKING:
    from ssec_transfer.s3.listing import ListedBucket, ListedObject, ListedPrefix

FINGERPRINT_WIDTH = 24  # base64 of an MD5
VERSION_WIDTH = 32  # AWS's and Ceph's version ids
NULL_VERSION = "null"  # S3's name for the version of an object written while unversioned


def register(command: CommandFactory) -> None:
    ls = command(
        "ls",
        "list buckets, or objects one level at a time like aws s3 ls, with key fingerprints",
        "Without an argument (or with s3://): the buckets, with their creation dates. With "
        "s3://BUCKET[/PREFIX]: the objects one level down, a `PRE name/` line per folder, as "
        "`aws s3 ls` shows them; PREFIX is a plain prefix (s3://b/dir/ lists inside dir, "
        "s3://b/dir/ab what in dir starts with ab). Each object line is: date (local time), "
        "size, the fingerprint of the key protecting it (as recorded in this machine's "
        "ledger by the transfer that wrote or read it; `?` when the ledger does not know "
        "that object, `-` for a delete marker), then the name relative to the folder "
        "listed (the whole key with --recursive). No SSE-C key is needed.\n\n"
        "  ssec-transfer ls                                     # aws s3 ls\n"
        "  ssec-transfer ls s3://bucket/l1/ --human-readable    # aws s3 ls s3://bucket/l1/ "
        "--human-readable\n"
        "  ssec-transfer ls s3://bucket/l1/ --recursive --summarize\n"
        "  ssec-transfer ls s3://bucket/l1/x.nc --versions        # a version id column; "
        "`null` where unversioned",
    )
    ls.add_argument("target", nargs="?", metavar="s3://BUCKET[/PREFIX]")
    ls.add_argument(
        "-r", "--recursive", action="store_true", help="every object under the prefix, whole keys"
    )
    ls.add_argument(
        "--human-readable",
        action="store_true",
        help="sizes in binary units (150.0 MiB) instead of bytes",
    )
    ls.add_argument(
        "--summarize", action="store_true", help="end with the total number and size of objects"
    )
    ls.add_argument(
        "--versions",
        action="store_true",
        help="every version and delete marker, newest first, with a version id column "
        "(`null` for an object written while the bucket was not versioned; null in --json)",
    )
    ls.add_argument(
        "--json",
        action="store_true",
        help='one JSON line per entry ("schema": 1, "type": "listing"; docs/json.md), told '
        'apart by "entry": "object" (bucket, key, size, version_id, is_latest, last_modified, '
        'etag, delete_marker, key_fingerprint), "prefix" (bucket, prefix) or "bucket" '
        '(bucket, creation_date); with --summarize a "summary" line',
    )
    ls.add_argument("--ledger", type=Path, metavar="PATH", help="ledger database to consult")
    add_connection(ls)


# -- lines (pure) ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """The columns of one listing: the same for every line, so names line up."""

    human: bool = False
    versions: bool = False

    @property
    def size_width(self) -> int:
        # aws's width for human sizes; bytes up to 931 GiB still fit.
        return 10 if self.human else 12

    def size(self, n: int) -> str:
        return listing_size(n) if self.human else str(n)


def local_time(iso: str | None) -> str:
    """An ISO 8601 instant as aws prints it: local time, to the second; blank when unknown."""
    if not iso:
        return " " * 19
    return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def display_name(key: str, base: str) -> str:
    """`key` relative to the folder `base` listed (aws prints `a.nc` for `l1/a.nc` when
    listing `l1/`); the whole key when `base` is empty (--recursive, or the bucket's root)."""
    return key[len(base) :] if base and key.startswith(base) else key


def listing_base(prefix: str) -> str:
    """The folder a one-level listing of `prefix` is in: up to and including its last "/"."""
    return prefix[: prefix.rfind("/") + 1]


def object_line(obj: ListedObject, layout: Layout, base: str = "") -> str:
    size = "-" if obj.delete_marker else layout.size(obj.size)
    fingerprint = "-" if obj.delete_marker else obj.key_fingerprint or "?"
    line = f"{local_time(obj.last_modified)} {size:>{layout.size_width}} "
    line += f"{fingerprint:<{FINGERPRINT_WIDTH}} "
    if layout.versions:
        line += f"{obj.version_id or NULL_VERSION:<{VERSION_WIDTH}} "
    line += display_name(obj.key, base)
    return line + (" (delete marker)" if obj.delete_marker else "")


def prefix_line(prefix: ListedPrefix, layout: Layout, base: str = "") -> str:
    """aws's `PRE name/`, with PRE in the size column and the name in the names' column."""
    line = f"{'':19} {'PRE':>{layout.size_width}} {'':<{FINGERPRINT_WIDTH}} "
    if layout.versions:
        line += f"{'':<{VERSION_WIDTH}} "
    return line + display_name(prefix.prefix, base)


def bucket_line(bucket: ListedBucket) -> str:
    return f"{local_time(bucket.creation_date)} {bucket.name}"


@dataclass
class Totals:
    """What --summarize counts: objects (versions, with --versions) and their bytes; delete
    markers and folders apart."""

    objects: int = 0
    bytes: int = 0
    delete_markers: int = 0
    prefixes: int = 0

    def add(self, obj: ListedObject) -> None:
        if obj.delete_marker:
            self.delete_markers += 1
        else:
            self.objects += 1
            self.bytes += obj.size

    def lines(self, layout: Layout) -> list[str]:
        """aws's two lines, after a blank one; a third for delete markers, if any."""
        size = listing_size(self.bytes) if layout.human else str(self.bytes)
        out = ["", f"Total Objects: {self.objects}", f"   Total Size: {size}"]
        if self.delete_markers:
            out.append(f"Delete Markers: {self.delete_markers}")
        return out

    def to_dict(self) -> dict[str, object]:
        return summary_record(
            "ls",
            objects=self.objects,
            bytes=self.bytes,
            delete_markers=self.delete_markers,
            prefixes=self.prefixes,
        )


# -- the command ---------------------------------------------------------------------------------


def _object_dict(obj: ListedObject) -> dict[str, object]:
    return listing_record("object", **obj.to_dict())


async def _ls_buckets(args: argparse.Namespace) -> int:
    async with engine_for(args) as engine:
        buckets = await engine.list_buckets()
    for bucket in buckets:
        if args.json:
            print_json(
                listing_record("bucket", bucket=bucket.name, creation_date=bucket.creation_date)
            )
        else:
            print(bucket_line(bucket))
    return 0


async def cmd_ls(args: argparse.Namespace) -> int:
    if args.target in (None, "s3://"):
        given = [f"--{n.replace('_', '-')}" for n in ("recursive", "versions", "summarize")
                 if getattr(args, n, False)]  # fmt: skip
        if given:
            raise UsageError(
                f"{', '.join(given)} lists objects, but no bucket was named: `ls` alone lists "
                "the buckets",
                hint="name what to list: ssec-transfer ls s3://BUCKET/ " + " ".join(given),
            )
        return await _ls_buckets(args)
    from ssec_transfer.s3.listing import ListedObject

    url = parse_s3_url(args.target)
    layout = Layout(human=args.human_readable, versions=args.versions)
    totals = Totals()
    base = "" if args.recursive else listing_base(url.key)
    async with engine_for(args) as engine:
        entries: AsyncIterator[ListedObject | ListedPrefix] = (
            engine.ls(url.bucket, url.key, versions=args.versions)
            if args.recursive
            else engine.ls_level(url.bucket, url.key, versions=args.versions)
        )
        async for entry in entries:
            if isinstance(entry, ListedObject):
                totals.add(entry)
                if args.json:
                    print_json(_object_dict(entry))
                else:
                    print(object_line(entry, layout, base))
                continue
            totals.prefixes += 1
            if args.json:
                print_json(listing_record("prefix", **entry.to_dict()))
            else:
                print(prefix_line(entry, layout, base))
    if args.summarize:
        if args.json:
            print_json(totals.to_dict())
        else:
            print("\n".join(totals.lines(layout)))
    return 0


HANDLERS: dict[str, Handler] = {"ls": cmd_ls}
