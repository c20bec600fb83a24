"""GPU-time estimate of the real-model experiment on the lent device (README.md beside this file).

    python experiments/device/estimate.py                                # under the stated assumptions
    python experiments/device/estimate.py --ms-per-step 14.2 --gain 6    # with run.sh's calibration (CALIBRATE=1)
    python experiments/device/estimate.py --steps-per-batch 40           # batches that end before the cap

No sizing ladder: the size is the pre-registered experiment's (conf/experiment/smollm2_reasoning_gym.yaml, which
the GPU file inherits: G = 6 gradient steps of 8 sequences, 48 episodes, 500 test problems, 64 monitor problems),
and a device call may not shrink it (a smaller sweep would not be the pre-registered experiment; the word_math
sweep's ladder halved test problems and budgets). run.sh runs the file as it is (SIZE="") and a sweep that does
not fit one call resumes in the next; this estimate says how many calls to plan for.

The work of a run is counted in generation batches (at most `model.batch_size` = 64 sequences that decode
together), each at most `eval.max_new_tokens` = 128 decode steps long; with the task's stop strings and EOS a
batch ends at its longest attempt (SmolLM2 writes 8-40 tokens on this task: conf/task/reasoning_gym.yaml), so
the cap is an upper bound. What each stage generates (the counts of experiments/device/profile_counts.py on the
word_math sweep, with this experiment's settings; the task's error model has no error kinds, so the
correction matrix has only its keep row and self-conditioning is skipped):

  every run, final evaluation   2·b(P) test episodes (two turns) + b(P) probe (turn 2 on the base's first
                                attempts) + b(X) correction matrix (its keep row: turn 2 on the base's first attempts)
  trained runs, monitoring      at step 0, every `monitor_every` steps and the last: 2·b(M) (two turns)
  offline runs, probe sets      at step 0, every `probe_every` steps and the last, and once in the final
                                evaluation: 3·(b(n_train) + b(n_val)) (own two turns + probe turn 2)
  sampling                      sft_self_plus: 2·b(E) + 2·b(2·V), star_plus: 3 rounds × 2·b(E/3) + 2·b(2·V),
                                RL: 2·b(R) per step (R sequences: 2 prompts × 4 samples, two turns)
  updates                       G gradient steps (RL and SFT alike)
  sparsity (trained runs)       CPU, one thread: measured 18.5-32 s per run of this model (word_math sweep)

with b(n) = ceil(n / 64), P test problems, X matrix problems, M monitor problems, n_train/n_val the probe sets,
V the probe's val problems, E episodes, G gradient steps, R sequences per step. Runs: the base once (seed 0,
greedy: its other seeds would repeat it) and each trained arm × 3 seeds, 16 in all; run.sh starts the base beside
the trained sweep. The sweep's wall time is the larger of (a) the summed run time divided by the concurrency gain
of N_JOBS jobs on one GPU and (b) the longest run at the per-job speed under that sharing (N_JOBS / gain times its
GPU-side time); CPU-side work (sparsity, overhead) runs on a core of its own per job (16 cores, 8 + 1 jobs).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

# stated assumptions (README.md, "Estimate"); run.sh's calibration (CALIBRATE=1) measures the first two
MS_PER_DECODE_STEP = 20.0  # one process, bf16 autocast over fp32 weights, HF generate, batch <= 64, 30 layers: launch-bound
GAIN = 5.0                 # throughput of N_JOBS = 8 processes sharing the GPU, relative to one alone
S_PER_UPDATE = 0.5         # one gradient step of 8 sequences (two micro-batches of 4, reference log-probs, TRL)
S_SPARSITY = 25.0          # measured 18.5-32 s per run of this model (CPU, one thread, shared cores); the device no faster
S_RUN_OVERHEAD = 8.0       # per run, CPU side: model load from the cache, checkpoints, writes (loky reuses its workers)
BUDGET_S = 480.0           # sweep seconds in one call: run.sh's BUDGET_S 560 less RESERVE_S 45 and the steps before it
N_JOBS = 8

ARMS = {  # arm: family (conf/experiment/smollm2_reasoning_gym.yaml's sweep, the base from _base.yaml)
    "base": "base", "star_plus": "star", "sft_self_plus": "self", "score": "rl", "rl_single_turn": "rl",
    "rl_multi_turn_naive": "rl",
}
SEEDS = 3        # training seeds of every trained arm
BASE_RUNS = 1    # the base: one run (seed 0)


@dataclass(frozen=True)
class Size:
    """conf/experiment/smollm2_reasoning_gym.yaml (+ conf/task/reasoning_gym.yaml, conf/model/smollm2_135m.yaml)."""

    P: int = 500         # eval.n_problems
    X: int = 64          # eval.correction_matrix.n_problems (its keep row only)
    M: int = 64          # eval.n_monitor
    monitor_every: int = 3  # eval.monitor_every
    probe_every: int = 3    # eval.probe_every
    n_train: int = 64    # arm.probe.n_train
    n_val: int = 64      # arm.probe.n_val
    V: int = 128         # arm.probe.val_problems
    E: int = 48          # budget.episodes
    G: int = 6           # budget.gradient_steps
    L: int = 128         # eval.max_new_tokens
    B: int = 64          # model.batch_size
    R: int = 8           # budget.sequences_per_step

    def valid(self) -> list[str]:
        """What the arms refuse: STaR spends E = 2 samples x 3 rounds x its problems per round
        (E % 6 == 0), RL spends E = G x R."""
        bad = []
        if self.E % 6:
            bad.append(f"E={self.E} not divisible by 2 samples x 3 STaR rounds")
        if self.E != self.G * self.R:
            bad.append(f"E={self.E} != G x R = {self.G * self.R}")
        return bad


def b(n: int, B: int) -> int:
    return math.ceil(n / B) if n > 0 else 0


def points(G: int, every: int) -> int:
    return len({0, G} | set(range(every, G + 1, every)))


def batches(family: str, s: Size) -> dict[str, int]:
    """Generation batches of one run of `family` at size `s`, per stage."""
    B = s.B
    out = {"final": 2 * b(s.P, B) + b(s.P, B) + b(s.X, B)}
    if family == "base":
        return out
    out["monitoring"] = points(s.G, s.monitor_every) * 2 * b(s.M, B)
    if family == "rl":
        out["sampling"] = 2 * s.G * b(s.R, B)
        return out
    out["probe"] = (points(s.G, s.probe_every) + 1) * 3 * (b(s.n_train, B) + b(s.n_val, B))
    val_set = 2 * b(2 * s.V, B)
    out["sampling"] = {"self": 2 * b(s.E, B) + val_set, "star": 3 * 2 * b(s.E // 3, B) + val_set}[family]
    return out


def runs() -> dict[str, int]:
    """Runs per arm."""
    return {arm: BASE_RUNS if fam == "base" else SEEDS for arm, fam in ARMS.items()}


def run_seconds(family: str, s: Size, ms_per_step: float, steps: int) -> tuple[float, float]:
    """One run alone: (GPU-side seconds: decoding and updates, CPU-side seconds: sparsity and overhead)."""
    gpu = sum(batches(family, s).values()) * steps * ms_per_step / 1000
    cpu = S_RUN_OVERHEAD
    if family != "base":
        gpu += s.G * S_PER_UPDATE
        cpu += S_SPARSITY
    return gpu, cpu


def estimate(s: Size = Size(), ms_per_step: float = MS_PER_DECODE_STEP, gain: float = GAIN, n_jobs: int = N_JOBS,
             steps_per_batch: int | None = None, budget_s: float = BUDGET_S) -> dict:
    """GPU-side work shares the GPU (gain `gain` for `n_jobs` jobs); CPU-side work runs on a core per job.
    `steps_per_batch`: decode steps per generation batch (default: the cap, `s.L`)."""
    steps = s.L if steps_per_batch is None else min(steps_per_batch, s.L)
    alone = {arm: run_seconds(fam, s, ms_per_step, steps) for arm, fam in ARMS.items()}
    n = runs()
    gpu = sum(n[arm] * g for arm, (g, _) in alone.items())
    cpu = sum(n[arm] * c for arm, (_, c) in alone.items())
    base_first = b(s.P, s.B) * steps * ms_per_step / 1000  # built once (cached), before the other runs can finish
    throughput = gpu / gain + cpu / n_jobs
    longest = max(g * n_jobs / gain + c for g, c in alone.values())
    wall = max(throughput, longest) + base_first
    return {"runs": sum(n.values()), "steps_per_batch": steps, "total_alone_s": round(gpu + cpu),
            "throughput_bound_s": round(throughput + base_first), "longest_run_bound_s": round(longest + base_first),
            "wall_s": round(wall), "calls": max(1, math.ceil(wall / budget_s)),
            "per_arm_alone_s": {k: round(g + c) for k, (g, c) in alone.items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ms-per-step", type=float, default=MS_PER_DECODE_STEP)
    ap.add_argument("--gain", type=float, default=GAIN)
    ap.add_argument("--jobs", type=int, default=N_JOBS)
    ap.add_argument("--budget-s", type=float, default=BUDGET_S, help="sweep seconds in one call")
    ap.add_argument("--steps-per-batch", type=int, default=None, help="decode steps per batch (default: the cap and 40)")
    args = ap.parse_args(argv)
    s = Size()
    bad = s.valid()
    if bad:
        print("INVALID size: " + "; ".join(bad))
        return 1
    fam = {f: sum(batches(f, s).values()) for f in ("base", "self", "star", "rl")}
    print(f"assumptions: {args.ms_per_step} ms per decode step, gain {args.gain} for {args.jobs} jobs, "
          f"{S_PER_UPDATE} s per gradient step, {S_SPARSITY} s sparsity, {S_RUN_OVERHEAD} s per run; "
          f"{args.budget_s:.0f} sweep seconds per call; batches per run {fam}")
    cases = [args.steps_per_batch] if args.steps_per_batch else [s.L, 40]
    for steps in cases:
        e = estimate(s, args.ms_per_step, args.gain, args.jobs, steps, args.budget_s)
        what = "every batch to the cap" if steps >= s.L else "batches ending there"
        print(f"- {steps} decode steps per batch ({what}): {e['wall_s']} s for {e['runs']} runs (throughput "
              f"{e['throughput_bound_s']}, longest run {e['longest_run_bound_s']}; alone {e['total_alone_s']} s): "
              + ("fits one call" if e["calls"] == 1 else f"about {e['calls']} calls (the sweep resumes)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
