"""Which arms read their first attempt: the first-attempt ablation across seeds (issue 33, item 1).

From each run's `y1_ablation` summary (recomputed from `y1_ablation.jsonl` by the loader), per arm
and over its seeds (t intervals, n − 1 df; exploratory, no family correction):

  gain own      Acc@t2(own y1) − Acc@t1            the arm's Δ on the ablation's problems
  gain swapped  Acc@t2(another problem's y1) − Acc@t1
  drop          Acc@t2(own) − Acc@t2(swapped)       what reading its own y1 is worth

An arm **reads y1** when the drop's interval lies above 0; it is (also) a **second solver** when the
gain with a swapped y1 lies above 0 (its turn 2 beats its turn 1 whatever it is shown). Both can
hold; "not separated" when neither interval excludes 0.
"""

from __future__ import annotations

import pandas as pd

from selfcorrect.analysis.labels import display_name
from selfcorrect.analysis.stats import seed_interval

KEY = "y1_ablation"


def y1_ablation_table(sweep) -> pd.DataFrame:
    """One row per label whose runs carry the ablation: the three seed-level estimates and the reading."""
    runs = sweep.runs
    col = f"{KEY}/own/acc_t2"
    if col not in runs:
        return pd.DataFrame()
    rows = []
    for label in sweep.labels:
        r = runs[(runs["label"] == label) & runs[col].notna()].sort_values("seed")
        if r.empty:
            continue
        t1 = r[f"{KEY}/own/shown_right"].to_numpy()
        own, swapped = r[f"{KEY}/own/acc_t2"].to_numpy(), r[f"{KEY}/swapped/acc_t2"].to_numpy()
        est = {"gain_own": seed_interval(own - t1), "gain_swapped": seed_interval(swapped - t1), "drop": seed_interval(own - swapped)}
        row = {"label": label, "seeds": len(r)}
        for name, e in est.items():
            row.update({name: e.mean, f"{name}_lo": e.lo, f"{name}_hi": e.hi})
        for cond in ("base", "none"):
            if f"{KEY}/{cond}/acc_t2" in r:
                row[f"acc_t2_{cond}"] = float(r[f"{KEY}/{cond}/acc_t2"].mean())
        row["reading"] = reading(est["drop"].lo, est["gain_swapped"].lo)
        rows.append(row)
    return pd.DataFrame(rows)


def reading(drop_lo: float, gain_swapped_lo: float) -> str:
    """What the intervals separate (NaN bounds, e.g. one seed, separate nothing)."""
    reads, solver = drop_lo > 0, gain_swapped_lo > 0
    if reads and solver:
        return "reads y1 and a second solver"
    if reads:
        return "reads y1"
    if solver:
        return "second solver"
    return "not separated"


def y1_ablation_markdown(table: pd.DataFrame) -> str:
    """The table in points (per cent of problems) with its intervals."""
    if table.empty:
        return "(no run carries the first-attempt ablation)"

    def cell(r, name) -> str:
        return f"{100 * r[name]:+.1f} [{100 * r[name + '_lo']:+.1f}, {100 * r[name + '_hi']:+.1f}]"

    lines = ["| arm | seeds | gain, own y1 | gain, swapped y1 | own − swapped | Acc@t2 base y1 | Acc@t2 no y1 | reading |",
             "|---|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        extra = " | ".join(f"{100 * r[k]:.1f}" if k in r and pd.notna(r[k]) else "–" for k in ("acc_t2_base", "acc_t2_none"))
        lines.append(f"| {display_name(r['label'])} | {r['seeds']} | {cell(r, 'gain_own')} | {cell(r, 'gain_swapped')} | "
                     f"{cell(r, 'drop')} | {extra} | {r['reading']} |")
    return "\n".join(lines)
