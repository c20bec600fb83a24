"""Benchmarks for the embedded default (prints figures; not a test).

- generation throughput of the policy wrapper: two-turn samples/s at batch 256, greedy and T=1
- wall time of a base-model build from scratch (the default recipe, one thread)

    python experiments/bench_embedded.py [--skip-build] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

import torch
from hydra import compose, initialize_config_dir

from selfcorrect.models import base_model_path, load_base_policy
from selfcorrect.policy import Sampling
from selfcorrect.run import CONF_DIR
from selfcorrect.tasks import make_task


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-build", action="store_true", help="do not time a fresh base-model build")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=1024, help="two-turn samples per measurement")
    args = ap.parse_args()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["seed=0"])
    task = make_task(cfg.task)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, threads={args.threads}")

    if not args.skip_build:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.time()
            base_model_path(cfg.model, task, tmp)
            print(f"base-model build (default recipe, {cfg.model.pretrain.steps} steps × {cfg.model.pretrain.batch_size}, 1 thread): {time.time() - t0:.1f} s")

    torch.set_num_threads(args.threads)
    policy = load_base_policy(cfg.model, task, cfg.paths.cache_dir)
    policy.batch_size = 256
    problems = task.problems("train", args.n, seed=0)
    policy.two_turn(problems[:256], Sampling(0.0, cfg.eval.max_new_tokens))  # warm-up
    for name, s in [("greedy", Sampling(0.0, cfg.eval.max_new_tokens)), ("T=1", Sampling(1.0, cfg.eval.max_new_tokens))]:
        t0 = time.time()
        eps = policy.two_turn(problems, s, seed=1)
        dt = time.time() - t0
        tokens = sum(len(t.completion_ids) for ep in eps for t in ep.turns)
        print(f"two-turn generation, batch 256, {name}: {len(eps) / dt:.0f} samples/s ({tokens / dt:.0f} generated tokens/s)")


if __name__ == "__main__":
    main()
