"""Design input for a confirmatory pre-registration: for every primary comparison, its seed-level s.d. in an
earlier (exploratory) sweep, and the power that the confirmatory seeds would have, at candidate equivalence margins,
to call a true zero difference "equivalent" (TOST, `stats.tost_power`) and to detect a difference of one margin
with the sign-flip + Holm rule (`stats.sign_flip_holm_power`).

    python experiments/equivalence_power.py outputs/sweeps/<stamp> --testbed arithmetic [--seeds 10] [--margins 1,2,3]
        [--preregistration confirmatory_replication]

It reads the spread of the per-seed differences (and, for the last column, the exploratory mean difference whose
replication a directional prediction expects); the earlier sweep stays exploratory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from selfcorrect.analysis import verdicts
from selfcorrect.analysis.labels import display_name
from selfcorrect.analysis.results import load_sweep
from selfcorrect.analysis.stats import sign_flip_holm_power, tost_power


def power_rows(sweep, testbed: str, seeds: int, margins: list[float],
               prereg: verdicts.Preregistration = verdicts.TEN_SEED_SWEEP) -> list[dict]:
    """One row per primary comparison: its prediction, the per-seed s.d. (points) and, per margin (points), the TOST
    power at a true difference of 0 and the rule's power (first-last Holm step) at a true difference of one margin;
    and the rule's power at a true difference equal to the exploratory mean."""
    rows, family = [], len(verdicts.PRIMARY)
    for a, b, metric in verdicts.PRIMARY:
        c = verdicts.compare(sweep, a, b, metric)
        sd = 100 * float(np.std(c.per_seed, ddof=1))
        row = {"b": b, "prediction": prereg.predictions.get(testbed, {}).get(b), "sd": sd, "diff": 100 * c.diff,
               "rule_observed": sign_flip_holm_power(abs(100 * c.diff) / sd, seeds, family, n_sim=2000)}
        for m in margins:
            row[f"tost_{m:g}"] = tost_power(0.0, m / sd, seeds)
            row[f"rule_{m:g}"] = sign_flip_holm_power(m / sd, seeds, family, n_sim=2000)
        rows.append(row)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", type=Path)
    p.add_argument("--testbed", required=True, choices=sorted(verdicts.PREDICTIONS))
    p.add_argument("--preregistration", choices=sorted(verdicts.PREREGISTRATIONS), default="ten_seed_sweep",
                   help="whose predictions the table shows")
    p.add_argument("--seeds", type=int, default=10, help="seeds of the confirmatory sweep")
    p.add_argument("--margins", default="1,2,3", help="candidate equivalence margins in points of Δ, comma-separated")
    args = p.parse_args(argv)
    margins = [float(m) for m in args.margins.split(",")]
    if args.seeds < 2 or not all(m > 0 for m in margins):
        raise SystemExit(f"--seeds must be >= 2 and every margin > 0, got {args.seeds}, {margins}")
    rows = power_rows(load_sweep(args.sweep, warn=False), args.testbed, args.seeds, margins,
                      verdicts.PREREGISTRATIONS[args.preregistration])
    head = " | ".join(f"TOST power at ±{m:g} (true 0) | rule power at {m:g}" for m in margins)
    print(f"{args.testbed}: {args.seeds} confirmatory seeds; s.d. from {args.sweep}\n")
    print(f"| SCoRe − B | predicted | per-seed s.d. (pts) | {head} | exploratory diff (pts) | rule power at it |")
    print("|---|---|---|" + "---|---|" * len(margins) + "---|---|")
    for r in rows:
        cells = " | ".join(f"{100 * r[f'tost_{m:g}']:.0f} % | {100 * r[f'rule_{m:g}'][0]:.0f}-{100 * r[f'rule_{m:g}'][1]:.0f} %"
                           for m in margins)
        obs = r["rule_observed"]
        print(f"| {display_name(r['b'])} | {verdicts.PREDICTED[r['prediction']]} | {r['sd']:.1f} | {cells} | {r['diff']:+.1f} | "
              f"{100 * obs[0]:.0f}-{100 * obs[1]:.0f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
