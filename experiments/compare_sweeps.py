"""Two sweeps of the same arms, arm by arm: B − A in Acc@t1, Acc@t2 and Δ with paired bootstrap
intervals (the same test problems; seed s of both sweeps shares its base model). Used to check
that a change of engine leaves the results within seed noise (issue 13).

    python experiments/compare_sweeps.py outputs/sweeps/<A> outputs/sweeps/<B> [--arms score,rl_single_turn]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from selfcorrect.analysis.results import load_run, run_dirs
from selfcorrect.analysis.labels import run_label
from selfcorrect.analysis.stats import paired_bootstrap


def grids(sweep: Path) -> dict[str, dict[str, np.ndarray]]:
    """label -> {"t1", "t2", "delta"}: [seeds, problems] arrays, problems in one fixed order."""
    by_label = defaultdict(list)
    for d in run_dirs(sweep):
        r = load_run(d)
        by_label[run_label(r.name, r.config)].append((int(r.config["seed"]), r.records))
    out = {}
    for label, runs in by_label.items():
        runs.sort(key=lambda x: x[0])
        ids = sorted(rec["id"] for rec in runs[0][1])
        t1, t2 = [], []
        for _, records in runs:
            by_id = {rec["id"]: rec for rec in records}
            t1.append([float(by_id[i]["correct1"]) for i in ids])
            t2.append([float(by_id[i]["correct2"]) for i in ids])
        t1, t2 = np.array(t1), np.array(t2)
        out[label] = {"t1": t1, "t2": t2, "delta": t2 - t1, "ids": ids}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--arms", default=None, help="comma-separated labels (default: every label in both)")
    args = ap.parse_args()
    ga, gb = grids(args.a), grids(args.b)
    labels = args.arms.split(",") if args.arms else sorted(set(ga) & set(gb))
    print(f"B − A, points [95% paired bootstrap]; A = {args.a}, B = {args.b}\n")
    print("| arm | Acc@t1 | Acc@t2 | Δ |\n|---|---|---|---|")
    for label in labels:
        a, b = ga[label], gb[label]
        if a["ids"] != b["ids"]:
            raise ValueError(f"{label}: the two sweeps evaluated different problems")
        cells = []
        for key in ("t1", "t2", "delta"):
            c = paired_bootstrap(b[key], a[key])
            cells.append(f"{100 * c.diff:+.1f} [{100 * c.lo:+.1f}, {100 * c.hi:+.1f}]")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
