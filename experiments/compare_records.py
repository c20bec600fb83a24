"""Two sweeps of the same runs, record for record: does a change of code or libraries move any output?

    python experiments/compare_records.py outputs/sweeps/<A> outputs/sweeps/<B> [--ignore-keys truncated1,truncated2,truncation]

For every run directory present in both (matched by name, `shared_base/` included): every `*.jsonl`
record compared as parsed JSON (row by row), `metrics.json` value by value less timings (keys ending
in `_s`, `tokens_per_s*`), and the figures' tables (`figures/*.md`) byte for byte. `--ignore-keys` drops
keys that only one side writes (fields added by the change itself). Prints one line per difference and
a summary; exits 1 if anything differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

TIMING_SUFFIXES = ("_s",)
TIMING_PREFIXES = ("tokens_per_s",)


def strip(obj, ignore: set[str]):
    """`obj` without the ignored keys and timing fields, recursively."""
    if isinstance(obj, dict):
        return {k: strip(v, ignore) for k, v in obj.items()
                if k not in ignore and not k.endswith(TIMING_SUFFIXES) and not k.startswith(TIMING_PREFIXES)}
    if isinstance(obj, list):
        return [strip(v, ignore) for v in obj]
    return obj


def first_difference(a, b, path: str = "") -> str | None:
    if type(a) is not type(b):
        return f"{path}: {a!r} vs {b!r}"
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}/{k}: only in {'B' if k not in a else 'A'}"
            d = first_difference(a[k], b[k], f"{path}/{k}")
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if a == b else f"{path}: {a!r} vs {b!r}"


def run_dirs(sweep: Path) -> dict[str, Path]:
    return {str(p.parent.relative_to(sweep)): p.parent for p in sweep.rglob("metrics.json")}


def compare(a: Path, b: Path, ignore: set[str]) -> tuple[list[str], dict]:
    diffs, counts = [], {"runs": 0, "jsonl_rows": 0, "metrics": 0, "tables": 0}
    ra, rb = run_dirs(a), run_dirs(b)
    for name in sorted(set(ra) ^ set(rb)):
        diffs.append(f"{name}: run only in {'A' if name in ra else 'B'}")
    for name in sorted(set(ra) & set(rb)):
        counts["runs"] += 1
        da, db = ra[name], rb[name]
        files = sorted({p.name for p in da.glob("*.jsonl")} | {p.name for p in db.glob("*.jsonl")})
        for f in files:
            if f == "history.jsonl":  # timings and engine statistics per step; its metrics are checked below
                continue
            if not (da / f).exists() or not (db / f).exists():
                diffs.append(f"{name}/{f}: only in {'B' if not (da / f).exists() else 'A'}")
                continue
            la, lb = (da / f).read_text().splitlines(), (db / f).read_text().splitlines()
            d = first_difference([strip(json.loads(x), ignore) for x in la], [strip(json.loads(x), ignore) for x in lb])
            counts["jsonl_rows"] += len(la)
            if d:
                diffs.append(f"{name}/{f}{d}")
        d = first_difference(strip(json.loads((da / "metrics.json").read_text()), ignore),
                             strip(json.loads((db / "metrics.json").read_text()), ignore))
        counts["metrics"] += 1
        if d:
            diffs.append(f"{name}/metrics.json{d}")
    for ta in sorted((a / "figures").glob("*.md")) if (a / "figures").is_dir() else []:
        tb = b / "figures" / ta.name
        counts["tables"] += 1
        if not tb.exists() or ta.read_bytes() != tb.read_bytes():
            diffs.append(f"figures/{ta.name}: {'missing in B' if not tb.exists() else 'differs'}")
    return diffs, counts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--ignore-keys", default="", help="comma-separated keys dropped on both sides before comparing")
    args = ap.parse_args(argv)
    diffs, counts = compare(args.a, args.b, {k for k in args.ignore_keys.split(",") if k})
    for d in diffs:
        print(d)
    print(f"{counts['runs']} runs, {counts['jsonl_rows']} records, {counts['metrics']} metrics.json, {counts['tables']} tables "
          f"compared: {len(diffs)} differences")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
