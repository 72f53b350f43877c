"""The `ssec-transfer` console script and `python -m ssec_transfer`.

`--version` alone is answered here, before the parser and the twenty command modules it
registers are imported: it is what scripts and package managers call most, and it should
cost an interpreter start, not the command line's. Everything else goes to `cli.main`.
"""

from __future__ import annotations

import sys
from typing import NoReturn


def entry_point() -> NoReturn:
    if sys.argv[1:] == ["--version"]:
        from ssec_transfer import __version__

        sys.stdout.write(f"ssec-transfer {__version__}\n")
        sys.exit(0)
    from ssec_transfer.cli.main import entry_point as run

    run()
