"""Pool the runs of several sweeps of one testbed into one directory of links, so that the analysis reads their
seeds together: e.g. a confirmatory replication on seeds 10-19 beside the exploratory seeds 0-9.

    python experiments/pool_sweeps.py OUT SWEEP [SWEEP ...]
    python experiments/make_figures.py --sweep OUT --scaling-arms none \
        [--preregistration confirmatory_replication]       # the pooled tables and figures (exploratory)

OUT gets one symbolic link per run directory of each sweep (the records stay where their sweep made them; nothing
is copied) and `pooled_from.json`: each source sweep, its runs, and the commits they were made from. It refuses an
existing OUT and two runs of one name (the same arm and seed in two sweeps: the pool would count a seed twice).
The analysis checks the pool as it checks any sweep (`results.load_sweep`: one testbed's config and test problems,
metrics recomputed from the generations). `--scaling-arms none`: the inference-scaling samples are cached in the run
directories, which belong to their own sweeps. One testbed per pool (`make sweep`'s arithmetic directory and its
`-answer_first` twin are pooled separately); the `shared_base/` runs (update overlap across training seeds) are
not pooled, so the pool's mechanism tables lack their "within" rows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from selfcorrect.analysis.results import run_dirs
from selfcorrect.sweeps.sweep import commits_of


def pool(out: Path, sweeps: list[Path]) -> dict:
    """Link every run directory of `sweeps` into `out`; returns what `pooled_from.json` holds."""
    if out.exists():
        raise SystemExit(f"{out} exists: pool into a new directory")
    missing = [str(s) for s in sweeps if not s.is_dir()]
    if missing or len(sweeps) < 2:
        raise SystemExit(f"pool needs two or more sweep directories; not directories: {missing}" if missing
                         else f"pool needs two or more sweep directories, got {len(sweeps)}")
    owner: dict[str, Path] = {}
    sources = []
    for s in sweeps:
        names = [d.name for d in run_dirs(s)]
        if not names:
            raise SystemExit(f"{s} holds no run directories")
        twice = sorted(n for n in names if n in owner)
        if twice:
            raise SystemExit(f"runs in both {owner[twice[0]]} and {s} (a seed would count twice): {', '.join(twice[:5])}"
                             + (f" and {len(twice) - 5} more" if len(twice) > 5 else ""))
        owner.update((n, s) for n in names)
        sources.append({"sweep": str(s.resolve()), "runs": len(names), "commits": {k: len(v) for k, v in commits_of(s, names).items()}})
    out.mkdir(parents=True)
    for name, s in sorted(owner.items()):
        (out / name).symlink_to((s / name).resolve(), target_is_directory=True)
    made = {"pooled_from": sources, "runs": len(owner)}
    (out / "pooled_from.json").write_text(json.dumps(made, indent=2) + "\n")
    return made


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("sweeps", type=Path, nargs="+")
    args = p.parse_args(argv)
    made = pool(args.out, args.sweeps)
    for s in made["pooled_from"]:
        print(f"{s['sweep']}: {s['runs']} runs, from {', '.join(f'{k} ({n})' for k, n in s['commits'].items())}")
    print(f"{args.out}: {made['runs']} runs linked; next: python experiments/make_figures.py --sweep {args.out} --scaling-arms none"
          " [--preregistration confirmatory_replication: its predictions and margins]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
