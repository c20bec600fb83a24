"""`make tune`: one learning rate per arm, chosen the same way for every arm (issue 22).

    python -m selfcorrect.sweeps.tune <tuning sweep dir> --testbed arithmetic [--out conf/tuned_lr]

The tuning sweep (`conf/experiment/tune_<testbed>*.yaml`, run by `python -m selfcorrect.sweeps.sweep
--mode tune`) trains every arm at every learning rate of `lr_grid` on the tuning seeds
`tune_seeds`, which are disjoint from the reported seeds, with the sweep's budget, monitoring and
checkpoint rule, and evaluates nothing on test. **Rule** (written before the tuning ran): an arm's
learning rate is the one with the highest validation Acc@t2 at its kept checkpoint (the one
checkpoint rule, `selfcorrect.training.selection`), mean over the tuning seeds; ties go to the smaller
rate; a run that failed (e.g. diverged) counts as Acc@t2 0. Writes `conf/tuned_lr/<testbed>.yaml`
(read by the testbed's sweep as `budget.lr: ${tuned_lr.${arm.lr_key}}`) and the table behind
it, `experiments/tuning/<testbed>.md` (arm × lr → validation Acc@t1 / Acc@t2, the chosen rate
in bold).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path

import yaml

from selfcorrect.paths import REPO
from selfcorrect.runtime.records import read_json
from selfcorrect.training.catalog import arms


def read_runs(sweep_dir: Path) -> list[dict]:
    """One row per tuning run: lr_key, arm, lr, seed, status, the kept checkpoint's validation metrics."""
    rows = []
    for d in sorted(p for p in sweep_dir.iterdir() if (p / "config.yaml").exists()):
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        status = read_json(d / "run.json") if (d / "run.json").exists() else {}
        m = read_json(d / "metrics.json") if (d / "metrics.json").exists() else {}
        ck = m.get("checkpoint", {})
        rows.append({"run": d.name, "lr_key": cfg["arm"]["lr_key"], "arm": cfg["arm"]["name"], "lr": float(cfg["budget"]["lr"]),
                     "seed": int(cfg["seed"]), "status": status.get("status", "missing"), "rule": ck.get("rule"),
                     "step": ck.get("step"), "val_acc_t1": ck.get("val_acc_t1"), "val_acc_t2": ck.get("val_acc_t2")})
    return rows


def choose(rows: list[dict]) -> tuple[dict[str, float], dict]:
    """({lr_key: chosen lr}, {lr_key: {lr: (mean val Acc@t1, mean val Acc@t2, n seeds, n failed)}}) for the trained arms."""
    cells: dict[str, dict[float, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["arm"] != "base":
            cells[r["lr_key"]][r["lr"]].append(r)
    table, chosen = {}, {}
    for key, by_lr in cells.items():
        table[key] = {}
        for lr, runs in sorted(by_lr.items()):
            done = [r for r in runs if r["status"] == "complete" and r["val_acc_t2"] is not None]
            failed = len(runs) - len(done)
            acc2 = [r["val_acc_t2"] for r in done] + [0.0] * failed  # a failed run counts as Acc@t2 0
            acc1 = [r["val_acc_t1"] for r in done]
            table[key][lr] = (sum(acc1) / len(acc1) if acc1 else math.nan, sum(acc2) / len(acc2), len(runs), failed)
        chosen[key] = max(sorted(table[key]), key=lambda lr: (table[key][lr][1], -lr))
    return chosen, table


def label(key: str) -> str:
    arm, _, teacher = key.partition("-")
    display = arms()[arm].display if arm in arms() else arm
    return f"{display} [{teacher}]" if teacher else display


def write(testbed: str, sweep_dir: Path, chosen: dict[str, float], table: dict, out_conf: Path, out_md: Path, lr_grid) -> None:
    order = {a: i for i, a in enumerate(arms())}
    keys = sorted(chosen, key=lambda k: (order.get(k.partition("-")[0], 99), k))
    lines = [f"# Written by `make tune` (selfcorrect/sweeps/tune.py) from {sweep_dir}: each arm's learning rate is the",
             "# one of lr_grid with the highest validation Acc@t2 at its kept checkpoint (highest validation Acc@t2",
             "# among the candidate steps), mean over the tuning seeds; ties go to the smaller rate. Rerun",
             "# `make tune` to change it; the table behind it: experiments/tuning/" + f"{testbed}.md",
             f"base: {min(lr_grid):.1e}   # trains nothing (a valid value for the budget block)"]
    for k in keys:
        others = ", ".join(f"{lr:.0e} {table[k][lr][1]:.3f}" for lr in sorted(table[k]))
        lines.append(f"{k}: {chosen[k]:.1e}   # val Acc@t2 {table[k][chosen[k]][1]:.3f} ({others})")
    out_conf.parent.mkdir(parents=True, exist_ok=True)
    out_conf.write_text("\n".join(lines) + "\n")
    lrs = sorted({lr for k in keys for lr in table[k]})
    md = [f"# Learning-rate tuning, {testbed} testbed", "",
          f"From `{sweep_dir}` (`make tune`). Cells: validation Acc@t1 / Acc@t2 (per cent, mean over the tuning seeds) at "
          "each run's kept checkpoint (the highest validation Acc@t2 among the candidate steps); the chosen rate in bold "
          "(the highest Acc@t2; ties to the smaller rate). A failed run counts as Acc@t2 0 and is marked †.", "",
          "| arm | " + " | ".join(f"lr {lr:.0e}" for lr in lrs) + " | chosen |", "|---|" + "---|" * (len(lrs) + 1)]
    for k in keys:
        cells = []
        for lr in lrs:
            if lr not in table[k]:
                cells.append("—")
                continue
            a1, a2, n, failed = table[k][lr]
            text = f"{100 * a1:.1f} / {100 * a2:.1f}" + (" †" * (failed > 0)) + (f" (n={n})" if n != max(t[2] for t in table[k].values()) else "")
            cells.append(f"**{text}**" if lr == chosen[k] else text)
        md.append(f"| {label(k)} | " + " | ".join(cells) + f" | {chosen[k]:.0e} |")
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_md.write_text("\n".join(md) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep", type=Path, help="the testbed's tuning sweep directory")
    ap.add_argument("--testbed", required=True)
    ap.add_argument("--out", type=Path, default=REPO / "conf" / "tuned_lr")
    ap.add_argument("--table", type=Path, default=REPO / "experiments" / "tuning")
    args = ap.parse_args(argv)
    rows = read_runs(args.sweep)
    if not rows:
        raise SystemExit(f"no tuning runs in {args.sweep}")
    missing = [r["run"] for r in rows if r["status"] not in ("complete", "failed")]
    if missing:
        raise SystemExit(f"{len(missing)} tuning runs are neither complete nor failed (resume the sweep first): {missing[:5]}")
    chosen, table = choose(rows)
    grid = sorted({r["lr"] for r in rows})
    write(args.testbed, args.sweep, chosen, table, args.out / f"{args.testbed}.yaml", args.table / f"{args.testbed}.md", grid)
    for k in sorted(chosen):
        print(f"{k:32s} lr {chosen[k]:.0e}  val Acc@t2 {table[k][chosen[k]][1]:.3f}")
    print(f"wrote {args.out / (args.testbed + '.yaml')} and {args.table / (args.testbed + '.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
