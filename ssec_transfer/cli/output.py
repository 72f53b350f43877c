"""How every command prints: machine-readable lines on stdout, and how much it says on stderr.

The JSON lines' shape is `core.report`'s; this module only writes them. `--quiet` and
`--only-show-errors` (`options.add_output`) decide what a command tells a human: successes
(per-object lines, summaries, progress) only without them; warnings (the logger's) are
silenced by --quiet alone. Neither touches stdout's JSON.

Kept free of other CLI imports so that `cli.keyring`, which `cli.common` imports, can use it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def print_json(data: dict[str, Any]) -> None:
    """One JSON line on stdout, flushed at once so a reader of a pipe sees it as it happens."""
    sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")
    sys.stdout.flush()


def shows_successes(args: argparse.Namespace) -> bool:
    """False with --quiet or --only-show-errors: what went well is not written to the
    terminal (so cron mails only failures)."""
    return not (getattr(args, "quiet", False) or getattr(args, "only_show_errors", False))


def say(args: argparse.Namespace, text: str) -> None:
    """A line about something that went well, on stderr, unless the user asked for quiet."""
    if shows_successes(args):
        print(text, file=sys.stderr)
