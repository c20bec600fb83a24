"""The confirmatory replication's report (docs/preregistration/2026-12-08_confirmatory_replication.md), one testbed:
each primary comparison's exploratory reading (seeds 0-9), its pre-registered prediction, the confirmatory result
(seeds 10-19: difference, interval, Holm p, TOST p, verdict, whether it replicates) and, if given, the pooled 20
seeds beside it; then the counts the pre-registration names.

    python experiments/summarize_replication.py --testbed arithmetic \\
        --exploratory outputs/sweeps/2026-12-07_final-10seed --confirmatory outputs/sweeps/2026-12-08_confirmatory \\
        [--pooled outputs/sweeps/<pool>] [--out <file>.md]

Each directory's `figures/primary.csv` (written by `make_figures.py`) is read as it is; the confirmatory and pooled
tables must carry the confirmatory pre-registration's predictions (a table made with another is refused), and the
confirmatory one the full family of eight comparisons on seeds 10-19 only.
"""

from __future__ import annotations

import argparse
import ast
import math
import sys
from pathlib import Path

import pandas as pd

from selfcorrect.analysis import verdicts
from selfcorrect.analysis.labels import display_name

def replicates(verdict: str) -> bool:
    """The pre-registration's rule: a prediction replicates where its verdict is "holds" or "equivalent within ±m"."""
    return verdict == "holds" or verdict.startswith("equivalent")


def outcome(verdict: str) -> str:
    """The four counts the pre-registration names."""
    if replicates(verdict):
        return "replicated"
    if verdict.startswith("does not hold"):
        return "does not hold"
    return verdict  # "not decided" or "no difference detected"


def read_primary(sweep: Path) -> pd.DataFrame:
    path = sweep / "figures" / "primary.csv"
    if not path.exists():
        raise SystemExit(f"{path} does not exist: run experiments/make_figures.py --sweep {sweep} first")
    t = pd.read_csv(path)
    if t.empty:
        raise SystemExit(f"{path} holds no comparisons")
    t["seeds"] = t["seeds"].map(lambda s: tuple(ast.literal_eval(s)))
    return t.set_index("b")


def check(table: pd.DataFrame, testbed: str, what: str, seeds: range | None = None) -> None:
    """Refuse a table that is not judged by the confirmatory pre-registration (or, with `seeds`, not its full family
    on those seeds)."""
    expected = verdicts.CONFIRMATORY.predictions[testbed]
    if seeds is not None and set(table.index) != set(expected):
        raise SystemExit(f"the {what} table lacks comparisons {sorted(set(expected) - set(table.index))}: "
                         "a partial family gives no confirmatory verdict")
    got = {b: (None if pd.isna(p) else int(p)) for b, p in table["prediction"].items()}
    wrong = {b: got.get(b) for b in expected if got.get(b) != expected[b]}
    if wrong:
        raise SystemExit(f"the {what} table's predictions differ from the confirmatory pre-registration's for {wrong} "
                         f"(expected {expected}): make its figures with --preregistration confirmatory_replication")
    if seeds is not None:
        used = {s for row in table["seeds"] for s in row}
        if not used <= set(seeds) or any(len(row) != len(seeds) for row in table["seeds"]):
            raise SystemExit(f"the {what} table's seeds {sorted(used)} are not all of {seeds.start}-{seeds.stop - 1}")


def interval(r) -> str:
    return f"{100 * r['diff']:+.1f} [{100 * r['lo']:+.1f}, {100 * r['hi']:+.1f}]"


def report(testbed: str, exploratory: pd.DataFrame, confirmatory: pd.DataFrame, pooled: pd.DataFrame | None) -> str:
    prereg = verdicts.CONFIRMATORY
    lines = [f"### {testbed}: the confirmatory replication (docs/preregistration/{prereg.file})", "",
             "| SCoRe − B | exploratory, seeds 0–9: Δ diff [95 % t] | predicted | confirmatory, seeds 10–19: Δ diff "
             "[95 % t] | p Holm | TOST p (±2) | verdict | replicates |" + (" pooled 20 seeds: Δ diff [95 % t], verdict |"
                                                                           if pooled is not None else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|" if pooled is not None else "")]
    counts: dict[str, int] = {}
    for b in [b for _, b, _ in verdicts.PRIMARY]:
        e, c = exploratory.loc[b], confirmatory.loc[b]
        tost = c.get("tost_p", math.nan)
        counts[outcome(c["verdict"])] = counts.get(outcome(c["verdict"]), 0) + 1
        row = (f"| {display_name(b)} | {interval(e)} | {verdicts.PREDICTED[prereg.predictions[testbed][b]].removeprefix('SCoRe ')} | {interval(c)} | "
               f"{c['p_holm']:.3f} | {'—' if pd.isna(tost) else f'{tost:.3f}'} | {c['verdict']} | "
               f"{'yes' if replicates(c['verdict']) else 'no'} |")
        if pooled is not None:
            p = pooled.loc[b]
            row += f" {interval(p)}, {p['verdict']} |"
        lines.append(row)
    order = ("replicated", "not decided", "no difference detected", "does not hold")
    lines += ["", f"Of {len(verdicts.PRIMARY)} predictions: " + ", ".join(f"{counts.get(k, 0)} {k}" for k in order) + ".",
              "Confirmatory: seeds 10–19 alone (sign-flip test, Holm over the eight, TOST at the pre-registered margin). "
              "The exploratory column chose the predictions; the pooled column mixes the seeds that chose them with "
              "the fresh ones (and two commits), so it is exploratory."]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--testbed", required=True, choices=sorted(verdicts.CONFIRMATORY.predictions))
    p.add_argument("--exploratory", type=Path, required=True)
    p.add_argument("--confirmatory", type=Path, required=True)
    p.add_argument("--pooled", type=Path, default=None)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    confirmatory = read_primary(args.confirmatory)
    check(confirmatory, args.testbed, "confirmatory", seeds=verdicts.CONFIRMATORY.seeds)
    pooled = read_primary(args.pooled) if args.pooled else None
    if pooled is not None:
        check(pooled, args.testbed, "pooled")
    text = report(args.testbed, read_primary(args.exploratory), confirmatory, pooled)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
