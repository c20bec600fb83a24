"""The write-up of `make controls` (issue 33, item 2): one table over every control point that has run.

    python experiments/summarize_controls.py outputs/sweeps/<stamp>-controls [--arithmetic-reference DIR]
        [--answer-first-reference DIR] [--out FILE] [--figures DIR]

Reads each point's directory (`<prefix>-<point>`, `sweeps.sweep.CONTROL_TESTBEDS`; a point not run yet is listed
as missing, an incomplete one is refused by the loader), and prints `analysis.controls.controls_markdown`; with
`--out` (default `<prefix>-controls.md`) writes it. The offline-data points run only the offline arms: SCoRe − arm
takes SCoRe from the testbed's reference sweep, seed-paired (the same seeds share their base model): for
answer-first the `read_prob_0.1` point (the testbed's own value), for arithmetic `--arithmetic-reference` (a
`make sweep` arithmetic directory; without it those points' SCoRe − arm is left out, with a note). With the
arithmetic reference, its runs of the control arms on the control seeds are a point of their own, `arithmetic
(make sweep)`: the 1× of the offline data and the testbed beside `arithmetic_same_turn2`. Likewise an answer-first
`make sweep` directory given as `--answer-first-reference` while `read_prob_0.1` has not run: `answer_first (make
sweep)`, the same configuration as that point (read_prob 0.1 is the testbed's value). Figures (PNG + PDF, in
`--figures`, default `<prefix>-controls-figures/`): each dial (read_prob; turn-2 rules; offline data per testbed)
with Δ, the fix rate and SCoRe − arm in Δ against it, seed-level t intervals.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from selfcorrect.analysis.controls import SCORE, control_table, controls_markdown  # noqa: E402
from selfcorrect.analysis.figures import FigureSkipped, fig_control_dial, save  # noqa: E402
from selfcorrect.analysis.results import IncompleteRunError, load_sweep  # noqa: E402
from selfcorrect.sweeps.sweep import CONTROL_TESTBEDS, DATA_SCALES, READ_PROBS  # noqa: E402

ARITHMETIC_REFERENCE = "arithmetic (make sweep)"  # the point the arithmetic reference sweep's control runs make
# the answer-first reference's runs as a point when it is a `make sweep` directory: the same configuration as the
# read_prob_0.1 point (the testbed's own value), so it stands at 0.1 on the dial and at 1× of the offline data
ANSWER_FIRST_REFERENCE = "answer_first (make sweep)"


def restricted(sweep, seeds, arms):
    """The sweep with only the runs of these seeds and arms (their plain labels: not the teacher dial's), in every
    frame (the reference beside the controls: the same seeds and arms)."""
    keep = sweep.runs["seed"].isin(seeds) & sweep.runs["label"].isin(arms)
    names = set(sweep.runs.loc[keep, "run"])

    def only(frame):
        return frame[frame["run"].isin(names)].reset_index(drop=True) if "run" in frame else frame

    return dataclasses.replace(sweep, runs=only(sweep.runs), generations=only(sweep.generations), errors=only(sweep.errors),
                               history=only(sweep.history), run_objects={k: v for k, v in sweep.run_objects.items() if k in names})


def draw_figures(table, out_dir: Path) -> list[str]:
    """The dials' figures; returns the names drawn (a dial none of whose points ran is skipped)."""
    offline = sorted(set(table.loc[table["point"].str.startswith("offline_data_"), "arm"]))  # the arms those points ran
    af_own = "read_prob_0.1" if (table["point"] == "read_prob_0.1").any() else ANSWER_FIRST_REFERENCE
    references = (ARITHMETIC_REFERENCE, ANSWER_FIRST_REFERENCE, "read_prob_0.1")
    dials = {
        "controls_read_prob": dict(x_of={(af_own if v == "0.1" else f"read_prob_{v}"): float(i) for i, v in enumerate(READ_PROBS)},
                                   xticklabels={float(i): v for i, v in enumerate(READ_PROBS)}, xlabel="the base's read_prob (answer-first)",
                                   title="Answer-first: the base's latent reading skill dialled"),
        "controls_turn2_rules": dict(x_of={ARITHMETIC_REFERENCE: 0.0, "arithmetic_same_turn2": 1.0}, xlabel="the base's second attempt",
                                     title="Arithmetic: the base's turn-2 bug profile", xticklabels={0.0: "turn2_rules (testbed)", 1.0: "= turn1_rules"}),
        **{f"controls_offline_data_{tb}": dict(
            x_of={(ARITHMETIC_REFERENCE if tb == "arithmetic" else af_own): 1.0,
                  **{f"offline_data_{k}x_{tb}": float(k) for k in DATA_SCALES}},
            xlabel="episodes of offline data (× the matched 3,072)", title=f"{tb}: the offline arms with more data, 96 steps",
            arms=offline, log_x=True, xticklabels={1.0: "1×", **{float(k): f"{k}×" for k in DATA_SCALES}})
           for tb in ("arithmetic", "answer_first")},
    }
    drawn = []
    for name, kw in dials.items():
        if not table["point"].isin([p for p in kw["x_of"] if p not in references]).any():
            continue
        try:
            save(fig_control_dial(table, **kw), out_dir, name)
        except FigureSkipped as e:
            print(f"[skipped {name}] {e}")
            continue
        drawn.append(name)
    return drawn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("prefix", type=Path, help="the CONTROLS_DIR of `make controls` (each point is <prefix>-<point>)")
    ap.add_argument("--arithmetic-reference", type=Path, default=None, help="the arithmetic sweep with SCoRe's runs")
    ap.add_argument("--answer-first-reference", type=Path, default=None, help="default: <prefix>-read_prob_0.1")
    ap.add_argument("--out", type=Path, default=None, help="default: <prefix>-controls.md")
    ap.add_argument("--figures", type=Path, default=None, help="default: <prefix>-controls-figures/")
    ap.add_argument("--allow-incomplete", action="store_true",
                    help="while `make controls` runs: a point's complete runs only, its unfinished ones listed")
    args = ap.parse_args()
    points, missing, unfinished = {}, [], []
    for tb in CONTROL_TESTBEDS:
        d = Path(f"{args.prefix}{tb.suffix}")
        if not d.is_dir():
            missing.append(tb.name)
            continue
        try:
            points[tb.name] = load_sweep(d, allow_incomplete=args.allow_incomplete, warn=False)
        except IncompleteRunError:
            if not args.allow_incomplete:
                raise
            missing.append(f"{tb.name} (no complete run yet)")
            continue
        if len(points[tb.name].incomplete):
            unfinished.append(f"{tb.name} ({len(points[tb.name].incomplete)} runs)")
    if not points:
        raise SystemExit(f"no control point under {args.prefix}-*: run `make controls CONTROLS_DIR={args.prefix}`")
    refs = {"arithmetic": args.arithmetic_reference,
            "answer_first": args.answer_first_reference or Path(f"{args.prefix}-read_prob_0.1")}
    notes = []
    if any(n.startswith("offline_data_") and n.endswith("_arithmetic") for n in points) and refs["arithmetic"] is None:
        notes.append("No arithmetic reference given: SCoRe − arm is left out at the arithmetic offline-data points "
                     "(pass --arithmetic-reference outputs/sweeps/<stamp>, a `make sweep` arithmetic directory).")
    loaded = {k: load_sweep(v, warn=False) for k, v in refs.items() if v is not None and v.is_dir()}
    references = {name: loaded.get("arithmetic" if name.endswith("_arithmetic") else "answer_first")
                  for name in points if name.startswith("offline_data_")}
    for tb, name in (("arithmetic", ARITHMETIC_REFERENCE), ("answer_first", ANSWER_FIRST_REFERENCE)):
        if tb not in loaded or (tb == "answer_first" and "read_prob_0.1" in points):
            continue  # no reference, or the testbed's own point ran (read_prob 0.1 is answer-first's own value)
        own = [sw for n, sw in points.items() if (tb == "arithmetic") == ("arithmetic" in n)]  # the testbed's points
        seeds = sorted({int(s) for sw in own for s in sw.runs["seed"]})
        arms = sorted({SCORE, *(a for sw in own for a in sw.runs["arm"])})  # SCoRe: what the 1× arms face
        points = {name: restricted(loaded[tb], seeds, arms), **points}
    table = control_table(points, references)
    text = "\n".join([
        f"# Controls: what the testbeds build in ({args.prefix.name})", "",
        "Exploratory: per point and arm, mean over seeds with t intervals (n − 1 df), points of per cent; no family "
        "correction, no verdicts (`selfcorrect.analysis.controls`).",
        f"References for SCoRe at the offline-data points: {', '.join(f'{k}: {v}' for k, v in refs.items())}.",
        *([f"Not run yet: {', '.join(missing)}."] if missing else []),
        *([f"**Incomplete: unfinished runs left out** at {', '.join(unfinished)}."] if unfinished else []), *notes, "",
        controls_markdown(table), "",
    ])
    out = args.out or Path(f"{args.prefix}-controls.md")
    out.write_text(text)
    print(text)
    figures = args.figures or Path(f"{args.prefix}-controls-figures")
    drawn = draw_figures(table, figures)
    print(f"[controls] written to {out}; figures {', '.join(drawn) or '(none)'} in {figures}")


if __name__ == "__main__":
    main()
