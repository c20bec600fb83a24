"""Readings the Acc@t1 ceiling and the probe's confounds do not bias (issue 22).

**Δ against Acc@t1 over every checkpoint.** Δ is bounded by 1 − Acc@t1, so an arm whose first
attempt is close to the base's has more room than one whose first attempt is near the ceiling.
Every arm is evaluated on the same validation problems at steps 0 (the base), 12, 24, ... (the
monitoring, `training.arms.validation_evaluator`); `checkpoint_points` reads those points from the history.
`at_acc_t1` interpolates a seed's Δ (or fix rate) linearly between the two trained checkpoints
whose validation Acc@t1 bracket a target, only inside the range they cover (never extrapolated);
`matched_comparison` compares two arms per seed at the seed's base Acc@t1 (its step-0 value:
"Δ when the first attempt is as good as the base's") where both trajectories reach it, or at the
middle of the Acc@t1 range both cover, and says on how many seeds they do not.

**The probe without confounds.** `probe_strata` splits the matched mismatch probe (problems where
both the base's and the arm's own first attempts are wrong; `probe.stratified_probe`) by whether
the two first attempts have the same error kind at the same site, and by whether their working
spells the right answer (readable), per seed, so that a gap between fixing the base's attempts and
fixing one's own is not a difference in how readable the two sets of attempts are.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from selfcorrect.analysis.stats import seed_interval, seed_paired
from selfcorrect.evaluation.probe import STRATA, stratified_probe
from selfcorrect.tasks import make_task

POINT_METRICS = {"acc_t1": "val/acc_t1", "acc_t2": "val/acc_t2", "delta": "val/delta", "fix_rate": "val/fix_rate"}


def checkpoint_points(sweep) -> pd.DataFrame:
    """One row per run × evaluated step (validation): label, seed, step and the point metrics."""
    h = sweep.history
    h = h[h["step"].notna() & h["metric"].isin(POINT_METRICS.values())]
    if h.empty:
        return pd.DataFrame(columns=["run", "label", "seed", "step", *POINT_METRICS])
    wide = h.pivot_table(index=["run", "label", "seed", "step"], columns="metric", values="value", aggfunc="last").reset_index()
    wide = wide.rename(columns={v: k for k, v in POINT_METRICS.items()})
    if "fix_rate" not in wide and "val/correction_rate_own" in sweep.history["metric"].values:
        fix = sweep.history[sweep.history["metric"] == "val/correction_rate_own"]
        wide = wide.merge(fix.rename(columns={"value": "fix_rate"})[["run", "step", "fix_rate"]], on=["run", "step"], how="left")
    return wide.sort_values(["label", "seed", "step"]).reset_index(drop=True)


def at_acc_t1(points: pd.DataFrame, target: float, metric: str = "delta") -> float:
    """`metric` at validation Acc@t1 = `target` along one run's checkpoints (linear between the
    nearest checkpoints on either side, in the order of Acc@t1), NaN outside their range."""
    p = points.dropna(subset=["acc_t1", metric]).sort_values(["acc_t1", "step"])
    x, y = p["acc_t1"].to_numpy(float), p[metric].to_numpy(float)
    if len(x) == 0 or not x.min() <= target <= x.max():
        return math.nan
    hits = y[x == target]
    if len(hits):
        return float(hits.mean())
    i = int(np.searchsorted(x, target))
    return float(y[i - 1] + (y[i] - y[i - 1]) * (target - x[i - 1]) / (x[i] - x[i - 1]))


def matched_comparison(sweep, a: str, b: str, metric: str = "delta", points: pd.DataFrame | None = None,
                       target: str = "base") -> dict:
    """`metric` of a − b at equal validation Acc@t1, per seed, along each arm's trained checkpoints
    (steps > 0; `at_acc_t1`, never extrapolated). `target="base"`: at the seed's base Acc@t1 (its
    step-0 value), on the seeds where both curves reach it; `"overlap"`: at the middle of the
    Acc@t1 range both arms' checkpoints of that seed cover, on the seeds where those ranges
    overlap. Returns the seed-level comparison and the seeds it misses."""
    if target not in ("base", "overlap"):
        raise ValueError(f"target must be 'base' or 'overlap', got {target!r}")
    pts = checkpoint_points(sweep) if points is None else points
    per: dict[int, dict] = {}
    for seed in sorted(set(pts.loc[pts["label"] == a, "seed"]) & set(pts.loc[pts["label"] == b, "seed"])):
        ga, gb = (pts[(pts["label"] == x) & (pts["seed"] == seed)] for x in (a, b))
        base = ga.loc[ga["step"] == 0, "acc_t1"]
        ta, tb = ga[ga["step"] > 0].dropna(subset=["acc_t1"]), gb[gb["step"] > 0].dropna(subset=["acc_t1"])
        if ta.empty or tb.empty:
            continue
        if target == "base":
            t = float(base.iloc[0]) if len(base) else math.nan
        else:
            lo, hi = max(ta["acc_t1"].min(), tb["acc_t1"].min()), min(ta["acc_t1"].max(), tb["acc_t1"].max())
            t = (lo + hi) / 2 if lo <= hi else math.nan
        per[seed] = {"target": t, a: at_acc_t1(ta, t, metric) if t == t else math.nan,
                     b: at_acc_t1(tb, t, metric) if t == t else math.nan}
    seeds = [s for s, v in per.items() if not (math.isnan(v[a]) or math.isnan(v[b]))]
    missing = sorted(set(per) - set(seeds))
    out = {"a": a, "b": b, "metric": metric, "target": target, "n_seeds": len(seeds), "seeds_missing": missing,
           "acc_t1": float(np.mean([per[s]["target"] for s in seeds])) if seeds else math.nan,
           "a_mean": float(np.mean([per[s][a] for s in seeds])) if seeds else math.nan,
           "b_mean": float(np.mean([per[s][b] for s in seeds])) if seeds else math.nan}
    if len(seeds) >= 2:
        c = seed_paired([per[s][a] for s in seeds], [per[s][b] for s in seeds], seeds=seeds)
        out.update(diff=c.diff, lo=c.lo, hi=c.hi, p_value=c.p_value, per_seed=c.per_seed)
    else:
        out.update(diff=math.nan, lo=math.nan, hi=math.nan, p_value=math.nan, per_seed=())
    return out


def probe_strata(sweep, probe: str = "base") -> pd.DataFrame:
    """One row per run × stratum of the matched probe on `probe` (the base's first attempts):
    offline and own correction rates, their gap, n problems."""
    rows = []
    tasks: dict[str, object] = {}
    for name, run in sweep.run_objects.items():
        records = run.probes.get(probe)
        if not records:
            continue
        key = repr(run.config["task"])
        if key not in tasks:
            from omegaconf import OmegaConf

            tasks[key] = make_task(OmegaConf.create(run.config["task"]))
        for stratum, v in stratified_probe(records, tasks[key]).items():
            rows.append({"run": name, "label": run.label, "seed": run.seed, "stratum": stratum, **v})
    return pd.DataFrame(rows, columns=["run", "label", "seed", "stratum", "offline", "own", "gap", "n"])


def probe_strata_table(sweep, probe: str = "base") -> pd.DataFrame:
    """label × stratum: mean gap over seeds with its seed-level t interval, problems per seed."""
    df = probe_strata(sweep, probe)
    rows = []
    for (label, stratum), g in df.groupby(["label", "stratum"], sort=False):
        gaps = g["gap"].dropna()
        e = seed_interval(gaps.to_numpy()) if len(gaps) else None
        rows.append({"label": label, "stratum": stratum, "n_seeds": len(gaps), "n_per_seed": float(g["n"].mean()),
                     "gap": e.mean if e else math.nan, "lo": e.lo if e else math.nan, "hi": e.hi if e else math.nan,
                     "offline": float(g["offline"].mean()), "own": float(g["own"].mean())})
    out = pd.DataFrame(rows)
    if len(out):
        out["stratum"] = pd.Categorical(out["stratum"], STRATA, ordered=True)
    return out


def matrix_sites(sweep) -> pd.DataFrame:
    """Per label: the correction matrix's fix rate pooled over the error kinds at the base's error
    sites and at the policy's own, per seed (runs where both sites have rows), and own − base with its
    seed-level t interval: are the policy's own errors harder to fix than the base's, on first
    attempts of one form (each written by the error model with exactly one error)?"""
    rows = []
    for label in sweep.labels:
        per = []
        for run in (r for r in sweep.run_objects.values() if r.label == label):
            m = run.metrics.get("correction_matrix") or {}
            fix, n = m.get("fix_rate", {}), m.get("n", {})
            pooled = {}
            for site in ("base", "own"):
                cells = [(fix[k][site], n[k][site]) for k in fix if site in n[k] and n[k][site]]
                total = sum(c for _, c in cells)
                pooled[site] = (sum(f * c for f, c in cells) / total, total) if total else (math.nan, 0)
            if pooled["base"][1] and pooled["own"][1]:
                per.append((run.seed, pooled["base"][0], pooled["own"][0], pooled["base"][1], pooled["own"][1]))
        if len(per) < 2:
            continue
        per.sort()
        c = seed_paired([p[2] for p in per], [p[1] for p in per], seeds=[p[0] for p in per])
        rows.append({"label": label, "n_seeds": c.n, "base": float(np.mean([p[1] for p in per])),
                     "own": float(np.mean([p[2] for p in per])), "diff": c.diff, "lo": c.lo, "hi": c.hi,
                     "n_base": float(np.mean([p[3] for p in per])), "n_own": float(np.mean([p[4] for p in per]))})
    return pd.DataFrame(rows, columns=["label", "n_seeds", "base", "own", "diff", "lo", "hi", "n_base", "n_own"])
