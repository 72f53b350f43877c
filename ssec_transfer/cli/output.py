"""How every command prints a machine-readable result: one sorted JSON object per line.

Kept free of other CLI imports so that `cli.keyring`, which `cli.common` imports, can use it.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def print_json(data: dict[str, Any]) -> None:
    """One JSON line on stdout, flushed at once so a reader of a pipe sees it as it happens."""
    sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")
    sys.stdout.flush()
