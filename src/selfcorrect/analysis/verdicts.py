"""The pre-registered primary comparisons, their predictions, and the verdicts a sweep gives them.

**Primary family** (written before the 10-seed sweep; commit history shows the order): SCoRe
minus each of eight arms in Δ(t1, t2), per testbed. Tested with the exact sign-flip permutation
test on the per-seed paired differences (`stats.seed_paired`; its t interval with n − 1 df is the
reported interval), Holm-adjusted over the eight comparisons of a testbed. Every other comparison
is exploratory: reported with its seed-level interval and unadjusted p, never a verdict.

**Verdict** of a prediction (direction +1: SCoRe higher, −1: lower, 0: no difference):
- "holds": Holm-adjusted p < 0.05 and the difference has the predicted sign;
- "does not hold": adjusted p < 0.05 with the other sign (or any sign, for a prediction of no difference);
- "not decided": adjusted p ≥ 0.05 for a predicted difference (too little power: see the
  detectable difference);
- "no difference detected": adjusted p ≥ 0.05 for a prediction of no difference (not a proof of
  equality: the interval says how large a difference remains possible);
- "equivalent within ±m": a prediction of no difference whose two one-sided t-tests (TOST, n − 1 df) reject a
  difference of at least the margin m at level 0.05 (and no difference detected): only where a margin was fixed
  before the sweep by its pre-registration (the 10-seed sweep's fixed none, so its verdicts stay "no difference
  detected").

**Which pre-registration judges a sweep** (`Preregistration`): the exploratory 10-seed sweep on seeds 0–9
(`TEN_SEED_SWEEP`) and the confirmatory replication on seeds 10–19 (`CONFIRMATORY`, its own predictions and
margins); `for_seeds` picks the one whose seeds a sweep's runs lie in, a caller may name one (the pooled 20 seeds).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from selfcorrect.analysis.stats import (SeedComparison, detectable_difference, holm, holm_levels, seed_paired, seeds_needed,
                                       seeds_needed_rule, sign_flip_floor, sign_flip_holm_power, t_quantile, tost_p)

ALPHA = 0.05
TEACHER = "sft_teacher[error_model=random_digit]"  # the teacher arm's default error model
PRIMARY: tuple[tuple[str, str, str], ...] = (
    ("score", "base", "delta"),
    ("score", "rl_single_turn", "delta"),
    ("score", "rl_multi_turn_naive", "delta"),
    ("score", "sft_self", "delta"),          # Pair-SFT as the paper's main table has it (D_SFT)
    ("score", "star_plus", "delta"),         # STaR as the paper's main table has it (D+_STaR)
    ("score", TEACHER, "delta"),
    ("score", "score_no_stage1", "delta"),   # Table 4 ablations
    ("score", "score_no_shaping", "delta"),
)
# predicted sign of SCoRe − B per testbed (docs/preregistration/2026-12-06_ten_seed_sweep*.md)
PREDICTIONS: dict[str, dict[str, int]] = {
    "arithmetic": {"base": +1, "rl_single_turn": +1, "rl_multi_turn_naive": 0, "sft_self": -1, "star_plus": -1,
                   TEACHER: -1, "score_no_stage1": 0, "score_no_shaping": 0},
    "answer_first": {"base": +1, "rl_single_turn": +1, "rl_multi_turn_naive": +1, "sft_self": +1, "star_plus": 0,
                     TEACHER: +1, "score_no_stage1": 0, "score_no_shaping": 0},
}


@dataclass(frozen=True)
class Preregistration:
    """What a dated pre-registration fixed before the sweep it judges: the seeds, the predicted sign of SCoRe − B per
    testbed and comparison, and the equivalence margin (Δ, as a fraction) of its "no difference" predictions."""
    name: str
    file: str  # under docs/preregistration/
    seeds: range
    predictions: dict[str, dict[str, int]]
    margins: dict[str, float]

    def __post_init__(self):
        for testbed, preds in self.predictions.items():
            if set(preds) != {b for _, b, _ in PRIMARY} or not set(preds.values()) <= {-1, 0, 1}:
                raise ValueError(f"{self.name}: predictions for {testbed} must give each primary arm -1, 0 or +1: {preds}")
        if any(not 0 < m < 1 for m in self.margins.values()):
            raise ValueError(f"{self.name}: a margin is a fraction of Δ in (0, 1): {self.margins}")


TEN_SEED_SWEEP = Preregistration("ten_seed_sweep", "2026-12-06_ten_seed_sweep.md", range(0, 10), PREDICTIONS, {})
# the confirmatory replication (docs/preregistration/2026-12-08_confirmatory_replication.md): each prediction is the
# sign of the exploratory sweep's mean where its unadjusted 95 % t interval excludes 0, else no difference; one
# margin of ±2 points of Δ per testbed (the paper's Table 4 ablation effects, 2.2 and 1.8)
CONFIRMATORY = Preregistration(
    "confirmatory_replication", "2026-12-08_confirmatory_replication.md", range(10, 20),
    {"arithmetic": {"base": +1, "rl_single_turn": +1, "rl_multi_turn_naive": -1, "sft_self": -1, "star_plus": 0,
                    TEACHER: 0, "score_no_stage1": 0, "score_no_shaping": +1},
     "answer_first": {"base": +1, "rl_single_turn": +1, "rl_multi_turn_naive": +1, "sft_self": +1, "star_plus": +1,
                      TEACHER: +1, "score_no_stage1": 0, "score_no_shaping": 0}},
    {"arithmetic": 0.02, "answer_first": 0.02})
PREREGISTRATIONS: dict[str, Preregistration] = {p.name: p for p in (TEN_SEED_SWEEP, CONFIRMATORY)}
PREDICTED = {1: "SCoRe higher", -1: "SCoRe lower", 0: "no difference", None: "—"}  # a prediction in words


def for_seeds(seeds: Iterable[int]) -> Preregistration:
    """The pre-registration whose seeds hold all of `seeds` (the 10-seed sweep's when none does: its predictions
    stay the exploratory reading of any other sweep)."""
    seeds = {int(s) for s in seeds}
    return next((p for p in PREREGISTRATIONS.values() if seeds and seeds <= set(p.seeds)), TEN_SEED_SWEEP)


def per_seed(sweep, label: str, metric: str) -> pd.Series:
    """One value per seed (index: seed) of a run-level metric, e.g. `delta`, `fix_rate`,
    `paper_checkpoint/delta` (the secondary table's checkpoint)."""
    rows = sweep.runs[sweep.runs["label"] == label]
    if rows.empty:
        raise ValueError(f"no runs labelled {label!r}; labels: {sweep.labels}")
    if metric not in rows:
        raise ValueError(f"runs of {label!r} have no metric {metric!r}")
    return rows.set_index("seed")[metric].astype(float).sort_index()


def compare(sweep, a: str, b: str, metric: str, metric_b: str | None = None) -> SeedComparison:
    """metric(a) − metric_b(b) (metric_b defaults to metric) over the seeds both have (seed s of
    both shares its base model)."""
    va, vb = per_seed(sweep, a, metric), per_seed(sweep, b, metric_b or metric)
    seeds = sorted(set(va.dropna().index) & set(vb.dropna().index))
    if len(seeds) < 2:
        raise ValueError(f"{a} vs {b} in {metric}: {len(seeds)} shared seeds with values; a seed-level test needs 2")
    return seed_paired(va.loc[seeds].to_numpy(), vb.loc[seeds].to_numpy(), seeds=seeds)


def verdict(diff: float, p_adjusted: float, prediction: int, alpha: float = ALPHA, tost: float | None = None,
            margin: float | None = None) -> str:
    """The verdict of one comparison; `tost` is the TOST p at `margin` for a prediction of no difference."""
    significant = p_adjusted < alpha
    if prediction == 0:
        if significant:
            return "does not hold (a difference)"
        if tost is not None and margin is not None and tost < alpha:
            return f"equivalent within ±{100 * margin:g} points"
        return "no difference detected"
    if significant:
        return "holds" if np.sign(diff) == prediction else "does not hold (the opposite)"
    return "not decided"


def missing_arms(sweep, comparisons: Sequence[tuple[str, str, str]] = PRIMARY) -> list[str]:
    """The arms of `comparisons` that the sweep has no run of."""
    return sorted({arm for a, b, _ in comparisons for arm in (a, b)} - set(sweep.labels))


def primary_table(sweep, testbed: str, comparisons: Sequence[tuple[str, str, str]] = PRIMARY,
                  metric_prefix: str = "", partial: bool = False,
                  preregistration: Preregistration | None = None) -> pd.DataFrame:
    """The primary family of one testbed's sweep: per comparison the per-seed differences, their
    mean, t interval, exact sign-flip p, Holm-adjusted p, the prediction and the verdict, and the
    difference 10 (n) seeds detect with 80 % power at the comparison's seed-level s.d.
    `metric_prefix="paper_checkpoint/"` gives the same family on the paper's checkpoints.
    A missing arm is refused (it would shrink Holm's family and so change every verdict) unless
    `partial`: then the table holds the comparisons present, and the caller must say which are missing.
    Predictions and margins come from `preregistration` (default: `for_seeds` of the sweep's seeds)."""
    missing = missing_arms(sweep, comparisons)
    if missing and not partial:
        raise ValueError(f"the primary family needs arms {missing} that {getattr(sweep, 'path', 'the sweep')} has no run "
                         "of: a missing arm shrinks Holm's family (partial=True for a labelled partial table)")
    rows, ps = [], {}
    prereg = preregistration or for_seeds(sweep.runs["seed"])
    predictions = prereg.predictions.get(testbed, {})
    for a, b, metric in comparisons:
        if b in missing or a in missing:
            continue
        # the base trains nothing: its paper checkpoint is itself
        c = compare(sweep, a, b, metric_prefix + metric, metric if b == "base" else metric_prefix + metric)
        key = f"{a} − {b}"
        ps[key] = c.p_value
        sd = float(np.std(c.per_seed, ddof=1))
        rows.append({"comparison": key, "a": a, "b": b, "metric": metric, "diff": c.diff, "se": c.se, "lo": c.lo, "hi": c.hi,
                     "p_value": c.p_value, "n_seeds": c.n, "per_seed": c.per_seed, "seeds": c.seeds, "sd": sd,
                     "detectable": detectable_difference(sd, c.n) if sd > 0 and c.n >= 2 else math.nan,
                     "seeds_needed": seeds_needed(c.diff, sd),
                     "prediction": predictions.get(b)})
    adjusted, levels = holm(ps), holm_levels(ps)
    for r in rows:
        r["p_holm"] = adjusted[r["comparison"]]
        # the t interval at the level Holm tests this comparison at (its verdict's level), beside the unadjusted 95 % one
        r["holm_level"] = levels[r["comparison"]]
        half = t_quantile(1 - r["holm_level"] / 2, r["n_seeds"] - 1) * r["se"] if r["n_seeds"] >= 2 else math.nan
        r["lo_holm"], r["hi_holm"] = r["diff"] - half, r["diff"] + half
        # the rule actually used (sign-flip + Holm over this family), simulated at the observed effect in s.d. units
        effect = abs(r["diff"]) / r["sd"] if r["sd"] > 0 else math.nan
        ok = math.isfinite(effect) and r["n_seeds"] >= 2
        r["rule_power_first"], r["rule_power_last"] = sign_flip_holm_power(effect, r["n_seeds"], len(rows), n_sim=2000) if ok else (math.nan, math.nan)
        r["seeds_needed_rule"] = seeds_needed_rule(effect, len(rows)) if ok else None
        r["sign_flip_floor"] = sign_flip_floor(r["n_seeds"])
        margin = prereg.margins.get(testbed) if r["prediction"] == 0 else None
        r["tost_p"] = tost_p(r["per_seed"], margin) if margin else math.nan
        r["verdict"] = (verdict(r["diff"], r["p_holm"], r["prediction"], tost=r["tost_p"], margin=margin)
                        if r["prediction"] is not None else "no prediction")
    return pd.DataFrame(rows)


def exploratory(sweep, pairs: Sequence[tuple[str, str]], metrics: Sequence[str] = ("delta", "acc_t2")) -> pd.DataFrame:
    """Seed-level comparisons outside the primary family (unadjusted p: exploratory)."""
    rows = []
    for a, b in pairs:
        for m in metrics:
            try:
                c = compare(sweep, a, b, m)
            except ValueError:
                continue
            rows.append({"a": a, "b": b, "metric": m, "diff": c.diff, "se": c.se, "lo": c.lo, "hi": c.hi, "p_value": c.p_value,
                         "n_seeds": c.n, "per_seed": c.per_seed})
    return pd.DataFrame(rows, columns=["a", "b", "metric", "diff", "se", "lo", "hi", "p_value", "n_seeds", "per_seed"])


def markdown(table: pd.DataFrame, names) -> str:
    """The primary table as Markdown (points; per-seed differences beside each comparison)."""
    def needed(n) -> str:
        return "—" if n is None or (isinstance(n, float) and math.isnan(n)) else str(int(n))

    def power(r) -> str:
        first, last = r.get("rule_power_first", math.nan), r.get("rule_power_last", math.nan)
        return "—" if not math.isfinite(first) else f"{100 * first:.0f}-{100 * last:.0f} % ({needed(r.get('seeds_needed_rule'))})"

    def at_level(r) -> str:
        lo, hi = r.get("lo_holm", math.nan), r.get("hi_holm", math.nan)
        return "—" if not math.isfinite(lo) else f"[{100 * lo:+.1f}, {100 * hi:+.1f}] ({100 * (1 - r['holm_level']):.2f} %)"

    # a TOST column only where a pre-registration fixed a margin (the 10-seed sweep's table is unchanged)
    tost = "tost_p" in table and bool(np.isfinite(table["tost_p"].astype(float)).any())
    lines = ["| SCoRe − B | Δ diff (pts) | 95% t interval (unadjusted) | t interval at its Holm level ⁴ | p (sign-flip) | p Holm | per seed | detectable at n (pts) ¹ | seeds for this diff ² | power of the rule (seeds for 80 %) ³ | predicted |"
             + (" TOST p at the margin ⁵ |" if tost else "") + " verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if tost else "")]
    for _, r in table.iterrows():
        per = ", ".join(f"{100 * d:+.1f}" for d in r["per_seed"])
        tost_cell = ((f" {r['tost_p']:.3f} |" if math.isfinite(r["tost_p"]) else " — |") if tost else "")
        lines.append(f"| {names(r['b'])} | {100 * r['diff']:+.1f} | [{100 * r['lo']:+.1f}, {100 * r['hi']:+.1f}] | {at_level(r)} | {r['p_value']:.3f} | "
                     f"{r['p_holm']:.3f} | {per} | {100 * r['detectable']:.1f} | {needed(r.get('seeds_needed'))} | {power(r)} | {PREDICTED.get(r['prediction'])} |{tost_cell} **{r['verdict']}** |")
    lines += ["", "¹ the difference (points) that a paired t-test over this many seeds detects with 80 % power at the "
              "comparison's own seed-level s.d. (5 %, two-sided, before the Holm adjustment).",
              "² the fewest seeds at which a true difference of the observed size is detected with 80 % power at that s.d. "
              "(same test; > 1000: —).",
              "³ the rule actually used, simulated: the exact sign-flip test, Holm over the family, at a true difference of the "
              "observed size in units of the comparison's seed-level s.d.; Holm's first step (α/family) to its last (α), and the "
              "seeds the first step needs for 80 % (> 30: —).",
              "⁴ the t interval at the level Holm's step-down procedure tests the comparison at (α/(m − step) by raw p, held at "
              "the first non-rejecting step's level): the interval to read beside the verdict (the verdict's test is the "
              "sign-flip one, so the two can disagree near the boundary)."]
    if tost:
        lines.append("⁵ the two one-sided t-tests (n − 1 df) of a difference of at least the pre-registered margin, for the "
                     "predictions of no difference: \"equivalent\" where p < 0.05 and the Holm p ≥ 0.05.")
    if len(table):
        n, m = int(table["n_seeds"].max()), len(table)
        lines.append(f"Sign-flip floor: with {n} seeds no p can be below 2/2^{n} = {sign_flip_floor(n):.4f}, i.e. "
                     f"{m * sign_flip_floor(n):.4f} after Holm's × {m}: a Holm p at that value means every seed agreed in sign.")
    return "\n".join(lines)
