"""The FLOP-accounted bench of the embedded sweep (issue 32): where the work is, and how fast it runs.

    python experiments/bench_flops.py                                   # arithmetic and answer-first, 3 families each
    python experiments/bench_flops.py --testbeds arithmetic --sweep outputs/sweeps/<stamp>

For each testbed, one run per family (base, offline Pair-SFT, RL SCoRe) with the sweep's settings, seed 0,
from a fresh cache (so the base run builds the base model: its `base` stage is the base build), twice:
- counted: `SELFCORRECT_COUNT_FLOPS=1`, run.json `stage_flops` (torch's FlopCounterMode: matmuls and
  attention, forward and backward; `selfcorrect.runtime.flops`), slower because every op goes through Python;
- timed: the same deterministic run without counting, run.json `stages` (seconds per stage).
Per stage: GFLOP, seconds, GFLOP/s and % of the matmul ceiling, a 512 x 512 fp32 matmul on one thread
measured in this run (before and after the runs; the higher is the ceiling). The runs use one thread, as the
sweep's jobs do.

With `--sweep`: the sweep's total, estimated as each of its runs' counted family run (same testbed) plus one
base build per distinct base model, over the sweep's CPU time (its wall time x `--cores`): the overall rate
against the ceiling. An estimate: the arms of a family differ a little in work (STaR's rounds, Stage I).
Prints tables and one JSON line (appended to --json-out); asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from bench_util import testbed_wall_s

from selfcorrect.runtime import flops
from selfcorrect.runtime.timing import STAGES
from selfcorrect.training import catalog

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = {"arithmetic": "embedded_sweep", "answer_first": "answer_first_sweep"}
FAMILY_ARMS = {"none": "base", "offline": "sft_self", "rl": "score"}


def run_once(experiment: str, arm: str, run_dir: Path, cache: Path, count: bool) -> dict:
    """One run (its run.json), counted or timed."""
    cmd = [sys.executable, "-m", "selfcorrect", f"experiment={experiment}", f"arm={arm}", "seed=0", "threads=1",
           "tracking.mode=disabled", f"paths.cache_dir={cache}", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "WANDB_SILENT": "true", flops.ENV: "1" if count else "0", "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"{experiment} {arm} ({'counted' if count else 'timed'}) failed:\n{res.stderr[-3000:]}")
    return json.loads((run_dir / "run.json").read_text())


def family_runs(testbed: str, tmp: Path) -> dict[str, dict]:
    """Per family: the counted run's stage FLOPs and the timed run's stage seconds."""
    out = {}
    for mode in ("counted", "timed"):
        cache = tmp / testbed / mode / "cache"  # fresh: the first run (base) builds the base model
        for family, arm in FAMILY_ARMS.items():
            t0 = time.time()
            status = run_once(EXPERIMENTS[testbed], arm, tmp / testbed / mode / arm, cache, count=mode == "counted")
            key = "stage_flops" if mode == "counted" else "stages"
            out.setdefault(family, {})[key] = status[key]
            print(f"  {testbed} {arm} {mode}: {time.time() - t0:.0f} s", flush=True)
    return out


def stage_rows(flop_split: dict, seconds: dict, ceiling: float) -> list[dict]:
    """One row per stage that did work or took time, in the clock's order, and a total."""
    names = [s for s in STAGES if flop_split.get(s, 0) or seconds.get(s, 0) >= 0.05]
    rows = []
    for s in names + ["total"]:
        f = flop_split.get(s, 0)
        t = seconds.get("wall" if s == "total" else s, 0.0)
        rate = f / t / 1e9 if t > 0 else 0.0
        rows.append({"stage": s, "gflop": round(f / 1e9, 2), "s": round(t, 2), "gflop_s": round(rate, 1),
                     "pct_ceiling": round(100 * rate / ceiling, 1)})
    return rows


def print_rows(title: str, rows: list[dict]) -> None:
    print(f"\n{title}\n| stage | GFLOP | s | GFLOP/s | % of ceiling |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['stage']} | {r['gflop']:.2f} | {r['s']:.2f} | {r['gflop_s']:.1f} | {r['pct_ceiling']:.1f} % |")


def sweep_total(sweep: Path, counts: dict[str, dict[str, dict]], cores: int, ceiling: float) -> dict:
    """The sweep's FLOPs (its runs' family counts, one base build per distinct base) over its CPU time."""
    total, runs, bases = 0, 0, set()
    wall = 0.0
    for testbed, directory in (("arithmetic", sweep), ("answer_first", Path(f"{sweep}-answer_first"))):
        if testbed not in counts or not directory.is_dir():
            continue
        wall += testbed_wall_s(directory) or 0.0
        build = counts[testbed]["none"]["stage_flops"].get("base", 0)
        for run_json in directory.glob("*/run.json"):
            status = json.loads(run_json.read_text())
            arm = yaml.safe_load((run_json.parent / "config.yaml").read_text())["arm"]["name"]
            fam = counts[testbed][catalog.arm(arm).family]["stage_flops"]
            total += fam["total"] - fam.get("base", 0)
            runs += 1
            if status.get("base_weights_sha256") not in bases:
                bases.add(status.get("base_weights_sha256"))
                total += build
    rate = total / (wall * cores) / 1e9 if wall else 0.0
    return {"runs": runs, "bases": len(bases), "tflop": round(total / 1e12, 1), "wall_s": round(wall, 1), "cores": cores,
            "gflop_s_per_core": round(rate, 1), "pct_ceiling": round(100 * rate / ceiling, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--testbeds", default="arithmetic,answer_first")
    ap.add_argument("--sweep", type=Path, help="a finished `make sweep` directory (its arithmetic one): the sweep's total")
    ap.add_argument("--cores", type=int, default=os.cpu_count())
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()
    testbeds = args.testbeds.split(",")
    if unknown := [t for t in testbeds if t not in EXPERIMENTS]:
        raise SystemExit(f"unknown testbed(s) {unknown}; known: {sorted(EXPERIMENTS)}")
    ceiling_before = flops.matmul_ceiling(threads=1)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
          f"matmul ceiling (512 x 512 fp32, 1 thread): {ceiling_before:.1f} GFLOP/s; load {os.getloadavg()[0]:.2f}", flush=True)
    counts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for testbed in testbeds:
            counts[testbed] = family_runs(testbed, Path(tmp))
    ceiling = max(ceiling_before, flops.matmul_ceiling(threads=1))
    result = {"bench": "flops", "ceiling_gflop_s": round(ceiling, 1), "ceiling_before": round(ceiling_before, 1),
              "torch": torch.__version__, "testbeds": {}}
    for testbed, fams in counts.items():
        for family, arm in FAMILY_ARMS.items():
            rows = stage_rows(fams[family]["stage_flops"], fams[family]["stages"], ceiling)
            print_rows(f"### {testbed}, {arm} (family {family}; seed 0, one thread)", rows)
            result["testbeds"].setdefault(testbed, {})[arm] = rows
    if args.sweep:
        result["sweep"] = sweep_total(args.sweep, counts, args.cores, ceiling)
        s = result["sweep"]
        print(f"\nsweep {args.sweep}: {s['runs']} runs, {s['bases']} base builds, ~{s['tflop']} TFLOP in {s['wall_s']} s on "
              f"{s['cores']} cores: {s['gflop_s_per_core']} GFLOP/s per core = {s['pct_ceiling']} % of the ceiling")
    print(f"load average (1 min) at end {os.getloadavg()[0]:.2f}")
    line = json.dumps(result)
    print(line)
    if args.json_out:
        with open(args.json_out, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
