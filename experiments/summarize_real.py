"""The real-model experiment's results, by the rules of its pre-registration
(docs/preregistration/2026-12-07_real_model_experiment.md), from a `make sweep-real` directory:

    .venv/bin/python experiments/summarize_real.py outputs/sweeps/<stamp>-real [--out docs/real_models_results.md]

Every number is recomputed from the runs' saved records (`analysis.results.load_sweep`). Printed (and written to
`<sweep>/summary.md`, or `--out`):
1. the main table: per arm, mean over the training seeds with the seed-level t interval (n − 1 df) of Acc@t1,
   Acc@t2, Δ, Δ i→c, Δ c→i, fix and break rates, the no-edit rate, and the share of attempts that hit
   `max_new_tokens` (turn 1 / turn 2); the base arm is one run (greedy evaluation of the one base model);
2. the primary family: SCoRe − B in Δ for each B of the pre-registration; per comparison the per-seed differences,
   their mean and t interval (Holm-consistent: at the Holm-adjusted level of its step), the seed-level t-test p,
   Holm over the family, the TOST p at the margin, the verdict; beside it the per-problem paired test
   (conditional on the trained seeds, labelled so);
3. the mismatch probe of the offline arms and the rates of the paper's checkpoints (secondary).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from selfcorrect.analysis.labels import display_name
from selfcorrect.analysis.results import load_sweep
from selfcorrect.analysis.stats import holm, problem_paired, seed_interval, t_quantile, t_test_p, tost_p

# --- fixed by the pre-registration (docs/preregistration/2026-12-07_real_model_experiment.md) -----------------
PREREGISTRATION = "docs/preregistration/2026-12-07_real_model_experiment.md"
PRIMARY_METRIC = "delta"
# B, predicted sign of SCoRe − B in Δ (+1: SCoRe higher)
FAMILY = (("base", +1), ("sft_self_plus", +1), ("star_plus", +1), ("rl_single_turn", +1), ("rl_multi_turn_naive", +1))
ALPHA = 0.05
MARGIN = 0.03  # TOST equivalence margin on Δ (3 points)
SEEDS = (0, 1, 2)  # training seeds of every trained arm: verdicts only once all of them are complete
TABLE = ("acc_t1", "acc_t2", "delta", "delta_i2c", "delta_c2i", "fix_rate", "break_rate", "no_edit_rate")


def per_seed(sweep, label: str, metric: str) -> dict[int, float]:
    runs = sweep.runs[sweep.runs["label"] == label]
    if metric not in runs:  # a measure these runs do not record (older runs: truncation)
        return {}
    return {int(s): float(v) for s, v in zip(runs["seed"], runs[metric]) if v == v}


def fmt(x: float, pct: bool = True, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    v = 100 * x if pct else x
    return f"{v:+.1f}" if sign else f"{v:.1f}"


def main_table(sweep) -> str:
    lines = ["| arm | seeds | " + " | ".join(("Acc@t1", "Acc@t2", "Δ", "Δ i→c", "Δ c→i", "fix", "break", "no-edit")) +
             " | trunc t1 / t2 |", "|---|---|" + "---|" * len(TABLE) + "---|"]
    for label in sweep.labels:
        cells = []
        for m in TABLE:
            vals = list(per_seed(sweep, label, m).values())
            if not vals:
                cells.append("—")
            elif len(vals) == 1:
                cells.append(fmt(vals[0], sign=m == "delta"))
            else:
                e = seed_interval(np.array(vals))
                cells.append(f"{fmt(e.mean, sign=m == 'delta')} [{fmt(e.lo, sign=True)}, {fmt(e.hi, sign=True)}]")
        tr = [per_seed(sweep, label, f"truncation/t{t}") for t in (1, 2)]
        trunc = " / ".join(fmt(np.mean(list(d.values()))) if d else "—" for d in tr)
        n = len(per_seed(sweep, label, "acc_t1"))
        lines.append(f"| {display_name(label)} | {n} | " + " | ".join(cells) + f" | {trunc} |")
    return "\n".join(lines)


def missing_runs(sweep) -> list[str]:
    """The pre-registered runs without a complete record: the base, and every trained arm of the family × SEEDS."""
    missing = [] if per_seed(sweep, "base", PRIMARY_METRIC) else ["base"]
    for arm in ("score", *(b for b, _ in FAMILY if b != "base")):
        have = per_seed(sweep, arm, PRIMARY_METRIC)
        missing += [f"{arm} seed {s}" for s in SEEDS if s not in have]
    return missing


def primary(sweep) -> tuple[str, list[dict]]:
    score = per_seed(sweep, "score", PRIMARY_METRIC)
    rows = []
    for b, sign in FAMILY:
        other = per_seed(sweep, b, PRIMARY_METRIC)
        if not other:
            raise ValueError(f"the primary family needs arm {b!r}: no complete run of it in {sweep.path} (a missing "
                             "arm would shrink Holm's family)")
        if b == "base":  # one base model, greedy: the same value for every seed
            (base,) = other.values()
            d = np.array([score[s] - base for s in sorted(score)])
        else:
            shared = sorted(set(score) & set(other))
            d = np.array([score[s] - other[s] for s in shared])
        grid_a = sweep.grid("score", PRIMARY_METRIC)
        grid_b = sweep.grid(b, PRIMARY_METRIC)
        pm, plo, phi, pp = problem_paired(grid_a, grid_b)
        rows.append({"b": b, "sign": sign, "d": d, "mean": float(d.mean()), "p": t_test_p(d), "tost": tost_p(d, MARGIN),
                     "problem": (pm, plo, phi, pp)})
    adjusted = holm({r["b"]: r["p"] for r in rows})
    order = sorted(rows, key=lambda r: r["p"])
    for step, r in enumerate(order):  # the interval at the level Holm tests this comparison at
        level = ALPHA / (len(rows) - step)
        n = len(r["d"])
        se = r["d"].std(ddof=1) / math.sqrt(n) if n > 1 else float("nan")
        half = t_quantile(1 - level / 2, n - 1) * se if n > 1 else float("nan")
        r.update(p_holm=adjusted[r["b"]], level=level, lo=r["mean"] - half, hi=r["mean"] + half)
        if r["p_holm"] < ALPHA:
            r["verdict"] = "holds" if np.sign(r["mean"]) == r["sign"] else "contradicted"
        elif r["tost"] < ALPHA:
            r["verdict"] = f"equivalent within ±{100 * MARGIN:.0f} points"
        else:
            r["verdict"] = "not decided"
    lines = [f"SCoRe − B in Δ (points). Seed-level: per-seed differences, mean, t interval at Holm's level for the step "
             f"(n − 1 df), t-test p, Holm over the {len(rows)} comparisons, TOST p at ±{100 * MARGIN:.0f} points. Per-problem: "
             "the {n} test problems' Δ averaged over each arm's seeds, paired t over problems (conditional on these trained "
             "seeds; not the verdict).".replace("{n}", str(len(sweep.problem_ids))), "",
             "| B | predicted | per seed | mean [Holm-level interval] | p | p (Holm) | TOST p | verdict | per-problem mean [95 %], p |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        seeds = ", ".join(f"{100 * x:+.1f}" for x in r["d"])
        pm, plo, phi, pp = r["problem"]
        lines.append(f"| {display_name(r['b'])} | SCoRe {'higher' if r['sign'] > 0 else 'lower'} | {seeds} | "
                     f"{100 * r['mean']:+.1f} [{100 * r['lo']:+.1f}, {100 * r['hi']:+.1f}] ({1 - r['level']:.1%}) | {r['p']:.3f} | "
                     f"{r['p_holm']:.3f} | {r['tost']:.3f} | {r['verdict']} | {100 * pm:+.1f} [{100 * plo:+.1f}, {100 * phi:+.1f}], {pp:.3g} |")
    return "\n".join(lines), rows


def probe_table(sweep) -> str:
    cols = [c for c in sweep.runs.columns if c.startswith("probe/") and c.endswith("mismatch_gap_matched")]
    if not cols:
        return "(no probe measures in these runs)"
    lines = ["| arm | " + " | ".join(c.split("/")[1] for c in cols) + " |", "|---|" + "---|" * len(cols)]
    for label in sweep.labels:
        cells = []
        for c in cols:
            vals = list(per_seed(sweep, label, c).values())
            cells.append(fmt(float(np.mean(vals)), sign=True) if vals else "—")
        lines.append(f"| {display_name(label)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


TARGET_ARM_MIN = 20  # issue 30: one RL arm at the CPU experiment's budget in at most 20 minutes
COST_STAGES = ("sampling", "updates", "monitoring", "final_eval", "probe", "base_first", "matrix", "sparsity")


def cost_table(sweep) -> str:
    """Per arm: mean wall minutes per run (max), where the time went (run.json `stages`, mean seconds), peak memory,
    and whether an RL arm met the 20-minute target."""
    lines = ["| arm | runs | min per run (max) | " + " | ".join(COST_STAGES) + " | max RSS GB | ≤ 20 min |",
             "|---|---|---|" + "---|" * len(COST_STAGES) + "---|---|"]
    for label in sweep.labels:
        stats = [json.loads((Path(p) / "run.json").read_text()) for p in sweep.runs[sweep.runs["label"] == label]["path"]]
        walls = [st.get("wall_s", float("nan")) / 60 for st in stats]
        stages = [np.mean([st.get("stages", {}).get(k, 0.0) for st in stats]) for k in COST_STAGES]
        rss = max(st.get("max_rss_gb", float("nan")) for st in stats)
        met = "yes" if max(walls) <= TARGET_ARM_MIN else "**no**"
        lines.append(f"| {display_name(label)} | {len(stats)} | {np.mean(walls):.1f} ({max(walls):.1f}) | "
                     + " | ".join(f"{x:.0f}" for x in stages) + f" | {rss:.1f} | {met} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep", type=Path)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    sweep = load_sweep(args.sweep)
    missing = missing_runs(sweep)
    if missing:  # the pre-registration: verdicts only on the complete sweep (a missing run would change Holm's family)
        text = (f"**Incomplete sweep: verdicts withheld** ({len(missing)} pre-registered runs not complete: "
                f"{', '.join(missing)}). Resume it: `make sweep-real REAL_DIR={args.sweep}`.")
    else:
        text, _ = primary(sweep)
    walls = sweep.runs.get("wall_s")
    out = "\n\n".join([
        f"# Real-model experiment: {args.sweep}",
        f"Pre-registration: {PREREGISTRATION}. {len(sweep.runs)} runs, {len(sweep.problem_ids)} test problems.",
        "## Main table (per cent; mean over training seeds [t interval, n − 1 df])", main_table(sweep),
        "## Primary family", text,
        "## Mismatch probe (offline − own first attempts, matched problems; per cent, mean over seeds)", probe_table(sweep),
        "## Cost per run (wall minutes; stages in seconds, mean over the arm's runs; run.json)", cost_table(sweep),
    ])
    if walls is not None:
        out += f"\n\nRun wall time: {walls.sum() / 60:.0f} min in all."
    print(out)
    (args.out or args.sweep / "summary.md").write_text(out + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
