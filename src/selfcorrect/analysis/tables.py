"""The paper's tables from a loaded sweep (`results.load_sweep`): the main table over seeds, and
exploratory seed-level comparisons; markdown for each. Figures: `analysis.figures`."""

from __future__ import annotations

import numpy as np

import pandas as pd

from selfcorrect.analysis.labels import display_name, label_arm
from selfcorrect.analysis.results import RATE_METRICS, TABLE_METRICS, Sweep, best_single_turn_label, budget_mismatches
from selfcorrect.analysis.stats import seed_interval
from selfcorrect.analysis.verdicts import compare, exploratory

METRIC_NAMES = {"acc_t1": "Acc@t1", "acc_t2": "Acc@t2", "delta": "Δ(t1,t2)", "delta_i2c": "Δ i→c", "delta_c2i": "Δ c→i"}


def main_table(sweep: Sweep, n_boot: int = 10_000, prefix: str = "") -> pd.DataFrame:
    """One row per label: for each table metric and the ceiling-free rates, the mean over seeds,
    its s.e. and the seed-level t interval (n − 1 df). A label with one seed gets the problem-level
    bootstrap instead (`se_over` = "problems (1 seed)"). `prefix="paper_checkpoint/"` gives the
    secondary table: the checkpoints the paper's rules keep (RL best training reward, SFT last)."""
    rows, mismatches = [], budget_mismatches(sweep)
    best = best_single_turn_label(sweep)
    for label in sweep.labels:
        runs = sweep.runs[sweep.runs["label"] == label].sort_values("seed")
        if prefix and f"{prefix}acc_t1" not in runs:
            continue
        seeds = runs["seed"].tolist()
        row = {"label": label, "method": display_name(label), "n_seeds": len(seeds), "seeds": ",".join(map(str, seeds)),
               "se_over": "seeds" if len(seeds) > 1 else "problems (1 seed)",
               "lr": float(runs["budget/lr"].iloc[0]) if "budget/lr" in runs and label_arm(label) != "base" else np.nan,
               "kept_step": float(runs["checkpoint/step"].mean()) if "checkpoint/step" in runs else np.nan}
        for m in (*TABLE_METRICS, *RATE_METRICS):
            values = runs[f"{prefix}{m}"].astype(float) if f"{prefix}{m}" in runs else pd.Series(dtype=float)
            row[f"{m}_n"] = int(values.notna().sum())
            if len(seeds) > 1 and values.notna().sum() >= 2:  # a rate is undefined for a seed without wrong (right) first attempts
                e = seed_interval(values.dropna().to_numpy())
                row.update({m: e.mean, f"{m}_se": e.se, f"{m}_lo": e.lo, f"{m}_hi": e.hi})
            elif len(seeds) == 1 and not prefix and m in TABLE_METRICS:
                e = sweep.estimate(label, m, n_boot=n_boot)  # one seed: the problems are the only replication
                row.update({m: e.mean, f"{m}_se": e.se, f"{m}_lo": e.lo, f"{m}_hi": e.hi})
            else:
                row.update({m: float(values.mean()) if len(values) else np.nan, f"{m}_se": np.nan, f"{m}_lo": np.nan, f"{m}_hi": np.nan})
        if not prefix and len(seeds) > 1:  # does a second attempt beat simply training the first? (per seed)
            try:
                c = compare(sweep, label, best, "acc_t2", "acc_t1")
                row.update(gain_over_best_t1=c.diff, gain_over_best_t1_lo=c.lo, gain_over_best_t1_hi=c.hi)
            except ValueError:
                pass
        row["best_t1_label"] = best
        row["budget_differs"] = mismatches.get(label, "")
        rows.append(row)
    return pd.DataFrame(rows)


def table_markdown(table: pd.DataFrame, secondary: bool = False) -> str:
    """The paper's table (per cent, mean ± s.e. over seeds, seed-level t intervals in the CSV), with
    the ceiling-free fix and break rates. Written by hand: pandas needs `tabulate` for this."""
    rates = [m for m in RATE_METRICS if m in table]
    names = {**METRIC_NAMES, "fix_rate": "fix rate", "break_rate": "break rate"}
    head = ("| Method | seeds | lr | kept step | " + " | ".join(names[m] for m in (*TABLE_METRICS, *rates))
            + ("" if secondary else " | Acc@t2 − best Acc@t1 [95% t] |"))
    lines = [head, "|" + "---|" * (4 + len(TABLE_METRICS) + len(rates) + (0 if secondary else 1))]
    for _, r in table.iterrows():
        def cell(m):
            if pd.isna(r.get(m)):
                return "—"
            se = "" if pd.isna(r.get(m + "_se")) else f" ± {100 * r[m + '_se']:.1f}"
            n = r.get(m + "_n")
            fewer = "" if pd.isna(n) or n == r["n_seeds"] else f" ({int(n)} seeds)"
            return (f"{100 * r[m]:+.1f}" if m == "delta" else f"{100 * r[m]:.1f}") + se + fewer
        cells = [cell(m) for m in (*TABLE_METRICS, *rates)]
        lr = "—" if pd.isna(r.get("lr")) else f"{r['lr']:.0e}"
        step = "—" if pd.isna(r.get("kept_step")) else f"{r['kept_step']:.0f}"
        method = f"**{r['method']} (budget differs: {r['budget_differs']})**" if r.get("budget_differs") else r["method"]
        tail = ""
        if not secondary:
            tail = (" | —" if pd.isna(r.get("gain_over_best_t1", np.nan)) else
                    f" | {100 * r['gain_over_best_t1']:+.1f} [{100 * r['gain_over_best_t1_lo']:+.1f}, {100 * r['gain_over_best_t1_hi']:+.1f}]")
        lines.append(f"| {method} | {r['n_seeds']} | {lr} | {step} | " + " | ".join(cells) + tail + " |")
    lines.append("")
    best = table["best_t1_label"].iloc[0] if len(table) and "best_t1_label" in table else ""
    lines.append("Per cent of the test problems; mean ± one s.e. over seeds (seeds are the unit of replication; a "
                 "1-seed row's s.e. is over problems). fix rate: wrong → right over the wrong first attempts; break "
                 "rate: right → wrong over the right ones. kept step: mean step of the kept checkpoint "
                 + ("(the paper's rules: RL the best training reward, SFT the last step)." if secondary else
                    f"(the highest validation Acc@t2 among the candidate steps). Acc@t2 − best Acc@t1: per-seed paired "
                    f"against the first attempts of the arm with the highest Acc@t1 ({display_name(best) if best else '—'}), "
                    "t interval over seeds."))
    return "\n".join(lines)


def comparisons(sweep: Sweep, pairs: list[tuple[str, str]] | None = None, metrics=("delta", "acc_t2"), n_boot: int = 0) -> pd.DataFrame:
    """Exploratory seed-level comparisons a − b (per-seed paired differences, t interval, exact
    sign-flip p, unadjusted). Default pairs: SCoRe against every other label, and every other
    label against the base. The pre-registered primary family is `verdicts.primary_table`."""
    labels = sweep.labels
    if pairs is None:
        pairs = []
        for a in (x for x in labels if label_arm(x) == "score"):
            pairs += [(a, b) for b in labels if b != a]
        if "base" in labels:
            pairs += [(a, "base") for a in labels if a != "base" and (a, "base") not in pairs]
    return exploratory(sweep, pairs, metrics)


def comparisons_markdown(comp: pd.DataFrame) -> str:
    lines = ["| A | B | metric | A − B (pts) | 95% t interval | p (sign-flip) | per seed |", "|---|---|---|---|---|---|---|"]
    for _, r in comp.iterrows():
        per = ", ".join(f"{100 * d:+.1f}" for d in r["per_seed"])
        lines.append(f"| {display_name(r['a'])} | {display_name(r['b'])} | {METRIC_NAMES.get(r['metric'], r['metric'])} | "
                     f"{100 * r['diff']:+.1f} | [{100 * r['lo']:+.1f}, {100 * r['hi']:+.1f}] | {r['p_value']:.3g} | {per} |")
    lines.append("")
    lines.append("Exploratory: per-seed paired differences (seed s of both arms shares its base model), t interval with "
                 "n − 1 df and the exact sign-flip permutation p, not adjusted for multiplicity. The pre-registered "
                 "primary comparisons, Holm-adjusted, are in primary.md.")
    return "\n".join(lines)
