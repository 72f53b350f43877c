"""The `ledger` and `keyring` commands: which key protects which object, and named keys kept
encrypted at rest.

`add_commands(sub, command)` adds both to the main parser and returns their handlers, keyed by
the top-level command name, for `cli.main` to run. Listings show names and fingerprints only;
nothing here prints, logs or accepts a key on the command line. anyio, the keyring and the
ledger (SQLite) are imported by the handlers that use them: adding the parsers loads neither.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ssec_transfer.cli.options import CommandFactory, Handler, add_ledger, command_factory, load_key
from ssec_transfer.cli.output import print_json
from ssec_transfer.core.errors import NotFoundError, UsageError
from ssec_transfer.keys.redact import key_form
from ssec_transfer.s3.urls import parse_s3_url

if TYPE_CHECKING:
    from ssec_transfer.keys.keyring import Keyring
    from ssec_transfer.state.ledger import Ledger, LedgerEntry

_SHOWN_OBJECTS = 20  # objects named in a refusal message; the rest are counted


def add_commands(sub: Any, command: CommandFactory | None = None) -> dict[str, Handler]:
    """Add `ledger ...` and `keyring ...` to the subparsers `sub`, through the main parser's
    `command(name, help, description)` factory when given (same epilog and formatting);
    return {command name: async handler}."""

    make = command or command_factory(sub, epilog=None)
    _add_ledger(make)
    _add_keyring(make)
    return dict(HANDLERS)


def _subcommands(parser: argparse.ArgumentParser, dest: str) -> Any:
    return parser.add_subparsers(dest=dest, required=True, metavar="ACTION")


def _keyring_option(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument(
        "--keyring-file",
        type=Path,
        metavar="PATH",
        help="keyring file (default: keyring.json beside the ledger)",
    )


def _add_ledger(command: CommandFactory) -> None:
    ledger = command(
        "ledger",
        "which key protects which object: show, export or import the local ledger",
        "The ledger records every object version this machine wrote, read, copied or rotated, "
        "with the fingerprint of its key (never the key). It is SQLite under "
        "$XDG_DATA_HOME/ssec-transfer/ (else ~/.local/share/ssec-transfer/).\n\n"
        "  ssec-transfer ledger show s3://bucket/products/data.nc\n"
        "  ssec-transfer ledger export --to ledger.jsonl\n"
        "  ssec-transfer ledger import other-machine.jsonl",
    )
    actions = _subcommands(ledger, "ledger_command")
    show = actions.add_parser(
        "show",
        help="which key fingerprint protects an object, for each recorded version",
        description="Every record of s3://BUCKET/KEY, newest first: time, operation, version "
        "id, key fingerprint, size, ETag, endpoint.",
    )
    show.add_argument("target", metavar="s3://BUCKET/KEY")
    show.add_argument("--endpoint-url", metavar="URL", help="only records for this endpoint")
    show.add_argument("--json", action="store_true", help="one JSON line per record")
    add_ledger(show)

    export = actions.add_parser(
        "export",
        help="write the ledger as JSON lines (for audit, or to merge on another machine)",
        description="One JSON object per record, oldest first. Keys are never in the ledger.",
    )
    export.add_argument(
        "--to", type=Path, metavar="FILE", help="a new file (default: standard output)"
    )
    add_ledger(export)

    imp = actions.add_parser(
        "import",
        help="merge JSON lines written by `ledger export`; records already present are skipped",
        description="Merge records exported elsewhere. Importing the same file twice adds "
        "nothing; a malformed line imports nothing.",
    )
    imp.add_argument("file", metavar="FILE", help="JSON lines file, or - for standard input")
    imp.add_argument("--json", action="store_true", help="print the counts as JSON")
    add_ledger(imp)


def _add_keyring(command: CommandFactory) -> None:
    keyring = command(
        "keyring",
        "named keys kept encrypted at rest (add, generate, list, export, remove)",
        "Keys in the keyring are encrypted with AES-GCM under a key derived from a passphrase "
        "with scrypt. The passphrase comes from the environment variable "
        "SSEC_TRANSFER_KEYRING_PASSPHRASE, or a prompt on a terminal; never the command line. "
        "Listings show names and fingerprints only. Nothing is ever overwritten.\n\n"
        "  ssec-transfer keyring generate products-2025\n"
        "  ssec-transfer keyring add legacy --key-file sse-c.key\n"
        "  ssec-transfer keyring list\n"
        "  ssec-transfer keyring export legacy --to backup.key",
    )
    actions = _subcommands(keyring, "keyring_command")
    add = actions.add_parser(
        "add",
        help="store an existing key under a name",
        description="Store the key from a key file (32 raw bytes or their base64) or an "
        "environment variable under NAME. Refuses a name already taken or a key already "
        "stored under another name. Creates the keyring when there is none.",
    )
    add.add_argument("name", metavar="NAME")
    source = add.add_mutually_exclusive_group(required=True)
    source.add_argument("--key-file", metavar="PATH", help="file holding the key")
    source.add_argument("--key-env", metavar="NAME", help="environment variable, base64 key")
    _keyring_option(add)

    gen = actions.add_parser(
        "generate",
        help="make a new random key, stored under a name; prints its fingerprint",
        description="Generate 32 random bytes and store them as NAME (never replacing a key). "
        "Creates the keyring when there is none.",
    )
    gen.add_argument("name", metavar="NAME")
    _keyring_option(gen)

    lst = actions.add_parser(
        "list", help="names, fingerprints and creation times (never keys)", description=None
    )
    lst.add_argument("--json", action="store_true", help="one JSON line per key")
    _keyring_option(lst)

    exp = actions.add_parser(
        "export",
        help="write one key to a new file (mode 0600), e.g. for a backup or another tool",
        description="Write the raw 32 bytes of NAME to FILE, created with mode 0600. Refuses "
        "to overwrite an existing file.",
    )
    exp.add_argument("name", metavar="NAME")
    exp.add_argument("--to", type=Path, metavar="FILE", required=True, help="a new file")
    _keyring_option(exp)

    rm = actions.add_parser(
        "remove",
        help="delete a key from the keyring (asks first when the ledger still needs it)",
        description="Remove NAME. When the ledger records objects whose current key it is "
        "(directly, or as the master of derived keys), they are listed and a confirmation is "
        "asked on a terminal; scripts must pass --force. Export the key first to keep it.",
    )
    rm.add_argument("name", metavar="NAME")
    rm.add_argument(
        "--force", action="store_true", help="remove even if ledger records still need the key"
    )
    _keyring_option(rm)
    add_ledger(rm)


def add_keyring_options(p: argparse.ArgumentParser) -> None:
    """`--keyring` / `--keyring-file` for commands that read objects (get, head, cp, rotate,
    bulk): the key is then found with `resolve_key`."""
    g = p.add_argument_group("keyring (instead of --key-file)")
    g.add_argument(
        "--keyring",
        action="store_true",
        help="take the key from the keyring: the one the ledger recorded for the object, else "
        "the first keyring key the server accepts (HEAD only; the match is recorded)",
    )
    _keyring_option(g)
    g.add_argument(
        "--keyring-max-tries",
        type=int,
        default=8,
        metavar="N",
        help="keyring keys tried per object the ledger does not know (default 8)",
    )


async def keyring_from_args(args: argparse.Namespace) -> Keyring | None:
    """The unlocked keyring when --keyring or --keyring-file was given, else None."""
    if not (getattr(args, "keyring", False) or getattr(args, "keyring_file", None)):
        return None
    return await open_keyring(_keyring_path(args))


# -- helpers --------------------------------------------------------------------------------------


def _say(text: str) -> None:
    print(text, file=sys.stderr)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _ledger_path(args: argparse.Namespace) -> Path:
    from ssec_transfer.state.ledger import default_path as default_ledger_path

    return Path(args.ledger) if getattr(args, "ledger", None) else default_ledger_path()


def _keyring_path(args: argparse.Namespace) -> Path:
    from ssec_transfer.keys.keyring import default_path as default_keyring_path

    return Path(args.keyring_file) if args.keyring_file else default_keyring_path()


async def _existing_ledger(args: argparse.Namespace) -> Ledger:
    import anyio

    from ssec_transfer.state.ledger import Ledger

    path = _ledger_path(args)
    if not await anyio.Path(path).is_file():
        raise UsageError(
            f"there is no ledger at {path}",
            hint="transfers create it; give another with --ledger PATH",
        )
    return await anyio.to_thread.run_sync(Ledger, path)


async def open_keyring(path: Path, *, create: bool = False) -> Keyring:
    """Unlock (or, with `create`, make when missing) the keyring at `path`, off the event loop:
    scrypt is deliberately slow and the prompt blocks."""
    import anyio

    from ssec_transfer.keys.keyring import Keyring, read_passphrase

    def unlock() -> Keyring:
        if create and not path.exists():
            keyring = Keyring.create(path, read_passphrase(new=True))
            _say(f"created the keyring {path} (mode 0600); back it up, with its passphrase")
            return keyring
        return Keyring.open(path, read_passphrase())

    return await anyio.to_thread.run_sync(unlock)


def _describe(entry: LedgerEntry) -> str:
    version = f" version {entry.version_id}" if entry.version_id else ""
    return f"s3://{entry.bucket}/{entry.key}{version} at {entry.endpoint}"


# -- ledger ---------------------------------------------------------------------------------------


async def cmd_ledger(args: argparse.Namespace) -> int:
    action = args.ledger_command
    if action == "show":
        return await _ledger_show(args)
    if action == "export":
        return await _ledger_export(args)
    return await _ledger_import(args)


async def _ledger_show(args: argparse.Namespace) -> int:
    import anyio

    url = parse_s3_url(args.target)
    if not url.key or url.key.endswith("/"):
        raise UsageError(f"{args.target} names no object", hint="write s3://BUCKET/KEY")
    ledger = await _existing_ledger(args)
    endpoint = args.endpoint_url.rstrip("/") if args.endpoint_url else None
    entries = await anyio.to_thread.run_sync(ledger.show, endpoint, url.bucket, url.key)
    if not entries:
        raise NotFoundError(
            f"the ledger {ledger.path} has no record of {url}",
            hint="it knows only objects this machine transferred (or ledgers imported here)",
        )
    if args.json:
        for entry in entries:
            print_json({**entry.to_dict(), "recorded": _when(entry.recorded_at)})
        return 0
    newest = next((e for e in entries if e.key_fingerprint and e.operation != "derive"), None)
    if newest is not None:
        version = f" (version {newest.version_id})" if newest.version_id else ""
        print(f"{url}: key {newest.key_fingerprint}{version}, recorded {_when(newest.recorded_at)}")
    print(f"{'recorded':<25} {'operation':<10} {'version':<36} {'key fingerprint':<24} "
          f"{'size':>12}  endpoint")  # fmt: skip
    for e in entries:
        print(
            f"{_when(e.recorded_at):<25} {e.operation:<10} {e.version_id or '-':<36} "
            f"{e.key_fingerprint or '-':<24} {e.size:>12}  {e.endpoint}"
        )
    return 0


async def _ledger_export(args: argparse.Namespace) -> int:
    import anyio

    ledger = await _existing_ledger(args)
    if args.to is None:
        count = await anyio.to_thread.run_sync(_export_to, ledger, sys.stdout)
    else:
        count = await anyio.to_thread.run_sync(_export_file, ledger, Path(args.to))
        _say(f"exported {count} records to {args.to}")
    return 0


def _export_to(ledger: Ledger, out: TextIO) -> int:
    count = ledger.export(out)
    out.flush()
    return count


def _export_file(ledger: Ledger, path: Path) -> int:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(
            f"{path} already exists; refusing to overwrite it", hint="choose a new file name"
        ) from None
    except FileNotFoundError:
        raise UsageError(f"folder {path.parent} does not exist") from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        return _export_to(ledger, out)


async def _ledger_import(args: argparse.Namespace) -> int:
    import anyio

    from ssec_transfer.state.ledger import Ledger

    def read() -> list[str]:
        if args.file == "-":
            return sys.stdin.readlines()
        try:
            return Path(args.file).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise UsageError(f"{args.file} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {args.file}: {exc}") from None

    lines = await anyio.to_thread.run_sync(read)
    ledger = await anyio.to_thread.run_sync(Ledger, _ledger_path(args))
    added = await anyio.to_thread.run_sync(ledger.import_, lines)
    records = sum(1 for line in lines if line.strip())
    if args.json:
        print_json({"status": "ok", "records": records, "added": added,
                     "already_present": records - added, "ledger": str(ledger.path)})  # fmt: skip
    _say(f"imported {added} new records into {ledger.path} ({records - added} already present)")
    return 0


# -- keyring --------------------------------------------------------------------------------------


async def cmd_keyring(args: argparse.Namespace) -> int:
    import anyio

    from ssec_transfer.keys.customer import ARGV_HINT

    path = _keyring_path(args)
    action = args.keyring_command
    if action in ("add", "generate") and key_form(args.name, raw=False) is not None:
        # A 32-character name is a name; these forms are keys, which would then be printed
        # and kept in clear as the entry's name.
        raise UsageError(
            "the NAME given looks like key material (not repeated here), not a key's name; if "
            "it is a key, consider it exposed",
            hint=ARGV_HINT,
        )
    if action == "add":
        key = await anyio.to_thread.run_sync(load_key, args)
        assert key is not None  # argparse requires --key-file or --key-env
        keyring = await open_keyring(path, create=True)
        info = await anyio.to_thread.run_sync(keyring.add, args.name, key)
        print(info.fingerprint)
        _say(f"stored key {info.name!r} ({info.fingerprint}) in {path}")
    elif action == "generate":
        keyring = await open_keyring(path, create=True)
        key = await anyio.to_thread.run_sync(keyring.generate, args.name)
        print(key.fingerprint)
        _say(f"generated key {args.name!r} ({key.fingerprint}) in {path}; back the keyring up")
    elif action == "list":
        keyring = await open_keyring(path)
        for info in keyring.list():
            if args.json:
                print_json(info.to_dict())
            else:
                print(f"{info.name}\t{info.fingerprint}\t{info.created_at}")
        if not args.json and not len(keyring):
            _say(f"the keyring {path} holds no keys")
    elif action == "export":
        keyring = await open_keyring(path)
        info = await anyio.to_thread.run_sync(keyring.export, args.name, args.to)
        _say(f"wrote key {info.name!r} ({info.fingerprint}) to {args.to} (mode 0600)")
    else:
        return await _keyring_remove(args, path)
    return 0


async def _keyring_remove(args: argparse.Namespace, path: Path) -> int:
    import anyio

    from ssec_transfer.keys.keyring import KeyringUsageError
    from ssec_transfer.state.ledger import Ledger

    keyring = await open_keyring(path)
    fingerprint = (await anyio.to_thread.run_sync(keyring.get, args.name)).fingerprint
    needed: list[LedgerEntry] = []
    ledger_path = _ledger_path(args)
    if await anyio.Path(ledger_path).is_file():
        ledger = await anyio.to_thread.run_sync(Ledger, ledger_path)
        needed = await anyio.to_thread.run_sync(ledger.protected_by, fingerprint)
    if needed:
        listing = [_describe(e) for e in needed]
        head = (
            f"the ledger {ledger_path} records {len(needed)} object version(s) whose current "
            f"key is {args.name!r} ({fingerprint}); without it they cannot be read"
        )
        if args.force:
            _say(f"warning: {head}:")
            for line in listing:
                _say(f"  {line}")
        elif sys.stdin.isatty():
            _say(f"{head}:")
            for line in listing:
                _say(f"  {line}")
            answer = await anyio.to_thread.run_sync(
                partial(input, f"type the key name ({args.name}) to remove it anyway: ")
            )
            if answer.strip() != args.name:
                _say("not removed")
                return 1
        else:
            shown = "\n  ".join(listing[:_SHOWN_OBJECTS])
            more = len(listing) - _SHOWN_OBJECTS
            raise KeyringUsageError(
                f"{head}:\n  {shown}" + (f"\n  ... and {more} more" if more > 0 else ""),
                hint="rotate those objects to another key first, export this key "
                "(`keyring export NAME --to FILE`), or pass --force; nothing was removed",
            )
    info = await anyio.to_thread.run_sync(keyring.remove, args.name)
    print(info.fingerprint)
    _say(f"removed key {info.name!r} ({info.fingerprint}) from {path}")
    return 0


HANDLERS: dict[str, Handler] = {"ledger": cmd_ledger, "keyring": cmd_keyring}
