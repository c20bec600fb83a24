"""How many test problems a run needs: problem-level noise against the seed-level spread.

    python experiments/power_problems.py <sweep dir> [--candidates 500,1000,2000,3000,5000] [--max-inflation 1.1]

For each comparison "SCoRe minus arm B" in Δ (and Acc@t2) of a finished sweep (the rule reads the
pre-registered primary ones, `verdicts.PRIMARY`), per seed s the
paired per-problem difference d_si = x_a,si − x_b,si has a within-seed variance over problems
σ²_p (the mean over seeds), and the per-seed means have a variance over seeds σ²_obs. With n_old
test problems, σ²_obs = σ²_seed + σ²_p / n_old, so σ²_seed = max(σ²_obs − σ²_p / n_old, 0) is what
more problems cannot remove. At n problems the per-seed difference has s.d.
√(σ²_seed + σ²_p / n): the rule (written before the 10-seed sweep, docs/preregistration/2026-12-06_ten_seed_sweep.md) takes the smallest
candidate n at which that s.d. is at most `--max-inflation` × σ_seed for the median primary comparison,
i.e. n ≥ σ²_p / ((max_inflation² − 1) σ²_seed). It also prints what 10 seeds can detect
(`stats.detectable_difference`, 80 % power, two-sided 5 %) at the chosen n.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from selfcorrect.analysis.results import load_sweep
from selfcorrect.analysis.labels import display_name
from selfcorrect.analysis.stats import detectable_difference
from selfcorrect.analysis.verdicts import PRIMARY

PRIMARY_PAIRS = {(a, b) for a, b, _ in PRIMARY}


def components(sweep, a: str, b: str, metric: str) -> tuple[float, float, float, int]:
    """(σ²_p, σ²_obs, σ²_seed, n_old) of a − b in `metric` over the seeds both labels have."""
    ga, gb = sweep.grid(a, metric), sweep.grid(b, metric)
    k = min(len(ga), len(gb))
    d = ga[:k] - gb[:k]
    n_old = d.shape[1]
    var_p = float(np.mean(d.var(axis=1, ddof=1)))
    var_obs = float(d.mean(axis=1).var(ddof=1)) if k > 1 else float("nan")
    return var_p, var_obs, max(var_obs - var_p / n_old, 0.0), n_old


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep", type=Path)
    ap.add_argument("--candidates", default="500,1000,2000,3000,5000")
    ap.add_argument("--max-inflation", type=float, default=1.1)
    ap.add_argument("--seeds", type=int, default=10, help="seeds of the planned sweep (for the detectable difference)")
    args = ap.parse_args(argv)
    sweep = load_sweep(args.sweep, warn=False, allow_incomplete=True)
    candidates = sorted(int(c) for c in args.candidates.split(","))
    f = args.max_inflation ** 2 - 1
    score = "score"
    for metric in ("delta", "acc_t2"):
        print(f"\n{metric}: SCoRe minus B, per-seed paired differences (points); * = pre-registered primary comparison")
        print(f"{'B':48s} {'σ_p':>6s} {'σ_obs':>6s} {'σ_seed':>7s} {'n needed':>9s}")
        needed = []
        for b in sweep.labels:
            if b == score:
                continue
            var_p, var_obs, var_seed, n_old = components(sweep, score, b, metric)
            n_need = math.inf if var_seed == 0 else var_p / (f * var_seed)
            primary = (score, b) in PRIMARY_PAIRS
            if primary:
                needed.append((n_need, var_seed, b))
            print(f"{display_name(b)[:46]:46s}{' *' if primary else '  '} {100 * math.sqrt(var_p):6.1f} {100 * math.sqrt(var_obs):6.2f} "
                  f"{100 * math.sqrt(var_seed):7.2f} {n_need:9.0f}")
        if not needed:
            print("no pre-registered primary comparison in this sweep")
            continue
        ns = sorted(n for n, _, _ in needed)
        median = ns[len(ns) // 2]
        chosen = next((c for c in candidates if c >= median), candidates[-1])
        print(f"median n needed over the {len(needed)} primary comparisons {median:.0f} → chosen {chosen} "
              f"(of {candidates}; test set now {n_old})")
        seeds_sd = sorted(math.sqrt(v) for _, v, _ in needed if v > 0)
        sd = seeds_sd[len(seeds_sd) // 2]
        print(f"median σ_seed {100 * sd:.2f} points: {args.seeds} seeds detect a difference of "
              f"{100 * detectable_difference(sd, args.seeds):.1f} points (80 % power, 5 % two-sided)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
