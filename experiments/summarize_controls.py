"""The write-up of `make controls` (issue 33, item 2): one table over every control point that has run.

    python experiments/summarize_controls.py outputs/sweeps/<stamp>-controls [--arithmetic-reference DIR]
        [--answer-first-reference DIR] [--out FILE]

Reads each point's directory (`<prefix>-<point>`, `sweeps.sweep.CONTROL_TESTBEDS`; a point not run yet is listed
as missing, an incomplete one is refused by the loader), and prints `analysis.controls.controls_markdown`; with
`--out` (default `<prefix>-controls.md`) writes it. The offline-data points run only the offline arms: SCoRe − arm
takes SCoRe from the testbed's reference sweep, seed-paired (the same seeds share their base model): for
answer-first the `read_prob_0.1` point (the testbed's own value), for arithmetic `--arithmetic-reference` (a
`make sweep` arithmetic directory; without it those points' SCoRe − arm is left out, with a note).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from selfcorrect.analysis.controls import control_table, controls_markdown
from selfcorrect.analysis.results import load_sweep
from selfcorrect.sweeps.sweep import CONTROL_TESTBEDS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("prefix", type=Path, help="the CONTROLS_DIR of `make controls` (each point is <prefix>-<point>)")
    ap.add_argument("--arithmetic-reference", type=Path, default=None, help="the arithmetic sweep with SCoRe's runs")
    ap.add_argument("--answer-first-reference", type=Path, default=None, help="default: <prefix>-read_prob_0.1")
    ap.add_argument("--out", type=Path, default=None, help="default: <prefix>-controls.md")
    args = ap.parse_args()
    points, missing = {}, []
    for tb in CONTROL_TESTBEDS:
        d = Path(f"{args.prefix}{tb.suffix}")
        if d.is_dir():
            points[tb.name] = load_sweep(d, warn=False)
        else:
            missing.append(tb.name)
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
    text = "\n".join([
        f"# Controls: what the testbeds build in ({args.prefix.name})", "",
        "Exploratory: per point and arm, mean over seeds with t intervals (n − 1 df), points of per cent; no family "
        "correction, no verdicts (`selfcorrect.analysis.controls`).",
        f"References for SCoRe at the offline-data points: {', '.join(f'{k}: {v}' for k, v in refs.items())}.",
        *([f"Not run yet: {', '.join(missing)}."] if missing else []), *notes, "",
        controls_markdown(control_table(points, references)), "",
    ])
    out = args.out or Path(f"{args.prefix}-controls.md")
    out.write_text(text)
    print(text)
    print(f"[controls] written to {out}")


if __name__ == "__main__":
    main()
