"""Every table and figure of the paper from one sweep directory.

    python experiments/make_figures.py [--sweep outputs/sweeps/<stamp>] [--out DIR]

Loads the sweep (metrics recomputed from the saved generations), writes the main table and
the paired comparisons as Markdown + CSV, samples the inference-scaling generations for the
chosen arms (cached in their run directories), draws every figure as PNG + PDF, and prints
the main table and the paths at the end.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import matplotlib
import pandas as pd

matplotlib.use("Agg")

from selfcorrect.analysis import diagnostics, figures, mechanisms, tables, verdicts  # noqa: E402
from selfcorrect.analysis.y1_ablation import y1_ablation_markdown, y1_ablation_table  # noqa: E402
from selfcorrect.analysis.labels import display_name, label_sort_key  # noqa: E402
from selfcorrect.analysis.results import default_sweep, load_sweep
from selfcorrect.evaluation.scaling_samples import ScalingSpec, sample_revisions  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sweep", type=Path, default=None, help="sweep directory (default: $SELFCORRECT_SWEEP, else the newest under outputs/sweeps/)")
    p.add_argument("--out", type=Path, default=None, help="output directory (default: <sweep>/figures)")
    p.add_argument("--allow-incomplete", action="store_true", help="analyse complete runs and list incomplete ones instead of failing")
    p.add_argument("--preregistration", choices=sorted(verdicts.PREREGISTRATIONS), default=None,
                   help="the pre-registration whose predictions and margins judge the primary family (default: the one "
                        "whose seeds hold the sweep's; the pooled 20 seeds: confirmatory_replication)")
    p.add_argument("--n-boot", type=int, default=10_000, help="bootstrap replicates for intervals and p-values")
    p.add_argument("--scaling-arms", default="base,sft_self,score",
                   help="comma-separated arms whose runs get inference-scaling samples (generated once, cached); 'none' to only use caches")
    p.add_argument("--scaling-seeds", choices=("first", "all"), default="first", help="sample the first seed of each arm, or every seed")
    p.add_argument("--scaling-k", type=int, default=ScalingSpec.k, help="first attempts sampled per problem (max budget)")
    p.add_argument("--scaling-turns", type=int, default=ScalingSpec.n_turns, help="attempts per sample (first + revisions)")
    p.add_argument("--scaling-problems", type=int, default=ScalingSpec.n_problems, help="test problems used for scaling")
    return p.parse_args(argv)


def ceiling_free_markdown(sweep) -> str:
    """SCoRe − every other trained arm in Δ and fix rate at equal validation Acc@t1: at the seed's
    base Acc@t1, and at the middle of the range both arms' checkpoints cover."""
    points = diagnostics.checkpoint_points(sweep)
    lines = ["| SCoRe − B | at the base's val Acc@t1: Δ (pts) [95% t] | fix rate | seeds | where both curves overlap: "
             "val Acc@t1 | Δ (pts) [95% t] | fix rate | seeds |", "|---|---|---|---|---|---|---|---|"]

    def cell(c):
        return "—" if c["n_seeds"] < 2 else f"{100 * c['diff']:+.1f} [{100 * c['lo']:+.1f}, {100 * c['hi']:+.1f}]"

    for b in sweep.labels:
        if b in ("score", "base") or "score" not in sweep.labels:
            continue
        row = []
        for target in ("base", "overlap"):
            d, f = (diagnostics.matched_comparison(sweep, "score", b, m, points, target) for m in ("delta", "fix_rate"))
            if target == "overlap":
                row.append("—" if d["n_seeds"] == 0 else f"{100 * d['acc_t1']:.1f}")
            row += [cell(d), cell(f), str(d["n_seeds"])]
        lines.append(f"| {display_name(b)} | " + " | ".join(row) + " |")
    lines += ["", "Each seed's Δ and fix rate interpolated along its trained validation checkpoints (steps 12, ..., 96) to "
              "the target Acc@t1, only where the checkpoints bracket it (no extrapolation); seeds: how many of the "
              f"{sweep.runs['seed'].nunique()} have "
              "both arms' curves there. Exploratory (unadjusted)."]
    return "\n".join(lines)


def matrix_sites_markdown(t) -> str:
    lines = ["| arm | fix rate at the base's error sites | at its own error sites | own − base (pts) [95% t] | rows per seed (base / own) | seeds |",
             "|---|---|---|---|---|---|"]
    for _, r in t.iterrows():
        lines.append(f"| {display_name(r['label'])} | {100 * r['base']:.1f} | {100 * r['own']:.1f} | {100 * r['diff']:+.1f} "
                     f"[{100 * r['lo']:+.1f}, {100 * r['hi']:+.1f}] | {r['n_base']:.0f} / {r['n_own']:.0f} | {r['n_seeds']} |")
    lines += ["", "The correction matrix's controlled first attempts (the correct procedure with exactly one injected error) at "
              "the sites where the base's greedy first attempt erred and where the arm's own did, fix rates pooled over the "
              "error kinds, per seed; seeds where both kinds of row exist. Exploratory."]
    return "\n".join(lines)


def probe_strata_markdown(t) -> str:
    lines = ["| arm | stratum | gap offline − own (pts) [95% t] | offline | own | problems per seed | seeds |",
             "|---|---|---|---|---|---|---|"]
    for _, r in t.sort_values(["label", "stratum"], key=lambda c: c.map(label_sort_key) if c.name == "label" else c).iterrows():
        gap = "—" if r["n_seeds"] == 0 or r["gap"] != r["gap"] else (
            f"{100 * r['gap']:+.1f}" + ("" if r["lo"] != r["lo"] else f" [{100 * r['lo']:+.1f}, {100 * r['hi']:+.1f}]"))
        lines.append(f"| {display_name(r['label'])} | {r['stratum']} | {gap} | {100 * r['offline']:.1f} | {100 * r['own']:.1f} | "
                     f"{r['n_per_seed']:.0f} | {r['n_seeds']} |")
    lines += ["", "The matched mismatch probe on the base's first attempts (problems where both the base's and the arm's "
              "own first attempt are wrong), within strata: all; same_error (the same error kind at the same site); "
              "both_readable / neither_readable (both first attempts' working spells the right answer / neither does). "
              "Seed-level t intervals of the per-seed gaps."]
    return "\n".join(lines)


def primary_header(testbed: str, seeds: set[int], prereg: verdicts.Preregistration, commits: set[str]) -> tuple[str, str]:
    """primary.md's title and the line naming the pre-registration that judges it: a sweep whose seeds lie outside
    that pre-registration's (the pooled 20 seeds) is titled an exploratory reading, and runs of several commits are
    named."""
    outside = bool(seeds) and not seeds <= set(prereg.seeds)
    title = (("Primary comparisons on seeds outside their pre-registration's (an exploratory reading)" if outside
              else "Pre-registered primary comparisons")
             + f", {testbed} testbed (kept checkpoints: highest validation Acc@t2)")
    source = (f"Predictions and margins: docs/preregistration/{prereg.file} (seeds {prereg.seeds.start}–"
              f"{prereg.seeds.stop - 1}" + (f"; this sweep's seeds {min(seeds)}–{max(seeds)}" if seeds else "")
              + (", outside them: an exploratory reading" if outside else "")
              + (f"; runs from {len(commits)} commits: {', '.join(sorted(commits))}" if len(commits) > 1 else "") + ")")
    return title, source


def fewer_seeds_note(primary: pd.DataFrame, n_seeds: int) -> str:
    """A line naming the comparisons tested on fewer seeds than the sweep holds (an arm lacks a complete run of some
    seed: the comparison uses the seeds both arms have), or nothing."""
    short = primary[primary["n_seeds"] < n_seeds] if len(primary) else primary
    if not len(short):
        return ""
    return (f"**On fewer seeds than the sweep's {n_seeds}**: "
            + "; ".join(f"{r['comparison']} ({r['n_seeds']})" for _, r in short.iterrows())
            + ": an arm lacks complete runs of some seeds.\n\n")


def main(argv=None) -> int:
    args = parse_args(argv)
    sweep_dir = args.sweep or default_sweep()
    out = args.out or sweep_dir / "figures"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sweep = load_sweep(sweep_dir, allow_incomplete=args.allow_incomplete)
    for w in caught:
        print(f"WARNING: {w.message}")
    print(f"sweep {sweep_dir}: {len(sweep.runs)} complete runs, labels {sweep.labels}")
    if len(sweep.incomplete):
        print("incomplete runs (not analysed):")
        for _, r in sweep.incomplete.iterrows():
            print(f"  - {r['run']}: {r['reason']}")

    spec = ScalingSpec(k=args.scaling_k, n_turns=args.scaling_turns, n_problems=args.scaling_problems)
    arms = [] if args.scaling_arms == "none" else [a.strip() for a in args.scaling_arms.split(",") if a.strip()]
    for arm in arms:
        rows = sweep.runs[sweep.runs["arm"] == arm].sort_values("seed")
        if rows.empty:
            print(f"[scaling] no {arm} runs in this sweep; skipped")
            continue
        if args.scaling_seeds == "first":
            rows = rows[rows["seed"] == rows["seed"].min()]
        for _, r in rows.iterrows():
            cached = (Path(r["path"]) / spec.filename).exists()
            print(f"[scaling] {r['run']}: {'cached' if cached else 'sampling'} {spec.filename}", flush=True)
            sample_revisions(r["path"], spec)

    out.mkdir(parents=True, exist_ok=True)
    testbed = str(sweep.run_objects[sweep.runs["run"].iloc[0]].config["task"]["name"])
    table = tables.main_table(sweep, n_boot=args.n_boot)
    table.to_csv(out / "main_table.csv", index=False)
    (out / "main_table.md").write_text(tables.table_markdown(table) + "\n")
    paper = tables.main_table(sweep, n_boot=args.n_boot, prefix="paper_checkpoint/")
    paper.to_csv(out / "paper_checkpoints.csv", index=False)
    (out / "paper_checkpoints.md").write_text(tables.table_markdown(paper, secondary=True) + "\n")
    missing = verdicts.missing_arms(sweep)
    n_seeds = sweep.runs["seed"].nunique()
    if n_seeds >= 2:  # seeds are the unit of replication: a seed-level test needs two
        prereg = (verdicts.PREREGISTRATIONS[args.preregistration] if args.preregistration
                  else verdicts.for_seeds(sweep.runs["seed"]))
        commits = {str((o.status.get("code") or {}).get("commit") or "unrecorded")[:7] for o in sweep.run_objects.values()}
        primary = verdicts.primary_table(sweep, testbed, partial=True, preregistration=prereg)
        primary_paper = (verdicts.primary_table(sweep, testbed, metric_prefix="paper_checkpoint/", partial=True,
                                                preregistration=prereg)
                         if len(paper) else primary.iloc[:0])
        title, source = primary_header(testbed, set(sweep.runs["seed"]), prereg, commits)
        primary_md = (
            source + "\n\n"
            + (f"**Not the pre-registered family**: no runs of {', '.join(missing)}; Holm over the {len(primary)} "
             "comparisons present, so these verdicts are not the pre-registered ones.\n\n" if missing else "")
            + fewer_seeds_note(primary, n_seeds)
            + verdicts.markdown(primary, display_name)
            + ("\n\nThe same family on the paper's checkpoints (RL best training reward, SFT last step): a secondary "
               "reading, its verdicts for reference only\n\n"
               + verdicts.markdown(primary_paper, display_name) if len(primary_paper) else ""))
    else:
        primary = pd.DataFrame()
        title = primary_header(testbed, set(), verdicts.TEN_SEED_SWEEP, set())[0]
        primary_md = f"None: the seed-level tests need at least 2 seeds, this sweep has {n_seeds}."
    primary.to_csv(out / "primary.csv", index=False)
    (out / "primary.md").write_text(title + "\n\n" + primary_md + "\n")
    (out / "ceiling_free.md").write_text(ceiling_free_markdown(sweep) + "\n")
    strata = diagnostics.probe_strata_table(sweep)
    strata.to_csv(out / "probe_strata.csv", index=False)
    (out / "probe_strata.md").write_text(probe_strata_markdown(strata) + "\n")
    sites = diagnostics.matrix_sites(sweep)
    sites.to_csv(out / "matrix_sites.csv", index=False)
    (out / "matrix_sites.md").write_text(matrix_sites_markdown(sites) + "\n")
    comp = tables.comparisons(sweep)
    comp.to_csv(out / "comparisons.csv", index=False)
    (out / "comparisons.md").write_text(tables.comparisons_markdown(comp) + "\n")
    (out / "mechanisms.md").write_text(mechanisms.report(sweep, sweep_dir, testbed) + "\n")
    ablation = y1_ablation_table(sweep)  # does y2 read y1 (runs evaluated with eval.y1_ablation; exploratory)
    ablation.to_csv(out / "y1_ablation.csv", index=False)
    (out / "y1_ablation.md").write_text(y1_ablation_markdown(ablation) + "\n")
    saved, skipped = figures.draw_all(sweep, out, table=table, spec=spec)

    print("\n## Main table\n")
    print(tables.table_markdown(table))
    print("\n## Pre-registered primary comparisons\n")
    print(primary_md)
    print("\n## Files")
    for p in sorted(out.glob("*.md")) + sorted(out.glob("*.csv")):
        print(f"  {p}")
    for name, paths in saved.items():
        print(f"  {name}: " + "  ".join(str(p) for p in paths))
    for name, reason in skipped.items():
        print(f"  [skipped {name}] {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
