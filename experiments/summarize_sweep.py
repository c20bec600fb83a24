"""Print a sweep's results: per run, then per arm (mean ± s.e. over seeds), with the checks of
`results.load_sweep` (metrics recomputed from generations, comparable runs, complete runs) and
a check that every trained arm spent the same budget.

    python experiments/summarize_sweep.py outputs/sweeps/<stamp> [--allow-incomplete]

Runs that did not complete are listed, never silently dropped (and fail the command unless
--allow-incomplete). Arms whose budget block differs are flagged in **bold** with what differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from selfcorrect.analysis.labels import display_name, label_sort_key
from selfcorrect.analysis.results import BUDGET_FIELDS, budget_mismatches, load_sweep

COLUMNS = ["acc_t1", "acc_t2", "delta", "delta_i2c", "delta_c2i", "fix_rate", "break_rate", "no_edit_rate", "answer_change_rate",
           "checkpoint/step", "budget/lr",
           "probe/base/mismatch_gap_matched"]


def stage_table(sweep) -> pd.DataFrame:
    """Mean seconds per run of each stage (`selfcorrect.runtime.timing`), per arm family, with its share."""
    from selfcorrect.training import catalog

    rows = []
    for r in sweep.run_objects.values():
        stages = dict(r.status.get("stages") or {})
        if stages:
            rows.append({"family": catalog.arm(r.arm).family if r.arm in catalog.arms() else "?", **stages})
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows).fillna(0.0)
    mean = df.groupby("family").mean()
    runs = df.groupby("family").size().rename("runs")
    share = (100 * mean.div(mean["wall"], axis=0)).round(0).astype(int).astype(str) + "%"
    out = mean.round(2).astype(str) + " (" + share + ")"
    out.insert(0, "runs", runs)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", type=Path)
    p.add_argument("--allow-incomplete", action="store_true")
    args = p.parse_args(argv)
    if not args.sweep.is_dir():
        raise SystemExit(f"no sweep directory at {args.sweep}")
    sweep = load_sweep(args.sweep, allow_incomplete=args.allow_incomplete)
    df = sweep.runs.copy()
    for c in COLUMNS:
        if c not in df:
            df[c] = float("nan")
    pd.set_option("display.width", 220)
    pd.set_option("display.max_columns", 30)
    print("\nPer run (test split, greedy, fractions of all problems):")
    print(df[["label", "seed", *COLUMNS, "wall_s"]].to_string(index=False, float_format="%.3f"))

    order = sorted(df["label"].unique(), key=label_sort_key)
    g = df.groupby("label")[COLUMNS]
    n = df.groupby("label")["seed"].count()
    table = g.mean().map(lambda v: f"{v:.3f}") + " ± " + g.std(ddof=1).div(n**0.5, axis=0).map(lambda v: f"{v:.3f}")
    table.insert(0, "seeds", n)
    table.index = [display_name(label) for label in table.index]
    print("\nMean ± standard error over seeds (checkpoint/step: the kept step, by the highest validation Acc@t2;"
          " probe gap: correction of the base's first attempts minus of its own, on problems where both are wrong):")
    print(table.loc[[display_name(label) for label in order]].to_string())

    mismatches = budget_mismatches(sweep)
    budget_cols = [f"budget/{k}" for k in BUDGET_FIELDS if f"budget/{k}" in df]
    print("\nBudget spent per arm (episodes sampled, gradient steps, sequences per step, optimizer, lr, schedule):")
    print(df.drop_duplicates("label").set_index("label").loc[order, budget_cols].to_string())
    if mismatches:
        print("\n**BUDGETS DIFFER: this is not a matched comparison**")
        for label, what in mismatches.items():
            print(f"  **{display_name(label)}**: {what}")
    else:
        print("Every trained arm spent the same budget.")
    print("\nWall time by stage (run.json `stages`; mean seconds per run, per family; share of the family's run time):")
    print(stage_table(sweep).to_string())
    print(f"\nRuns: {args.sweep}/<overrides>/ (config.yaml, metrics.json, generations.jsonl, probe_*.jsonl, history.jsonl)")
    print(f"Total run wall time: {df['wall_s'].sum():.0f} s over {len(df)} runs")
    if len(sweep.incomplete):
        print("\nINCOMPLETE RUNS (not in the tables):")
        for _, r in sweep.incomplete.iterrows():
            print(f"  {r['run']}: {r['reason']}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
