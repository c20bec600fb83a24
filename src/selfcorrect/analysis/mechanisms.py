"""The mechanism measures of a sweep (issue 23) as tables, with the verdicts of the predictions the
pre-registration written before the sweep (docs/preregistration/2026-12-06_mechanism_measures*.md).

Every number comes from the runs' metrics as the results loader recomputes them from the saved
records (`results.load_sweep`): `behaviour/...`, `calibration/...`, `revise/...`,
`self_conditioning/...` from the records, `sparsity/...` from metrics.json (recomputable from the
weights: `analysis.sparsity.run_rows`), and the behaviours over training from history.jsonl.

Verdict rule (the pre-registration): a per-seed paired difference (seed s of both arms shares its base) and its t
interval (n − 1 df); **holds** when the 95 % interval excludes 0 (or the stated threshold) on the
predicted side, **does not hold** when it excludes it on the other side, **not decided** otherwise,
with the seeds the observed difference would need (80 % power). An equivalence prediction ("no
difference beyond ±m") holds when the interval lies inside ±m and does not hold when it lies
outside.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from selfcorrect.analysis.labels import display_name, label_arm
from selfcorrect.analysis.stats import SeedComparison, seed_interval, seed_paired, seeds_needed
from selfcorrect.paths import SHARED_BASE_DIR
from selfcorrect.training import catalog

RL, SFT = "score", "sft_self_plus"  # the matched pair: one learning rate (1e-4), one budget, both testbeds
WRONG_ENTROPY = "behaviour/wrong_t1/entropy_bits"
WRONG_ENTROPY_MM = "behaviour/wrong_t1/entropy_mm_bits"  # bias-corrected (Miller–Madow): B1's companion check
TEACHER_DEFAULT = "sft_teacher"  # the dial's default teacher (random_digit) runs under the arm's own label


@dataclass(frozen=True)
class Reading:
    """One measured difference (or value against a threshold) and its verdict."""

    item: str
    what: str
    testbed: str
    estimate: float
    lo: float
    hi: float
    n_seeds: int
    prediction: str
    verdict: str
    seeds_needed: int | None = None


def with_derived(runs: pd.DataFrame) -> pd.DataFrame:
    """The run table plus the measures that combine two metrics (one value per run)."""
    out = runs.copy()
    if {"revise/p_change_given_wrong", "revise/p_change_given_right"} <= set(out):
        out["revise/gap"] = out["revise/p_change_given_wrong"] - out["revise/p_change_given_right"]
    if {"self_conditioning/fix_rate/1", "self_conditioning/fix_rate/3"} <= set(out):
        out["self_conditioning/drop_1_3"] = out["self_conditioning/fix_rate/1"] - out["self_conditioning/fix_rate/3"]
    if {"self_conditioning/fix_given_wrong/2", "self_conditioning/fix_given_wrong/3"} <= set(out):
        out["self_conditioning/drop_turn_2_3"] = (out["self_conditioning/fix_given_wrong/2"]
                                                  - out["self_conditioning/fix_given_wrong/3"])
    return out


def per_seed(runs: pd.DataFrame, label: str, metric: str) -> pd.Series:
    rows = runs[runs["label"] == label]
    if rows.empty or metric not in rows:
        return pd.Series(dtype=float)
    return rows.set_index("seed")[metric].astype(float).sort_index().dropna()


def paired(runs: pd.DataFrame, a: str, b: str, metric: str) -> SeedComparison | None:
    va, vb = per_seed(runs, a, metric), per_seed(runs, b, metric)
    seeds = sorted(set(va.index) & set(vb.index))
    if len(seeds) < 2:
        return None
    return seed_paired(va.loc[seeds].to_numpy(), vb.loc[seeds].to_numpy(), seeds=seeds)


def directional(diff: float, lo: float, hi: float, sign: int, threshold: float = 0.0) -> str:
    """The verdict of "the quantity is above (sign +1) / below (−1) `threshold`"."""
    if sign > 0:
        return "holds" if lo > threshold else "does not hold" if hi < threshold else "not decided"
    return "holds" if hi < threshold else "does not hold" if lo > threshold else "not decided"


def equivalence(lo: float, hi: float, margin: float) -> str:
    if -margin < lo and hi < margin:
        return "holds"
    if lo >= margin or hi <= -margin:
        return "does not hold"
    return "not decided"


def _needed(c: SeedComparison) -> int | None:
    sd = float(np.std(c.per_seed, ddof=1)) if len(c.per_seed) > 1 else float("nan")
    return seeds_needed(c.diff, sd)


def _needed_equivalence(values: np.ndarray, margin: float, most: int = 1000) -> int | None:
    """The fewest seeds at which the t interval of the observed mean difference (at its observed
    s.d.) would lie inside ±margin: t(n−1)·sd/√n < margin − |mean| (None: |mean| ≥ margin)."""
    from selfcorrect.analysis.stats import t_quantile

    d, sd = float(np.mean(values)), float(np.std(values, ddof=1))
    if abs(d) >= margin or not sd > 0:
        return None
    return next((n for n in range(2, most + 1) if t_quantile(0.975, n - 1) * sd / np.sqrt(n) < margin - abs(d)), None)


def compare_reading(runs, item, what, testbed, a, b, metric, sign: int | None, prediction: str,
                    margin: float | None = None) -> Reading | None:
    """a − b in `metric`: directional (sign ±1), equivalence within ±`margin`, or no prediction (None)."""
    c = paired(runs, a, b, metric)
    if c is None:
        return None
    if margin is not None:
        v = equivalence(c.lo, c.hi, margin)
        needed = _needed_equivalence(np.array(c.per_seed), margin) if v == "not decided" else None
    elif sign is None:
        v = "no prediction of sign"
        needed = _needed(c)
    else:
        v = directional(c.diff, c.lo, c.hi, sign)
        needed = _needed(c) if v == "not decided" else None
    return Reading(item, what, testbed, c.diff, c.lo, c.hi, len(c.per_seed), prediction, v, needed)


def level_reading(runs, item, what, testbed, label, metric, sign: int, threshold: float, prediction: str) -> Reading | None:
    """label's `metric` against a fixed threshold (its seed-level t interval)."""
    v = per_seed(runs, label, metric)
    if len(v) < 2:
        return None
    return threshold_reading(item, what, testbed, v.to_numpy(), sign, threshold, prediction)


def threshold_reading(item, what, testbed, values: np.ndarray, sign: int, threshold: float, prediction: str) -> Reading:
    """Per-seed values against a fixed threshold: their t interval, the verdict, and (when not
    decided) the seeds the observed distance from the threshold would need."""
    e = seed_interval(values)
    v = directional(e.mean, e.lo, e.hi, sign, threshold)
    needed = seeds_needed(e.mean - threshold, float(np.std(values, ddof=1))) if v == "not decided" else None
    return Reading(item, what, testbed, e.mean, e.lo, e.hi, len(values), prediction, v, needed)


def trained_labels(runs: pd.DataFrame) -> list[str]:
    return [lab for lab in dict.fromkeys(runs["label"]) if label_arm(lab) != "base"]


# --- behaviours over training (history) ---------------------------------------------------------
def behaviour_over_training(history: pd.DataFrame, stratum: str = "wrong_t1", split: str = "val") -> pd.DataFrame:
    """Per run and monitoring step: the entropy of the behaviours on `stratum` and each label's share
    (columns `entropy_bits`, `share/<label>`), from history.jsonl."""
    prefix = f"{split}/behaviour/{stratum}/"
    h = history[history["metric"].str.startswith(prefix)]
    if h.empty:
        return pd.DataFrame()
    h = h.assign(metric=h["metric"].str[len(prefix):])
    h = h[(h["metric"] == "entropy_bits") | h["metric"].str.startswith("share/")]
    return h.pivot_table(index=["run", "label", "seed", "step"], columns="metric", values="value").reset_index()


def time_to_collapse(curves: pd.DataFrame, label: str, by_step: int = 24, final_step: int | None = None) -> pd.Series:
    """Per seed: the share, at `by_step`, of the behaviour that dominates at the last step, divided by
    its share at the last step (1: collapsed by then)."""
    out = {}
    for seed, c in curves[curves["label"] == label].groupby("seed"):
        c = c.sort_values("step")
        last = c.iloc[-1] if final_step is None else c[c["step"] == final_step].iloc[0]
        shares = {k: last[k] for k in c if str(k).startswith("share/") and pd.notna(last[k])}
        if not shares:
            continue
        dominant = max(shares, key=shares.get)
        at = c[c["step"] == by_step]
        if at.empty or not last[dominant] > 0:
            continue
        out[seed] = float(at[dominant].iloc[0]) / float(last[dominant])
    return pd.Series(out, dtype=float).sort_index()


# --- on-policy vs off-policy ----------------------------------------------------------------------
def data_source_table(runs: pd.DataFrame, metrics: Sequence[str] = ("fix_rate", "break_rate", "acc_t1_change")) -> pd.DataFrame:
    """Arms lined up by where their training data came from (`catalog.DATA_SOURCES`): per source, the
    mean over its arms of each seed's value, then the seed-level mean and t interval. acc_t1_change
    = the arm's Acc@t1 − the base's on the same seed (the first attempt the training moved)."""
    runs = runs.copy()
    base = runs[runs["label"] == "base"].set_index("seed")["acc_t1"]
    runs["acc_t1_change"] = runs["acc_t1"] - runs["seed"].map(base)
    runs["data"] = runs["label"].map(lambda lab: catalog.arm(label_arm(lab)).data)
    rows = []
    for source, group in runs[runs["data"] != "none"].groupby("data", sort=False):
        row = {"data": source, "what": catalog.DATA_SOURCES[source], "arms": ", ".join(sorted(set(group["label"])))}
        for m in metrics:
            per = group.groupby("seed")[m].mean().dropna()
            e = seed_interval(per.to_numpy()) if len(per) else None
            row.update({m: e.mean if e else np.nan, f"{m}_lo": e.lo if e else np.nan, f"{m}_hi": e.hi if e else np.nan})
        row["n_seeds"] = int(group["seed"].nunique())
        rows.append(row)
    if not rows:  # no trained arm
        return pd.DataFrame(columns=["data", "what", "arms", "n_seeds"])
    order = list(catalog.DATA_SOURCES)
    return pd.DataFrame(rows).sort_values("data", key=lambda s: s.map(order.index)).reset_index(drop=True)


SINGLE_TURN_OBJECTIVE = ("rl_single_turn",)  # on-policy data, but trained on first attempts only (fix rate ~0.3 %)


def source_series(runs: pd.DataFrame, source: str, metric: str, exclude: Sequence[str] = ()) -> pd.Series:
    """Per seed: the mean over the arms with data `source` (less the arms in `exclude`) of `metric`."""
    arms = [lab for lab in dict.fromkeys(runs["label"])
            if catalog.arm(label_arm(lab)).data == source and label_arm(lab) not in exclude]
    return runs[runs["label"].isin(arms)].groupby("seed")[metric].mean().dropna().sort_index()


def ordering_reading(runs, item, testbed, metric, order: Sequence[str], prediction: str,
                     exclude: Sequence[str] = ()) -> Reading | None:
    """"metric is ordered first ≥ ... ≥ last over data sources": holds when first − last is above 0
    and no adjacent pair is significantly reversed; does not hold when one is. `exclude`: arms left out of
    their source's group (O1 by objective: single-turn RL has on-policy data but no correction objective)."""
    series = [source_series(runs, s, metric, exclude) for s in order]
    seeds = sorted(set.intersection(*(set(s.index) for s in series)))
    if len(seeds) < 2:
        return None
    vals = [s.loc[seeds].to_numpy() for s in series]
    ends = seed_paired(vals[0], vals[-1], seeds=seeds)
    reversed_pair = any(seed_paired(a, b, seeds=seeds).hi < 0 for a, b in zip(vals, vals[1:]))
    v = "does not hold" if reversed_pair or ends.hi < 0 else ("holds" if ends.lo > 0 else "not decided")
    return Reading(item, f"{metric}: {' ≥ '.join(order)} ({order[0]} − {order[-1]})", testbed, ends.diff, ends.lo, ends.hi,
                   len(seeds), prediction, v, None if v == "holds" else _needed(ends))


# --- the pre-registered readings ------------------------------------------------------------------
def readings(runs: pd.DataFrame, history: pd.DataFrame, testbed: str, overlaps: pd.DataFrame | None = None,
             embedding_shares: pd.DataFrame | None = None) -> list[Reading]:
    """Every pre-registered reading of the pre-registration's table for one testbed (rows whose data the
    sweep lacks are left out)."""
    runs = with_derived(runs)
    af = testbed == "answer_first"
    out: list[Reading | None] = []
    for lab in trained_labels(runs):
        out.append(compare_reading(runs, "B1", f"entropy on wrong y1: base − {display_name(lab)}", testbed, "base", lab,
                                   WRONG_ENTROPY, +1, "> 0 (collapse)"))
        if WRONG_ENTROPY_MM in runs:  # not registered: the same reading with the entropy's small-n bias removed
            out.append(compare_reading(runs, "B1 (Miller–Madow, check)", f"bias-corrected entropy on wrong y1: base − "
                                       f"{display_name(lab)}", testbed, "base", lab, WRONG_ENTROPY_MM, +1, "> 0 (collapse)"))
    out.append(compare_reading(runs, "B2", "entropy on wrong y1: SCoRe − Pair-SFT D+", testbed, RL, SFT, WRONG_ENTROPY,
                               -1 if af else None, "< 0" if af else "no difference", None if af else 0.25))
    curves = behaviour_over_training(history)
    if not curves.empty:
        ratio = time_to_collapse(curves, RL)
        if len(ratio) >= 2:
            out.append(threshold_reading("B3", "SCoRe: dominant share on wrong y1 at step 24 / at step 96 (val)", testbed,
                                         ratio.to_numpy(), +1, 0.9, "≥ 0.9"))
    out.append(compare_reading(runs, "S1", "unchanged fraction, bf16, tol 1e-5: SCoRe − Pair-SFT D+", testbed, RL, SFT,
                               "sparsity/unchanged/bf16/1e-05", None, "within ±0.05", 0.05))
    for lab in (RL, SFT):
        out.append(level_reading(runs, "S2", f"unchanged fraction, fp32, tol 0: {display_name(lab)}", testbed, lab,
                                 "sparsity/unchanged/fp32/0", -1, 0.2, "< 0.2"))
        out.append(level_reading(runs, "S4", f"effective rank / min(shape), weighted: {display_name(lab)}", testbed, lab,
                                 "sparsity/erank_ratio/weighted_mean", +1, 0.5, "> 0.5"))
    if overlaps is not None and not overlaps.empty:
        for dtype in ("bf16", "fp32"):
            rows = overlaps[(overlaps["kind"] == "between") & (overlaps["dtype"] == dtype)]
            lifts = rows["lift"].dropna().astype(float)  # one pair per seed (each its own base): independent, a t interval
            if len(lifts) >= 2:
                out.append(threshold_reading("S3", f"overlap lift (joint / chance), {dtype} tol 1e-5: SCoRe vs Pair-SFT D+ "
                                             "on each seed's base", testbed, lifts.to_numpy(), +1, 1.0, "> 1"))
            by_tensor = rows["lift_by_tensor"].dropna().astype(float) if "lift_by_tensor" in rows else pd.Series(dtype=float)
            if len(by_tensor) >= 2:  # exploratory, added after the review: chance within each tensor
                out.append(threshold_reading("S3x", f"overlap lift against the chance within tensors, {dtype} tol 1e-5: "
                                             "SCoRe vs Pair-SFT D+ (exploratory)", testbed, by_tensor.to_numpy(), +1, 1.0, "none"))
            for arm in (RL, SFT):  # the pairs of one arm's runs on the one shared base share runs: min and max, not a t interval
                w = overlaps[(overlaps["kind"] == "within") & (overlaps["dtype"] == dtype) & (overlaps["label_a"] == arm)]
                lifts = w["lift"].dropna().astype(float)
                if len(lifts):
                    lo, hi = float(lifts.min()), float(lifts.max())
                    out.append(Reading("S3", f"overlap lift, {dtype} tol 1e-5: {display_name(arm)} across seeds on one base "
                                       f"(all {len(lifts)} pairs; [min, max])", testbed, float(lifts.mean()), lo, hi,
                                       int(w[["seed_a", "seed_b"]].stack().nunique()), "> 1 for every pair",
                                       "holds" if lo > 1 else "does not hold" if hi < 1 else "not decided"))
    if embedding_shares is not None and not embedding_shares.empty:
        for lab in (RL, SFT):
            v = embedding_shares[embedding_shares["label"] == lab].set_index("seed")["share_in_embeddings"].dropna()
            if len(v) >= 2:
                out.append(threshold_reading("S2", f"share of the fp32 @0 unchanged parameters in embedding tensors: "
                                             f"{display_name(lab)}", testbed, v.astype(float).to_numpy(), +1, 0.95, "> 0.95"))
    out.append(compare_reading(runs, "C1", "ECE of y1 confidence: SCoRe − base", testbed, RL, "base", "calibration/ece", +1, "> 0"))
    out.append(compare_reading(runs, "C2", "AUROC of y1 confidence: SCoRe − Pair-SFT D+", testbed, RL, SFT,
                               "calibration/auroc", None, "none"))
    out.append(compare_reading(runs, "R1", "revise gap P(change|wrong) − P(change|right): SCoRe − Pair-SFT D+", testbed, RL, SFT,
                               "revise/gap", +1 if af else None, "> 0" if af else "no difference", None if af else 0.05))
    if af:
        out.append(compare_reading(runs, "K1", "fix-rate drop k=1 → 3: SCoRe − Pair-SFT D+", testbed, RL, SFT,
                                   "self_conditioning/drop_1_3", -1, "< 0"))
    else:
        for lab in ["base", *trained_labels(runs)]:
            out.append(level_reading(runs, "K1", f"fix-rate drop k=1 → 3: {display_name(lab)}", testbed, lab,
                                     "self_conditioning/drop_1_3", +1, 0.0, "> 0"))
    for lab in trained_labels(runs):
        out.append(level_reading(runs, "K2", f"fix given wrong, turn 2 − turn 3: {display_name(lab)}", testbed, lab,
                                 "self_conditioning/drop_turn_2_3", +1, 0.0, "> 0 (descriptive: turn 3 sees only the problems turn 2 failed)"))
    if af:
        order = ("own_online", "own_rounds", "base", "teacher")
        out.append(ordering_reading(runs, "O1", testbed, "fix_rate", order, "ordered"))
        out.append(ordering_reading(runs, "O1", testbed, "break_rate", order[::-1], "ordered"))
        # not registered: the same ordering with the arms grouped by objective too (single-turn RL left out of the
        # on-policy group, which then holds only arms trained to revise), separating data source from objective
        for metric, o in (("fix_rate", order), ("break_rate", order[::-1])):
            r = ordering_reading(runs, "O1 (correction objectives only, check)", testbed, metric, o, "ordered",
                                 exclude=SINGLE_TURN_OBJECTIVE)
            out.append(r)
    return [r for r in out if r is not None]


def readings_frame(rs: Sequence[Reading]) -> pd.DataFrame:
    return pd.DataFrame([r.__dict__ for r in rs])


def readings_markdown(rs: Sequence[Reading]) -> str:
    lines = ["| # | measure | prediction | estimate [95% t] | seeds | verdict | seeds needed |", "|---|---|---|---|---|---|---|"]
    for r in rs:
        needed = "—" if r.verdict in ("holds", "does not hold") else (
            str(r.seeds_needed) if r.seeds_needed is not None else "none at this estimate")
        lines.append(f"| {r.item} | {r.what.replace('|', chr(92) + '|')} | {r.prediction} | {r.estimate:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}] | {r.n_seeds} | "
                     f"{r.verdict} | {needed} |")
    return "\n".join(lines)


# --- descriptive tables ---------------------------------------------------------------------------
MEASURE_COLUMNS = {
    "behaviour/wrong_t1/n": "wrong y1 (n)",
    "behaviour/wrong_t1/dominant": "dominant on wrong y1",
    "behaviour/wrong_t1/dominant_share": "its share",
    WRONG_ENTROPY: "entropy wrong y1 (bits)",
    "behaviour/right_t1/entropy_bits": "entropy right y1 (bits)",
    "calibration/ece": "ECE",
    "calibration/brier": "Brier",
    "calibration/auroc": "AUROC",
    "calibration/overconfidence": "mean q − Acc@t1",
    "revise/p_change_given_wrong": "P(change \\| y1 wrong)",
    "revise/p_change_given_right": "P(change \\| y1 right)",
    "self_conditioning/fix_rate/1": "fix k=1",
    "self_conditioning/fix_rate/2": "fix k=2",
    "self_conditioning/fix_rate/3": "fix k=3",
    "self_conditioning/fix_given_wrong/3": "fix at turn 3 \\| turn 2 wrong",
    "self_conditioning/break_given_right/3": "break at turn 3 \\| turn 2 right",
    "sparsity/unchanged/fp32/0": "unchanged fp32 @0",
    "sparsity/unchanged/bf16/1e-05": "unchanged bf16 @1e-5",
    "sparsity/erank_ratio/weighted_mean": "erank ratio",
}


def measures_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per label: the mean over seeds of each measure (the dominant behaviour: the most
    frequent over seeds)."""
    rows = []
    for lab in dict.fromkeys(runs["label"]):
        g = runs[runs["label"] == lab]
        row = {"label": lab, "method": display_name(lab), "n_seeds": int(g["seed"].nunique())}
        for col in MEASURE_COLUMNS:
            if col not in g:
                continue
            v = g[col].dropna()
            if not pd.api.types.is_numeric_dtype(v):  # a label: the most frequent over seeds
                row[col] = str(v.mode().iloc[0]) if len(v) else None
            else:
                row[col] = float(v.astype(float).mean()) if len(v) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def measures_markdown(table: pd.DataFrame) -> str:
    cols = [c for c in MEASURE_COLUMNS if c in table]
    lines = ["| method | seeds | " + " | ".join(MEASURE_COLUMNS[c] for c in cols) + " |", "|---|---|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        cells = [("—" if r[c] is None or (isinstance(r[c], float) and np.isnan(r[c])) else
                  (str(r[c]) if isinstance(r[c], str) else f"{r[c]:.3f}")) for c in cols]
        lines.append(f"| {r['method']} | {r['n_seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def data_source_markdown(table: pd.DataFrame) -> str:
    lines = ["| training data | arms | fix rate [95% t] | break rate [95% t] | Acc@t1 − base [95% t] | seeds |", "|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        cells = [f"{100 * r[m]:.1f} [{100 * r[f'{m}_lo']:.1f}, {100 * r[f'{m}_hi']:.1f}]" for m in ("fix_rate", "break_rate", "acc_t1_change")]
        lines.append(f"| {r['what']} | {r['arms']} | " + " | ".join(cells) + f" | {r['n_seeds']} |")
    lines += ["", "Per seed, the mean over the arms of each data source, then the mean and t interval over seeds (per cent). "
              "Every arm at its own tuned learning rate and the one budget (conf/budget/matched.yaml)."]
    return "\n".join(lines)


# --- the report `make_figures` writes (figures/mechanisms.md) --------------------------------------
def overlap_frame(sweep_dir) -> pd.DataFrame:
    """The overlap rows of `analysis.sparsity` for the matched pair: "between" (SCoRe vs Pair-SFT D+
    on each seed's base) and "within" (pairs of one arm's runs on the one shared base, the
    `shared_base/` runs with their base seed's own run), with a `kind` column."""
    from selfcorrect.analysis import sparsity

    shared = f"{SHARED_BASE_DIR}/"
    rows = [{**r, "kind": "between"} for r in sparsity.overlap_rows(sweep_dir, "between", labels=[RL, SFT])
            if not (r["run_a"].startswith(shared) or r["run_b"].startswith(shared))]  # one pair per reported seed and base
    rows += [{**r, "kind": "within"} for r in sparsity.overlap_rows(sweep_dir, "within", labels=[RL, SFT])]
    return pd.DataFrame(rows)


def report(sweep, sweep_dir, testbed: str) -> str:
    """figures/mechanisms.md: the pre-registered readings with verdicts, the measures per arm, the
    data-source table, the overlap rows and the sparsity recomputed from the weights."""
    from selfcorrect.analysis import sparsity

    overlaps = overlap_frame(sweep_dir)
    shares = pd.DataFrame(sparsity.unchanged_share_in_embeddings(sweep_dir))
    shares = shares[~shares["run"].str.startswith(f"{SHARED_BASE_DIR}/")] if not shares.empty else shares
    rs = readings(sweep.runs, sweep.history, testbed, overlaps, shares)
    weights = sparsity.run_rows(sweep_dir)
    worst = max((r["saved_max_abs_diff"] for r in weights if r["saved_max_abs_diff"] is not None), default=None)
    parts = [f"# Mechanisms, {testbed} testbed (issue 23)", "",
             "## Pre-registered readings (docs/preregistration/2026-12-06_mechanism_measures*.md)", "", readings_markdown(rs), "",
             "## The measures per arm (kept checkpoints, test problems; mean over seeds)", "",
             measures_markdown(measures_table(with_derived(sweep.runs))), "",
             "## On-policy vs off-policy data", "", data_source_markdown(data_source_table(sweep.runs)), ""]
    if not overlaps.empty:
        cols = ["kind", "label_a", "label_b", "seed_a", "seed_b", "dtype", "o12", "o12_chance", "jaccard", "joint", "joint_chance", "lift",
                "lift_by_tensor"]
        parts += ["## Overlap of the updated sets (tol 1e-5)", "", sparsity.markdown_table(overlaps[cols].to_dict("records"), cols), ""]
    parts += [f"Sparsity recomputed from the saved weights for {len(weights)} runs; largest |metrics.json − recomputed| = "
              f"{'none saved' if worst is None else f'{worst:.3g}'}."]
    return "\n".join(parts)
