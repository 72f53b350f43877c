"""Start-up time: what a user waits before any transfer begins.

`ssec-transfer --version` and `python -c "import ssec_transfer"`, each run as a fresh process
one warm-up and then `runs` times, wall clock from before `fork` to the end of `wait`. Start-up
is paid once per command, so for a pipeline that runs one command per product it is a
per-object cost as real as a request's.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path


def commands(exe: Path) -> dict[str, list[str]]:
    """What is timed, by name: the console script `exe` and this Python."""
    return {
        "ssec-transfer --version": [str(exe), "--version"],
        "import ssec_transfer": [sys.executable, "-c", "import ssec_transfer"],
    }


def _wall(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def measure(exe: Path, runs: int = 11) -> dict[str, dict[str, float]]:
    """Median, min and max wall seconds of each start-up command, runs interleaved."""
    argvs = commands(exe)
    samples: dict[str, list[float]] = {name: [] for name in argvs}
    for round_ in range(runs + 1):
        for name, argv in argvs.items():
            seconds = _wall(argv)
            if round_:  # the first round warms the page cache and the bytecode
                samples[name].append(seconds)
    return {
        name: {"median": statistics.median(s), "min": min(s), "max": max(s)}
        for name, s in samples.items()
    }
