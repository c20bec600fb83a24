"""What the real-model benches share: the Makefile's malloc setting, and their one JSON line."""

from __future__ import annotations

import json
import os
import sys

GLIBC_TUNABLES = "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296"


def testbed_wall_s(sweep_dir) -> float | None:
    """A finished testbed's wall time in seconds, from the `wall_time.txt` that `make sweep` writes ("testbed <name>:
    <s> s"); None when the testbed did not finish."""
    from pathlib import Path

    f = Path(sweep_dir) / "wall_time.txt"
    return float(f.read_text().split(":")[1].split()[0]) if f.exists() else None


def with_make_malloc() -> None:
    """Re-execute this script with the Makefile's GLIBC_TUNABLES (glibc reads them at start-up only), so a bench run
    by hand measures what a `make` target runs."""
    if "GLIBC_TUNABLES" not in os.environ:
        os.environ["GLIBC_TUNABLES"] = GLIBC_TUNABLES
        os.execv(sys.executable, [sys.executable, *sys.argv])


def emit(bench: str, facts: dict, rows: list, json_out: str | None, **extra) -> None:
    """Print the bench's one JSON line (the load average at its end added) and append it to `json_out`."""
    facts["loadavg_end"] = round(os.getloadavg()[0], 2)
    line = json.dumps({"bench": bench, **facts, "rows": rows, **extra})
    print(line)
    if json_out:
        with open(json_out, "a") as f:
            f.write(line + "\n")
