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
from selfcorrect.analysis.stats import degenerate, holm, problem_paired, seed_interval, t_quantile, t_test_p, tost_p
from selfcorrect.analysis.stats import holm_levels as stats_holm_levels

# --- fixed by the pre-registration (docs/preregistration/2026-12-07_real_model_experiment.md) -----------------
PREREGISTRATION = ("docs/preregistration/2026-12-07_real_model_experiment.md (+ its amendment 1: identical per-seed "
                   "differences, seeds, Holm-consistent intervals)")
PRIMARY_METRIC = "delta"
# B, predicted sign of SCoRe − B in Δ (+1: SCoRe higher)
FAMILY = (("base", +1), ("sft_self_plus", +1), ("star_plus", +1), ("rl_single_turn", +1), ("rl_multi_turn_naive", +1))
ALPHA = 0.05
MARGIN = 0.03  # TOST equivalence margin on Δ (3 points)
SEEDS = (0, 1, 2)  # training seeds of every trained arm: verdicts only once all of them are complete
TABLE = ("acc_t1", "acc_t2", "delta", "delta_i2c", "delta_c2i", "fix_rate", "break_rate", "no_edit_rate")


def per_seed(sweep, label: str, metric: str, seeds=None) -> dict[int, float]:
    runs = sweep.runs[sweep.runs["label"] == label]
    if metric not in runs:  # a measure these runs do not record (older runs: truncation)
        return {}
    return {int(s): float(v) for s, v in zip(runs["seed"], runs[metric]) if v == v and (seeds is None or int(s) in seeds)}


def stray_runs(sweep) -> list[str]:
    """Runs outside the registered design (a trained seed not in SEEDS), which the verdicts leave out."""
    trained = sweep.runs[sweep.runs["label"] != "base"]
    return sorted(f"{r.label} seed {int(r.seed)}" for r in trained.itertuples() if int(r.seed) not in SEEDS)


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


def holm_levels(rows: list[dict]) -> None:
    """Each comparison's interval level (`stats.holm_levels` over the rows' raw p; amendment 1, item 3)."""
    levels = stats_holm_levels({i: r["p"] for i, r in enumerate(rows)}, ALPHA)
    for i, r in enumerate(rows):
        r["level"] = levels[i]


def primary(sweep) -> tuple[str, list[dict]]:
    score = per_seed(sweep, "score", PRIMARY_METRIC, SEEDS)
    rows = []
    for b, sign in FAMILY:
        other = per_seed(sweep, b, PRIMARY_METRIC, None if b == "base" else SEEDS)
        if not other:
            raise ValueError(f"the primary family needs arm {b!r}: no complete run of it in {sweep.path} (a missing "
                             "arm would shrink Holm's family)")
        if b == "base":  # one base model, greedy: the same value for every seed
            if len(other) != 1:
                raise ValueError(f"the design has one base run; {sweep.path} has {len(other)} (seeds {sorted(other)})")
            (base,) = other.values()
            d = np.array([score[s] - base for s in sorted(score)])
        else:
            shared = sorted(set(score) & set(other))
            d = np.array([score[s] - other[s] for s in shared])
        grid_a = sweep.grid("score", PRIMARY_METRIC)
        grid_b = sweep.grid(b, PRIMARY_METRIC)
        pm, plo, phi, pp = problem_paired(grid_a, grid_b)
        n = len(d)
        se = d.std(ddof=1) / math.sqrt(n) if n > 1 else float("nan")
        half90 = t_quantile(1 - ALPHA, n - 1) * se if n > 1 else float("nan")  # the TOST's own interval (90 %)
        rows.append({"b": b, "sign": sign, "d": d, "mean": float(d.mean()), "se": se, "degenerate": degenerate(d),
                     "p": t_test_p(d), "tost": tost_p(d, MARGIN), "tost_lo": float(d.mean()) - half90,
                     "tost_hi": float(d.mean()) + half90, "problem": (pm, plo, phi, pp)})
    # Holm over the whole family; an undefined p counts as p = 1 (the family stays five: amendment 1, item 1)
    adjusted = holm({r["b"]: 1.0 if math.isnan(r["p"]) else r["p"] for r in rows})
    holm_levels(rows)
    for r in rows:
        half = t_quantile(1 - r["level"] / 2, len(r["d"]) - 1) * r["se"] if len(r["d"]) > 1 else float("nan")
        r.update(p_holm=adjusted[r["b"]], lo=r["mean"] - half, hi=r["mean"] + half)
        if r["degenerate"]:
            r["verdict"] = "not decided (identical per-seed differences: the t-test is undefined)"
        elif r["p_holm"] < ALPHA:
            r["verdict"] = "holds" if np.sign(r["mean"]) == r["sign"] else "contradicted"
        elif r["tost"] < ALPHA:
            r["verdict"] = f"equivalent within ±{100 * MARGIN:.0f} points"
        else:
            r["verdict"] = "not decided"
    lines = [f"SCoRe − B in Δ (percentage points), training seeds {', '.join(map(str, SEEDS))}. Seed-level: the per-seed "
             "differences, their mean and t interval at the level of the comparison's Holm step (n − 1 df), the t-test "
             f"p, Holm over the {len(rows)} comparisons, the TOST p at ±{100 * MARGIN:.0f} points with its 90 % interval "
             "(not adjusted for the five). Per-problem: the {n} test problems' Δ averaged over each arm's seeds, paired t "
             "over problems (conditional on these trained seeds; not the verdict).".replace("{n}", str(len(sweep.problem_ids))),
             "", "| B | predicted | per seed | mean [Holm-level interval] | p | p (Holm) | TOST p [90 % interval] | verdict | "
             "per-problem mean [95 %], p |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        seeds = ", ".join(f"{100 * x:+.1f}" for x in r["d"])
        pm, plo, phi, pp = r["problem"]
        lines.append(f"| {display_name(r['b'])} | SCoRe {'higher' if r['sign'] > 0 else 'lower'} | {seeds} | "
                     f"{100 * r['mean']:+.1f} [{fmt(r['lo'], sign=True)}, {fmt(r['hi'], sign=True)}] ({r['level'] and 1 - r['level']:.2%}) | "
                     f"{fmt_p(r['p'])} | {fmt_p(r['p_holm'])} | {fmt_p(r['tost'])} [{fmt(r['tost_lo'], sign=True)}, "
                     f"{fmt(r['tost_hi'], sign=True)}] | {r['verdict']} | {100 * pm:+.1f} [{100 * plo:+.1f}, {100 * phi:+.1f}], {fmt_p(pp)} |")
    return "\n".join(lines), rows


def fmt_p(p: float) -> str:
    if p is None or math.isnan(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def secondary_table(sweep) -> str:
    """The paper's checkpoints (RL: best training reward in the last half; SFT: last step) and the correction
    matrix's keep rate, mean over seeds (per cent)."""
    cols = (("paper_checkpoint/acc_t1", "Acc@t1"), ("paper_checkpoint/acc_t2", "Acc@t2"), ("paper_checkpoint/delta", "Δ"),
            ("paper_checkpoint/fix_rate", "fix"), ("paper_checkpoint/break_rate", "break"),
            ("correction_matrix/keep_rate", "matrix keep rate"))
    lines = ["| arm | " + " | ".join(c for _, c in cols) + " | same checkpoint as the kept one |",
             "|---|" + "---|" * (len(cols) + 1)]
    for label in sweep.labels:
        cells = []
        for key, _ in cols:
            own = key.removeprefix("paper_checkpoint/") if label == "base" else key  # the base is its own paper checkpoint
            vals = list(per_seed(sweep, label, own, None if label == "base" else SEEDS).values())
            cells.append(fmt(float(np.mean(vals)), sign=key.endswith("delta")) if vals else "—")
        same = list(per_seed(sweep, label, "checkpoint/same_as_paper").values())
        lines.append(f"| {display_name(label)} | " + " | ".join(cells) + f" | {f'{int(sum(same))}/{len(same)}' if same else '—'} |")
    return "\n".join(lines)


def truncation_flags(sweep) -> str:
    """Every run whose share of attempts that hit max_new_tokens exceeded the threshold (pre-registration: it says so)."""
    if "truncation/exceeded" not in sweep.runs:
        return "(these runs record no truncation)"
    bad = sweep.runs[sweep.runs["truncation/exceeded"] == True]  # noqa: E712 - a column of booleans (NaN: unrecorded)
    if bad.empty:
        return f"No run exceeded {100 * float(sweep.runs['truncation/threshold'].max()):.0f} % truncated attempts (turn 1 or 2)."
    return "Runs above the threshold: " + ", ".join(f"{r.run} (t1 {100 * r._asdict().get('truncation/t1', 0):.1f} %)"
                                                   for r in bad.itertuples())


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


def design_check(sweep) -> str:
    """A constant-answer check (a design check, not a result): the share of test problems whose gold answer is the
    most common one (what always giving that answer scores), and per arm the share of first and second attempts that
    give the arm's own most common answer. An Acc@t1 near the first and a share near 100 % mean the model guesses one
    answer rather than solving the task."""
    from collections import Counter

    from selfcorrect.runtime.records import read_jsonl

    lines = ["| arm | most common y1 answer | share of y1 giving it | share of y2 giving it | Acc@t1 |", "|---|---|---|---|---|"]
    gold_share = None
    for label in sweep.labels:
        shares1, shares2, modes, accs = [], [], Counter(), []
        for path in sweep.runs[sweep.runs["label"] == label]["path"]:
            recs = read_jsonl(Path(path) / "generations.jsonl")
            top, n = Counter(r.get("answer1") for r in recs).most_common(1)[0]
            modes[top] += 1
            shares1.append(n / len(recs))
            shares2.append(sum(r.get("answer2") == top for r in recs) / len(recs))
            accs.append(sum(bool(r["correct1"]) for r in recs) / len(recs))
            if gold_share is None:
                answer, m = Counter(str(r["answer"]) for r in recs).most_common(1)[0]
                gold_share = (answer, m / len(recs))
        lines.append(f"| {display_name(label)} | {', '.join(map(str, modes))} | {fmt(float(np.mean(shares1)))} | "
                     f"{fmt(float(np.mean(shares2)))} | {fmt(float(np.mean(accs)))} |")
    head = (f"Always answering {gold_share[0]!r} scores {100 * gold_share[1]:.1f} % on these test problems (the most common "
            "gold answer)." if gold_share else "")
    return head + "\n\n" + "\n".join(lines)


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
        "## Secondary: the paper's checkpoints and the correction matrix (per cent, mean over seeds)", secondary_table(sweep),
        "## Truncation", truncation_flags(sweep),
        "## Design check: one answer for every problem? (not a registered measure)", design_check(sweep),
        "## Cost per run (wall minutes; stages in seconds, mean over the arm's runs; run.json)", cost_table(sweep),
    ])
    stray = stray_runs(sweep)
    if stray:
        out += f"\n\nLeft out of the verdicts (not in the registered design): {', '.join(stray)}."
    if walls is not None:
        out += f"\n\nRun wall time: {walls.sum() / 60:.0f} min in all."
    print(out)
    (args.out or args.sweep / "summary.md").write_text(out + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
