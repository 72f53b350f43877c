"""`keygen`, and the `ledger` and `keyring` commands of `cli.keyring`: the commands that make,
keep and account for keys rather than move data.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ssec_transfer.cli import keyring as keyring_cli
from ssec_transfer.cli.options import CommandFactory, Handler
from ssec_transfer.core.errors import UsageError


def register_keygen(command: CommandFactory) -> None:
    keygen = command(
        "keygen",
        "write a new random 32-byte key to a file (mode 0600)",
        "Write 32 random bytes to PATH with mode 0600 and print the key's fingerprint. "
        "Refuses to overwrite an existing file: losing a key loses every object it protects.",
    )
    keygen.add_argument("path", metavar="PATH")


def register_ledger_and_keyring(sub: object, command: CommandFactory) -> None:
    """Listed last in the help, after the data commands."""
    keyring_cli.add_commands(sub, command)


def cmd_keygen(args: argparse.Namespace) -> int:
    from ssec_transfer.keys.customer import SSECustomerKey

    path = Path(args.path)
    if path.exists() or path.is_symlink():
        raise UsageError(
            f"{path} already exists; refusing to overwrite it (losing a key loses every "
            "object it protects)",
            hint="choose a new file name",
        )
    if not path.parent.is_dir():
        raise UsageError(f"folder {path.parent} does not exist")
    key = SSECustomerKey.generate()
    try:
        key.write_new_file(path)
    except FileExistsError:
        raise UsageError(f"{path} already exists; refusing to overwrite it") from None
    print(key.fingerprint)
    print(f"wrote a new 32-byte key to {path} (mode 0600); back it up", file=sys.stderr)
    return 0


HANDLERS: dict[str, Handler] = {"keygen": cmd_keygen, **keyring_cli.HANDLERS}
