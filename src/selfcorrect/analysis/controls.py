"""What the testbeds build in: the write-up of `make controls` (issue 33, item 2).

Each control point is its own sweep directory (`<CONTROLS_DIR>-<point>`, `sweeps.sweep.CONTROL_TESTBEDS`). Per
point and arm, over its seeds (t intervals, n − 1 df; exploratory: no family correction, no verdicts): Acc@t1 and
Acc@t2 (means: how much room a correction had), Δ, the fix rate (wrong → right over the wrong first attempts) and
the break rate (right → wrong over the right ones); and
SCoRe − the arm in Δ, seed-paired on the seeds both have (seed s of two arms shares its base model, so SCoRe
comes from the same point, or, for the offline-data points, which run only the offline arms, from the reference
sweep of the same testbed: the 1× runs' directory). What each control separates:

- `read_prob_<v>` (answer-first): the base's latent skill of reading its working in a second attempt, dialled
  0 … 0.3 (0.1 is the testbed's). If SCoRe − B in Δ shrinks to nothing at 0, the testbed's finding rests on a skill
  the construction put into the base; if it stays, training teaches it.
- `arithmetic_same_turn2`: the arithmetic base whose second attempt follows its first's bug profile (no built-in
  turn-2 rule difference): does the base still fail to self-correct, does SCoRe still gain?
- `offline_data_<k>x_<testbed>`: Pair-SFT D+ and STaR D+ with k× the episodes (same 96 steps): does the offline
  arms' gap to SCoRe close with more data (data starvation) or stay?
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from selfcorrect.analysis.labels import display_name
from selfcorrect.analysis.stats import seed_interval, seed_paired

METRICS = ("acc_t1", "acc_t2", "delta", "fix_rate", "break_rate")  # Acc@t1 beside Δ: how much room a correction had
SCORE = "score"


def _per_seed(sweep, label: str, metric: str) -> pd.Series:
    runs = sweep.runs
    r = runs[runs["label"] == label]
    return pd.Series(r[metric].to_numpy(dtype=float), index=r["seed"].to_numpy()).sort_index()


def _score_label(sweep) -> str | None:
    """The label of SCoRe's runs: a control point names its runs by its override (`score[read_prob=0.0]`), a
    `make sweep` directory plainly (`score`); None without SCoRe runs."""
    labels = sorted(set(sweep.runs.loc[sweep.runs["arm"] == SCORE, "label"]))
    if len(labels) > 1:
        raise ValueError(f"{sweep.path}: several labels of SCoRe's runs ({labels}); one per control point")
    return labels[0] if labels else None


def control_table(points: Mapping[str, object], references: Mapping[str, object] | None = None) -> pd.DataFrame:
    """One row per (point, arm): the seed-level estimates of `METRICS` and SCoRe − the arm in Δ. `points` maps a
    point's name to its loaded sweep (`results.load_sweep`); `references` maps a point's name to the sweep SCoRe
    is taken from when the point has no SCoRe runs (the offline-data points)."""
    rows = []
    for point, sweep in points.items():
        ref = sweep if _score_label(sweep) else (references or {}).get(point)
        score = _score_label(ref) if ref is not None else None
        for label in sweep.labels:
            runs = sweep.runs[sweep.runs["label"] == label]
            row = {"point": point, "label": label, "arm": runs["arm"].iloc[0], "seeds": len(runs)}
            for m in METRICS:
                e = seed_interval(_per_seed(sweep, label, m).dropna().to_numpy())
                row.update({m: e.mean, f"{m}_lo": e.lo, f"{m}_hi": e.hi})
            if score is not None and row["arm"] != SCORE:
                a, b = _per_seed(ref, score, "delta"), _per_seed(sweep, label, "delta")
                common = sorted(set(a.dropna().index) & set(b.dropna().index))
                if len(common) >= 1:
                    c = seed_paired(a[common].to_numpy(), b[common].to_numpy(), seeds=common)
                    row.update(score_minus=c.diff, score_minus_lo=c.lo, score_minus_hi=c.hi, paired_seeds=len(common),
                               score_from="this point" if ref is sweep else "reference")
            rows.append(row)
    return pd.DataFrame(rows)


def controls_markdown(table: pd.DataFrame) -> str:
    """The table in points (per cent) with its t intervals."""
    if table.empty:
        return "(no control point found)"

    def cell(r, name) -> str:
        if name not in r or pd.isna(r[name]):
            return "–"
        lo, hi = r[f"{name}_lo"], r[f"{name}_hi"]
        interval = "" if pd.isna(lo) else f" [{100 * lo:+.1f}, {100 * hi:+.1f}]"
        return f"{100 * r[name]:+.1f}{interval}"

    lines = ["| point | arm | seeds | Acc@t1 | Acc@t2 | Δ | fix rate | break rate | SCoRe − arm in Δ (paired seeds; SCoRe from) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        vs = "–" if "score_minus" not in r or pd.isna(r.get("score_minus", np.nan)) else (
            f"{cell(r, 'score_minus')} ({int(r['paired_seeds'])}; {r['score_from']})")
        lines.append(f"| {r['point']} | {display_name(r['label'])} | {r['seeds']} | {100 * r['acc_t1']:.1f} | {100 * r['acc_t2']:.1f} | {cell(r, 'delta')} | "
                     f"{cell(r, 'fix_rate')} | {cell(r, 'break_rate')} | {vs} |")
    return "\n".join(lines)
