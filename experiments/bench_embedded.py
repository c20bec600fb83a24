"""Benchmarks for the embedded default (prints figures; asserts nothing).

    python experiments/bench_embedded.py [--skip-build] [--skip-runs] [--sweep outputs/sweeps/<stamp>]

1. Where a run's time goes: one run of each family (base, offline Pair-SFT, RL SCoRe) on the
   arithmetic testbed with the sweep's settings, and its `run.json` stage split as shares of the
   run's wall time (`selfcorrect.runtime.timing`).
2. Each speed change of issue 20, before and after, measured in one process on the same inputs
   (ratios; the machine's load falls on both sides alike): the two-turn generation of the policy
   wrapper (`gpt2_decoding` against transformers' `generate`, greedy and T = 1, same tokens), the
   prompt building (one Jinja render and one tokenizer call per prompt, as before, against
   `Policy.prompts`), the pretraining corpus's tensorization (the tokenizer call, as before, against
   `char_tokenizer.encode_padded`), the base model's first attempts for probe and matrix (computed
   per run, as before, against the per-seed cache), the test-set size (5,000 problems before,
   1,000 now), and (issue 32) turn 2 decoded from turn 1's KV cache against re-encoding the conversation.
3. A base-model build from scratch (the default recipe, one thread).
4. With `--sweep`: the sweep-level overhead, per testbed: its wall time against the runs' own
   wall times divided by the workers (the rest is launcher start-up, the gap between multiruns,
   the summary and figures, and workers waiting for the last runs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_util import testbed_wall_s
from hydra import compose, initialize_config_dir

from selfcorrect.models.loading import base_model_path, load_base_policy
from selfcorrect.models.policy import Policy, Sampling
from selfcorrect.models.prompts import conversation
from selfcorrect.paths import CONF_DIR
from selfcorrect.tasks import make_task

ROOT = Path(CONF_DIR).parent


def timed(fn, repeat: int = 3) -> float:
    """The fastest of `repeat` runs (seconds): what the code costs, with less of the machine's noise."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def stage_split(args) -> None:
    print("\n## 1. Stage split of one run per family (arithmetic testbed, sweep settings, seed 0)")
    with tempfile.TemporaryDirectory() as tmp:
        for arm in ("base", "sft_self", "score"):
            run_dir = Path(tmp) / arm
            cmd = [sys.executable, "-m", "selfcorrect", "experiment=embedded_sweep", f"arm={arm}", "seed=0",
                   "tracking.mode=offline", f"hydra.run.dir={run_dir}"]
            res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "WANDB_SILENT": "true"})
            if res.returncode != 0:
                print(f"  {arm}: failed\n{res.stderr[-2000:]}")
                continue
            st = json.loads((run_dir / "run.json").read_text())["stages"]
            wall = st.pop("wall")
            parts = ", ".join(f"{k} {v:.1f} s ({100 * v / wall:.0f} %)" for k, v in st.items() if v >= 0.05)
            print(f"  {arm:9s} wall {wall:5.1f} s: {parts}")


def generation(policy: Policy, problems, args) -> None:
    print("\n## 2. Speed changes, before → after (same inputs, one process; ratio = before / after)")
    plain = Policy(policy.model, policy.tokenizer, policy.task, batch_size=256, decoder="generate")
    policy.batch_size = 256
    for name, s in (("greedy", Sampling(0.0, 32)), ("T=1", Sampling(1.0, 32))):
        policy.two_turn(problems[:256], s, seed=1)
        a = [[t.completion_ids for t in ep.turns] for ep in plain.two_turn(problems, s, seed=1)]
        b = [[t.completion_ids for t in ep.turns] for ep in policy.two_turn(problems, s, seed=1)]
        before = timed(lambda: plain.two_turn(problems, s, seed=1))
        after = timed(lambda: policy.two_turn(problems, s, seed=1))
        print(f"  two-turn generation, {len(problems)} problems, batch 256, {name}: generate {len(problems) / before:.0f} → "
              f"gpt2_decoding {len(problems) / after:.0f} samples/s ({before / after:.2f}x; identical tokens: {a == b})")

    for name, s in (("greedy", Sampling(0.0, 32)), ("T=1", Sampling(1.0, 32))):  # issue 32, item 2
        policy.continue_turns = True
        a = [[t.completion_ids for t in ep.turns] for ep in policy.two_turn(problems, s, seed=1)]
        after = timed(lambda: policy.two_turn(problems, s, seed=1))
        policy.continue_turns = False
        b = [[t.completion_ids for t in ep.turns] for ep in policy.two_turn(problems, s, seed=1)]
        before = timed(lambda: policy.two_turn(problems, s, seed=1))
        same = sum(x == y for x, y in zip(a, b))
        print(f"  turn 2 from turn 1's KV cache (model.continue_turns), {len(problems)} problems, {name}: re-encoded "
              f"{len(problems) / before:.0f} → continued {len(problems) / after:.0f} samples/s ({before / after:.2f}x; "
              f"identical episodes: {same}/{len(a)}{'' if s.greedy else ', sampled: another draw order'})")

    task, tok = policy.task, policy.tokenizer
    hist = [[ep.y1] for ep in policy.two_turn(problems, Sampling(0.0, 32), n_turns=1)]

    def per_prompt():
        return [tok(tok.apply_chat_template(conversation(task, p, h), tokenize=False, add_generation_prompt=True),
                    add_special_tokens=False).input_ids for p, h in zip(problems, hist)]

    assert per_prompt() == policy.prompts(problems, hist)
    before, after = timed(per_prompt), timed(lambda: policy.prompts(problems, hist))
    print(f"  turn-2 prompts, {len(problems)}: one Jinja render + tokenizer call each {1e6 * before / len(problems):.0f} µs → "
          f"Policy.prompts {1e6 * after / len(problems):.0f} µs per prompt ({before / after:.1f}x)")


def tensorize(cfg, task) -> None:
    from selfcorrect.models import tiny_model as tm
    from selfcorrect.models.char_tokenizer import build_char_tokenizer

    spec = tm.base_model_spec(cfg.model, task)
    tok = build_char_tokenizer(tm.ALPHABET + task.revise_instruction)
    texts, lens = tm.pretraining_texts(task, tok, spec["pretrain"], 20_000, random.Random(0))

    def old():
        enc = tok(texts, add_special_tokens=False, padding=True, padding_side="right", return_tensors="pt")
        return enc.input_ids

    same = torch.equal(old(), tm._tensorize(tok, texts, lens)[0])
    before, after = timed(old, 2), timed(lambda: tm._tensorize(tok, texts, lens), 2)
    n = spec["pretrain"]["steps"] * spec["pretrain"]["batch_size"]
    print(f"  pretraining corpus tensorized, 20,000 traces: tokenizer {before:.2f} s → table lookup {after:.2f} s "
          f"({before / after:.0f}x, identical ids: {same}; a build tensorizes {n:,})")


def base_first_and_problems(policy: Policy, task, cfg) -> None:
    s = Sampling(0.0, int(cfg.eval.max_new_tokens))
    for n in (5000, 1000):
        problems = task.problems("test", n, seed=int(cfg.eval.problem_seed))
        t = timed(lambda: policy.two_turn(problems, s, n_turns=1), 1)
        print(f"  base first attempts on {n:,} test problems (per run before, once per seed now): {t:.2f} s")
    problems5 = task.problems("test", 5000, seed=int(cfg.eval.problem_seed))
    t5 = timed(lambda: policy.two_turn(problems5, s), 1)
    t1 = timed(lambda: policy.two_turn(problems5[:1000], s), 1)
    print(f"  two-turn test episodes: 5,000 problems {t5:.2f} s → 1,000 {t1:.2f} s ({t5 / t1:.1f}x; per-run test episodes "
          "are also the probe's own; the probe and the matrix scale the same way)")


def sweep_overhead(sweep: Path, jobs: int) -> None:
    print(f"\n## 4. Sweep-level overhead ({sweep}, {jobs} workers per testbed)")
    for d in sorted({sweep, Path(f"{sweep}-answer_first")}):
        wall = testbed_wall_s(d)
        if wall is None:
            print(f"  {d}: no wall_time.txt")
            continue
        runs = [json.loads(p.read_text()) for p in d.glob("*/run.json")]
        busy = sum(r.get("wall_s", 0.0) for r in runs) / jobs
        print(f"  {d.name}: wall {wall:.0f} s, runs {busy:.0f} s of worker time per worker ({len(runs)} runs) → "
              f"outside runs {wall - busy:.0f} s ({100 * (wall - busy) / wall:.0f} % of the wall time)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-build", action="store_true", help="do not time a fresh base-model build")
    ap.add_argument("--skip-runs", action="store_true", help="do not run the three runs of the stage split")
    ap.add_argument("--sweep", type=Path, default=None, help="a finished sweep directory for the sweep-level overhead")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--n", type=int, default=2048, help="problems per generation measurement")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["seed=0"])
    task = make_task(cfg.task)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.backends.cpu.get_cpu_capability()}, 1 thread")
    if not args.skip_runs:
        stage_split(args)
    policy = load_base_policy(cfg.model, task, cfg.paths.cache_dir)
    generation(policy, task.problems("train", args.n, seed=0), args)
    tensorize(cfg, task)
    base_first_and_problems(policy, task, cfg)
    if not args.skip_build:
        print("\n## 3. Base-model build from scratch")
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.time()
            base_model_path(cfg.model, task, tmp)
            print(f"  default recipe ({cfg.model.pretrain.steps} steps × {cfg.model.pretrain.batch_size}, 1 thread): {time.time() - t0:.1f} s")
    if args.sweep is not None:
        sweep_overhead(args.sweep, args.jobs)


if __name__ == "__main__":
    main()
