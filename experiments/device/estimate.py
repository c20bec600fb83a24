"""GPU-time estimate of the SmolLM2 word_math sweep and the sizing rule of README.md (beside this file).

    python experiments/device/estimate.py                       # the ladder under the stated assumptions
    python experiments/device/estimate.py --ms-per-step 14.2    # with a measured decode step (run.sh's calibration)
    python experiments/device/estimate.py --pick                # print the overrides of the first rung that fits

The work of a run is counted in generation batches (at most `model.batch_size` = 64 sequences that
decode together), each `eval.max_new_tokens` = 128 decode steps long (SmolLM2 runs a third of its
attempts to the limit, so a batch of 8 or more nearly always does), plus gradient steps and the
CPU-side sparsity analysis. What each stage generates was read off CPU runs of every family at
small sizes (experiments/device/profile_counts.py; the table in README.md):

  every run, final evaluation   2·b(P) test episodes (two turns) + b(P) probe (base first attempts)
                                + b(4X) correction matrix + (T−1)·b(S) self-conditioning (turns 2..T
                                of the one-error attempts; word_math injects one error), S = min(Sn, P)
  trained runs, monitoring      at step 0, every 12 steps and the last: 2·b(M) (two turns)
  offline runs, probe sets      at step 0, every 24 steps and the last, and once in the final
                                evaluation: 3·(b(n_train) + b(n_val)) (own two turns + probe turn 2)
  sampling                      sft_self(_plus): 2·b(E) + 2·b(2·V), STaR(+): 3 rounds × 2·b(E/3) + 2·b(2·V),
                                sft_teacher: none (teacher-written), RL: 2 per step (32 episodes)
  updates                       G gradient steps (RL and SFT alike)
  sparsity (trained runs)       CPU, one thread: measured 18.5-32 s per run here

with b(n) = ceil(n / 64), P test problems, X matrix problems, M monitor problems, n_train/n_val the
probe sets, V the probe's val problems, E episodes, G gradient steps. The sweep's wall time is the
larger of (a) the summed run time divided by the concurrency gain of N_JOBS jobs on one GPU and
(b) the longest run at the per-job speed under that sharing (N_JOBS / gain times its GPU-side time);
CPU-side work (sparsity, overhead) runs on a core of its own per job (16 cores, 8 jobs).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, replace

# stated assumptions (README.md, "Estimate"); run.sh's calibration measures the first one
MS_PER_DECODE_STEP = 20.0  # one process, bf16, HF generate, batch <= 64, 30-layer 135M model: launch-bound
GAIN = 5.0                 # throughput of N_JOBS = 8 processes sharing the GPU, relative to one alone
S_PER_UPDATE = 0.5         # one gradient step of 32 sequences (forward, backward, reference log-probs, TRL)
S_SPARSITY = 25.0          # measured here 18.5-32 s per run (CPU, one thread, shared cores); the device is assumed no faster
S_RUN_OVERHEAD = 8.0       # per run, CPU side: model load from the cache, checkpoints, writes (loky reuses its workers)
BUDGET_S = 480.0           # all arms x 3 seeds in at most 8 minutes of GPU time
N_JOBS = 8

ARMS = {  # arm: family
    "base": "base", "sft_teacher": "teacher", "sft_self": "self", "sft_self_plus": "self", "star": "star",
    "star_plus": "star", "score": "rl", "score_no_stage1": "rl", "score_no_shaping": "rl",
    "score_shaping_control": "rl", "rl_single_turn": "rl", "rl_multi_turn_naive": "rl", "rl_multi_turn_sum": "rl",
}
SEEDS = 3


@dataclass(frozen=True)
class Size:
    P: int = 224         # eval.n_problems (every test problem a distinct fact: the task has 224 test facts)
    X: int = 64          # eval.correction_matrix.n_problems
    Sn: int = 64         # eval.self_conditioning.n_problems
    T: int = 4           # eval.self_conditioning.turns (never shrunk)
    M: int = 64          # eval.n_monitor
    n_train: int = 256   # arm.probe.n_train
    n_val: int = 256     # arm.probe.n_val
    V: int = 512         # arm.probe.val_problems
    E: int = 960         # budget.episodes (conf/experiment/smollm2_word_math.yaml)
    G: int = 30          # budget.gradient_steps
    L: int = 128         # eval.max_new_tokens (never shrunk)
    B: int = 64          # model.batch_size (never changed)
    R: int = 32          # budget.sequences_per_step (never changed)

    def overrides(self) -> str:
        return (f"budget.episodes={self.E} budget.gradient_steps={self.G} eval.n_problems={self.P} "
                f"eval.correction_matrix.n_problems={self.X} eval.self_conditioning.n_problems={self.Sn} eval.n_monitor={self.M} "
                f"++arm.probe.n_train={self.n_train} ++arm.probe.n_val={self.n_val} ++arm.probe.val_problems={self.V}")

    def valid(self) -> list[str]:
        """What the arms refuse: STaR spends E = 2 samples x 3 rounds x its problems per round
        (E % 6 == 0), RL spends E = G x R (so G is a multiple of 3)."""
        bad = []
        if self.E % 6:
            bad.append(f"E={self.E} not divisible by 2 samples x 3 STaR rounds")
        if self.E != self.G * self.R:
            bad.append(f"E={self.E} != G x R = {self.G * self.R}")
        return bad


def valid_steps_below(G: int, R: int = 32) -> int:
    """The largest G' <= G whose budget E = G' x R every arm accepts (G' >= 1)."""
    while G > 1 and (G * R) % 6:
        G -= 1
    return G


def b(n: int, B: int) -> int:
    return math.ceil(n / B) if n > 0 else 0


def points(G: int, every: int) -> int:
    return len({0, G} | set(range(every, G + 1, every)))


def batches(family: str, s: Size) -> dict[str, int]:
    """Generation batches of one run of `family` at size `s`, per stage."""
    B = s.B
    out = {"final": 2 * b(s.P, B) + b(s.P, B) + b(4 * s.X, B) + (s.T - 1) * b(min(s.Sn, s.P), B)}
    if family == "base":
        return out
    out["monitoring"] = points(s.G, 12) * 2 * b(s.M, B)
    if family == "rl":
        out["sampling"] = 2 * s.G * b(s.R, B)
        return out
    probe = 3 * (b(s.n_train, B) + b(s.n_val, B))
    out["probe"] = (points(s.G, 24) + 1) * probe
    val_set = 2 * b(2 * s.V, B)
    out["sampling"] = {"teacher": 0, "self": 2 * b(s.E, B) + val_set, "star": 3 * 2 * b(s.E // 3, B) + val_set}[family]
    return out


def run_seconds(family: str, s: Size, ms_per_step: float) -> tuple[float, float]:
    """One run alone: (GPU-side seconds: decoding and updates, CPU-side seconds: sparsity and overhead)."""
    gpu = sum(batches(family, s).values()) * s.L * ms_per_step / 1000
    cpu = S_RUN_OVERHEAD
    if family != "base":
        gpu += s.G * S_PER_UPDATE
        cpu += S_SPARSITY
    return gpu, cpu


def estimate(s: Size, ms_per_step: float = MS_PER_DECODE_STEP, gain: float = GAIN, n_jobs: int = N_JOBS) -> dict:
    """GPU-side work shares the GPU (gain `gain` for `n_jobs` jobs); CPU-side work runs on a core per job."""
    alone = {arm: run_seconds(fam, s, ms_per_step) for arm, fam in ARMS.items()}
    gpu = SEEDS * sum(g for g, _ in alone.values())
    cpu = SEEDS * sum(c for _, c in alone.values())
    base_first = b(s.P, s.B) * s.L * ms_per_step / 1000  # built once (cached), before the other runs can finish
    throughput = gpu / gain + cpu / n_jobs
    longest = max(g * n_jobs / gain + c for g, c in alone.values())
    return {"total_alone_s": round(gpu + cpu), "throughput_bound_s": round(throughput + base_first),
            "longest_run_bound_s": round(longest + base_first), "wall_s": round(max(throughput, longest) + base_first),
            "per_arm_alone_s": {k: round(g + c) for k, (g, c) in alone.items()}}


def ladder() -> list[tuple[str, Size]]:
    """The sizing rule of README.md, rung by rung: each rung halves one knob of the one before
    (a budget to the largest valid one at or below half)."""
    rungs = [("file as is", Size())]
    s = Size()
    if s.valid():  # an arm refuses the file's budget (1,024 / 32, the file's earlier value, was refused by STaR)
        G = valid_steps_below(s.G)
        s = replace(s, E=G * s.R, G=G)
        rungs.append((f"largest valid budget below the file's -> E={s.E}, G={s.G}", s))
    for rep in range(2):
        s = replace(s, P=s.P // 2, X=s.X // 2, Sn=s.Sn // 2)
        rungs.append((f"halve test problems -> P={s.P}, matrix {s.X}, self-conditioning {s.Sn}", s))
        G = valid_steps_below(s.G // 2)
        s = replace(s, E=G * s.R, G=G)
        rungs.append((f"halve episodes and steps -> E={s.E}, G={s.G}", s))
        s = replace(s, M=s.M // 2, n_train=s.n_train // 2, n_val=s.n_val // 2, V=s.V // 2)
        rungs.append((f"halve validation problems -> M={s.M}, probe {s.n_train}/{s.n_val}/{s.V}", s))
    return rungs


def pick(ms_per_step: float = MS_PER_DECODE_STEP, gain: float = GAIN, budget_s: float = BUDGET_S) -> tuple[str, Size, dict]:
    """The first valid rung whose estimate fits the budget (the last rung if none does)."""
    last = None
    for name, s in ladder():
        if s.valid():
            continue
        e = estimate(s, ms_per_step, gain)
        last = (name, s, e)
        if e["wall_s"] <= budget_s:
            return last
    return last


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ms-per-step", type=float, default=MS_PER_DECODE_STEP)
    ap.add_argument("--gain", type=float, default=GAIN)
    ap.add_argument("--budget-s", type=float, default=BUDGET_S)
    ap.add_argument("--pick", action="store_true", help="print only the overrides of the first rung that fits")
    args = ap.parse_args(argv)
    if args.pick:
        name, s, e = pick(args.ms_per_step, args.gain, args.budget_s)
        print(s.overrides())
        return 0 if e["wall_s"] <= args.budget_s else 1
    print(f"assumptions: {args.ms_per_step} ms per decode step, gain {args.gain} for {N_JOBS} jobs, "
          f"{S_PER_UPDATE} s per gradient step, {S_SPARSITY} s sparsity, {S_RUN_OVERHEAD} s per run; budget {args.budget_s:.0f} s")
    for name, s in ladder():
        bad = s.valid()
        e = estimate(s, args.ms_per_step, args.gain)
        fam = {f: sum(batches(f, s).values()) for f in ("base", "teacher", "self", "star", "rl")}
        print(f"- {name}: " + ("INVALID (" + "; ".join(bad) + ")" if bad else
              f"{e['wall_s']} s (throughput {e['throughput_bound_s']}, longest run {e['longest_run_bound_s']}; "
              f"39 runs alone {e['total_alone_s']} s); batches per run {fam}"))
    name, s, e = pick(args.ms_per_step, args.gain, args.budget_s)
    print(f"picked: {name}: {s.overrides()}  ({e['wall_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
