"""`config path` and `config show`: where the config file is, and which defaults it gives each
command, with where each was set (`cli.config_file` holds the rules)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ssec_transfer.cli import config_file
from ssec_transfer.cli.options import CommandFactory, Handler
from ssec_transfer.cli.output import print_json
from ssec_transfer.core.errors import UsageError

EXAMPLE = """\
  # ~/.config/ssec-transfer/config.toml
  endpoint_url = "https://s3.example.com"
  key_file = "sse-c.key"            # relative: beside this file
  part_size = "16MiB"

  [get]
  concurrency = 32                  # get only; --concurrency still wins"""


def register(command: CommandFactory) -> None:
    cfg = command(
        "config",
        "where the config file is, and the defaults it gives each command",
        "Defaults for the long options come from a TOML file: $SSEC_TRANSFER_CONFIG, else "
        "$XDG_CONFIG_HOME/ssec-transfer/config.toml (~/.config/...). Keys are option names "
        "with _ (key_file, endpoint_url, profile, region, ca_bundle, concurrency, part_size, "
        "max_memory, checksum, ledger, retry_mode, max_attempts, the timeouts...). Top-level "
        "keys apply to every command with that option; a [COMMAND] table overrides them for "
        "one command; the command line always wins (--key-env sets a file's key_file aside). "
        "Relative paths are taken from the config file's folder. A key file named there is "
        "checked like --key-file. SSEC_TRANSFER_CONFIG=/dev/null runs without the file.\n\n"
        f"{EXAMPLE}\n\n"
        "  ssec-transfer config path\n"
        "  ssec-transfer config show put",
    )
    actions = cfg.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    actions.add_parser(
        "path",
        help="print the config file's path (and whether it exists)",
        description="Print the path of the config file on stdout; say on stderr when it does "
        "not exist (then no defaults apply).",
    )
    show = actions.add_parser(
        "show",
        help="the defaults each command gets from the file, and where each was set",
        description="Check the whole file (as a run would) and print, for each COMMAND (default: "
        "every command that gets a default), the values it applies and whether they come from "
        "the top level or the command's table. Key files are named, never read.",
    )
    show.add_argument(
        "commands", nargs="*", metavar="COMMAND", help="commands to show (default: all)"
    )
    show.add_argument("--json", action="store_true", help="print one JSON object")


def cmd_config(args: argparse.Namespace) -> int:
    path = config_file.config_path()
    if args.config_command == "path":
        print(path)
        if not path.exists():
            print(f"({path} does not exist: no defaults apply)", file=sys.stderr)
        return 0
    return _show(args, path)


def _show(args: argparse.Namespace, path: Path) -> int:
    from ssec_transfer.cli.main import build_parser  # main registers this module

    parser = build_parser()
    commands = config_file.subcommands(parser)
    for name in args.commands:
        if name not in commands:
            raise UsageError(
                f"{name!r} is not a command", hint="choose from " + ", ".join(commands)
            )
    config = config_file.read_config()
    found: dict[str, dict[str, config_file.Setting]] = {}
    if config is not None:
        config_file.check_tables(config, list(commands))
        # Every command is checked, as each run would check its own.
        for name, sub in commands.items():
            found.update(config_file.settings_for(config, name, sub))
    wanted = args.commands or list(commands)
    shown = {
        leaf: settings for leaf, settings in found.items() if leaf.split()[0] in wanted and settings
    }
    if args.json:
        print_json(
            {
                "path": os.fspath(path),
                "exists": config is not None,
                "commands": {
                    leaf: {k: {"value": _plain(s.value), "from": s.origin} for k, s in v.items()}
                    for leaf, v in shown.items()
                },
            }
        )
        return 0
    print(f"config file: {path}" + ("" if config else " (does not exist: no defaults)"))
    for leaf, settings in shown.items():
        print(f"\n{leaf}")
        width = max(len(f"{k} = {json.dumps(_plain(s.value))}") for k, s in settings.items())
        for key, s in settings.items():
            line = f"{key} = {json.dumps(_plain(s.value))}"
            print(f"  {line:<{width}}  # {s.origin}")
    if config is not None and not shown:
        print("\n(no defaults for " + (", ".join(args.commands) or "any command") + ")")
    return 0


def _plain(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, Path) else value


HANDLERS: dict[str, Handler] = {"config": cmd_config}
