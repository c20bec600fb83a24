"""Print a sweep's results: per run, then mean ± standard error over seeds per arm.

    python experiments/summarize_sweep.py outputs/sweeps/<stamp>

Runs that did not complete are listed, never silently dropped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

COLUMNS = ["acc_t1", "acc_t2", "delta", "delta_i2c", "delta_c2i", "no_edit_rate", "answer_change_rate"]


def arm_label(cfg) -> str:
    variant = OmegaConf.select(cfg, "arm.error_model")
    return f"{cfg.arm.name}[{variant}]" if variant else cfg.arm.name


def load(sweep: Path) -> tuple[pd.DataFrame, list[str]]:
    rows, problems = [], []
    for run_json in sorted(sweep.glob("*/run.json")):
        d = run_json.parent
        status = json.loads(run_json.read_text())
        if status.get("status") != "complete" or not (d / "metrics.json").exists():
            problems.append(f"{d.name}: {status.get('status')} {status.get('error', '')}".strip())
            continue
        cfg = OmegaConf.load(d / "config.yaml")
        m = json.loads((d / "metrics.json").read_text())
        probe = m.get("probe/base", {})
        rows.append({
            "arm": arm_label(cfg), "seed": cfg.seed, **{k: m[k] for k in COLUMNS},
            "probe_gap": probe.get("mismatch_gap"), "wall_s": status.get("wall_s"), "dir": str(d),
            "wandb": status.get("wandb_dir"),
        })
    return pd.DataFrame(rows), problems


def main(sweep: str) -> None:
    sweep_dir = Path(sweep)
    if not sweep_dir.is_dir():
        raise SystemExit(f"no sweep directory at {sweep_dir}")
    df, problems = load(sweep_dir)
    if df.empty:
        raise SystemExit(f"no complete runs in {sweep_dir}" + "".join(f"\n  {p}" for p in problems))
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    print("\nPer run (test split, greedy, fractions of all problems):")
    print(df[["arm", "seed", *COLUMNS, "probe_gap", "wall_s"]].sort_values(["arm", "seed"]).to_string(index=False, float_format="%.3f"))
    g = df.groupby("arm")[COLUMNS]
    n = df.groupby("arm")["seed"].count()
    table = g.mean().map(lambda v: f"{v:.3f}") + " ± " + (g.std(ddof=1).div(n ** 0.5, axis=0)).map(lambda v: f"{v:.3f}")
    table.insert(0, "seeds", n)
    print("\nMean ± standard error over seeds:")
    print(table.to_string())
    print(f"\nRuns: {sweep_dir}/<overrides>/ (config.yaml, metrics.json, generations.jsonl, probe_*.jsonl, history.jsonl)")
    print(f"wandb offline runs: {sweep_dir}/<overrides>/wandb/  (sync: wandb sync <dir>)")
    print(f"Total run wall time: {df['wall_s'].sum():.0f} s over {len(df)} runs")
    if problems:
        print("\nINCOMPLETE RUNS (not in the tables):")
        for p in problems:
            print("  " + p)
        raise SystemExit(1)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
