"""The RL update step of the real-model experiment, before and after, measured in one run: SmolLM2-135M-Instruct
(the converted GGUF) on the experiment's task, one SCoRe Stage II step of `SCoReGRPOTrainer` (what every RL arm
runs) on one fixed batch of two-turn episodes sampled by the policy (vLLM), in five variants:

  before      full fine-tuning, fp32, the KL term's log-probs from a no-grad forward pass of the policy, the
              step's 16 rows in one forward/backward pass (today's engine)
  lora        LoRA (model.lora: r 16 on every linear layer of the blocks), otherwise as before
  lora_reuse  LoRA with the sampler's log-probs reused for the KL term (rl.sampler_logprobs)
  full_reuse  full fine-tuning with the sampler's log-probs reused
  after       full fine-tuning, sampler's log-probs, micro-batches of 4 rows (arm.micro_batch): the experiment's
  lora_after  as after, with LoRA
  full_bf16   as after, with bf16 autocast over the fp32 master weights (model.compute_dtype=bfloat16)

    .venv/bin/python experiments/bench_real_update.py [--episodes 16] [--steps 3] [--experiment smollm2_reasoning_gym]

Prints, per variant, the update's seconds per step (median of the steps after the first), trained-row tokens/s,
an estimated GFLOP/s (forward ≈ 2·params FLOP per token; ×3 for a full backward, ×2 for LoRA's, +1 for each
extra no-grad forward) and the ratio to `before`; then vLLM's weight sync after an update and its share of a
step. One JSON line at the end. Asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

import torch  # noqa: E402
from bench_util import emit, with_make_malloc  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from selfcorrect.models.loading import base_model_path, open_policy  # noqa: E402
from selfcorrect.models.policy import Sampling  # noqa: E402
from selfcorrect.paths import CONF_DIR  # noqa: E402
from selfcorrect.tasks import make_task  # noqa: E402
from selfcorrect.training.rl.config import RLConfig  # noqa: E402
from selfcorrect.training.rl.grpo_engine import SCoReGRPOTrainer, grpo_args, two_turn_tokens  # noqa: E402
from selfcorrect.training.rl.rollouts import collect  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TARGET_SYNC_SHARE = 0.10  # issue 30: the vLLM weight sync a small fraction of a step (here: at most 10 %)
VARIANTS = {  # name: (LoRA, compute dtype, reuse the sampler's log-probs, rows per forward/backward (None: all))
    "before": (False, "float32", False, None),
    "lora": (True, "float32", False, None),
    "lora_reuse": (True, "float32", True, None),
    "full_reuse": (False, "float32", True, None),
    "after": (False, "float32", True, 4),
    "lora_after": (True, "float32", True, 4),
    "full_bf16": (False, "bfloat16", True, 4),
}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", default="smollm2_reasoning_gym", help="conf/experiment whose model, task and arm settings are used")
    ap.add_argument("--episodes", type=int, default=16, help="two-turn episodes per step (4 per prompt)")
    ap.add_argument("--steps", type=int, default=3, help="update steps per variant (the first is a warm-up)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: measure this variant in this process
    ap.add_argument("--json-out", default=None)
    return ap.parse_args()


def each_in_its_own_process(args) -> None:
    """Every variant in a fresh process (a full fine-tuning step peaks near 20 GB here, and freed memory stays with
    the process): the same sampled batch in each (vLLM, seeded), the rows gathered into one table and JSON line."""
    import subprocess

    rows, facts = [], {}
    for name in args.variants.split(","):
        cmd = [sys.executable, __file__, "--one", name, "--experiment", args.experiment, "--episodes", str(args.episodes),
               "--steps", str(args.steps), "--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        result = next((json.loads(x[len("RESULT "):]) for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if result is None:
            print(f"{name}: failed (exit {out.returncode}): {out.stderr[-800:]}", flush=True)
            continue
        facts.update(result["facts"])
        rows.append(result["row"])
        print(result["row"], flush=True)
    report(rows, facts, args)


def main() -> None:
    with_make_malloc()
    args = parse_args()
    if args.one is None:
        return each_in_its_own_process(args)
    torch.set_num_threads(args.threads)
    cache = Path(os.environ.get("SELFCORRECT_CACHE_DIR", ROOT / ".cache/selfcorrect"))
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={args.experiment}", "arm=score", "tracking.mode=disabled"])
    task = make_task(cfg.task)
    path = base_model_path(cfg.model, task, cache)
    rl = RLConfig.from_cfg(cfg.arm, cfg.budget)
    k = rl.samples_per_prompt
    rl = dataclasses.replace(rl, prompts_per_step=args.episodes // k, budget=dataclasses.replace(rl.budget, lr=1e-5))

    # one batch of episodes sampled by the policy through vLLM, rewards replaced by a fixed mixed pattern (so
    # that every advantage is live, whatever the model gets right)
    sampler = open_policy(path, task, cfg.model)
    problems = task.problems("train", args.episodes // k, seed=0)
    ro = collect(sampler, task, problems, k, Sampling(rl.temperature, rl.max_new_tokens), seed=0, sampler=two_turn_tokens)
    pattern = torch.tensor([1.0, 0.0, 0.0, 1.0] * (len(ro) // 4 + 1))[: len(ro)]
    ro.r1, ro.r2 = pattern, pattern.roll(1)
    ro.gen_s = 0.0  # the update's time is the training step's: no sampling happens in it here
    row_tokens = sum(len(t.prompt_ids) + len(t.completion_ids) for ep in ro.episodes for t in ep.turns[1:])
    n_params = sum(p.numel() for p in sampler.model.parameters())
    facts = {"experiment": args.experiment, "episodes": len(ro), "row_tokens": row_tokens, "params": n_params,
             "threads": args.threads, "torch": torch.__version__, "loadavg_start": round(os.getloadavg()[0], 2)}
    print(f"{len(ro)} episodes, {row_tokens} tokens in their packed rows ({row_tokens / len(ro):.0f} per row), "
          f"{n_params / 1e6:.1f} M parameters", flush=True)

    from datasets import Dataset

    rows = []
    for name in [args.one]:
        lora, compute, reuse, micro = VARIANTS[name]
        model_cfg = copy.deepcopy(cfg.model)
        model_cfg.lora.enabled, model_cfg.compute_dtype = lora, compute
        policy = open_policy(path, task, model_cfg, adapter_seed=0)
        ref = open_policy(path, task, model_cfg).model
        variant_rl = dataclasses.replace(rl, sampler_logprobs=reuse, micro_batch=micro)
        with tempfile.TemporaryDirectory() as out:
            trainer = SCoReGRPOTrainer(
                rl=variant_rl, ref_model=ref, rollouts_for_step=lambda tr, step: ro, stages=["II"] * args.steps,
                model=policy.model, args=grpo_args(variant_rl, out, steps=args.steps, bf16=compute == "bfloat16"),
                processing_class=policy.tokenizer, train_dataset=Dataset.from_dict({"prompt": [""] * variant_rl.prompts_per_step}))
            trainer.train()
        times = trainer.update_times[1:] or trainer.update_times
        s = statistics.median(times)
        # FLOP per row token: forward 2N; a full backward 4N (LoRA: the activations' 2N only); the reference's forward
        # 2N; the policy's no-grad forward 2N unless the sampler's log-probs stand in for it
        flop = 2 * n_params * ((3 if not lora else 2) + 1 + (0 if reuse else 1)) * row_tokens
        import resource

        rows.append({"max_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 1), "variant": name, "lora": lora, "compute_dtype": compute, "sampler_logprobs": reuse, "micro_batch": micro, "s_per_step": round(s, 2),
                     "steps": [round(t, 2) for t in trainer.update_times], "tok_s": round(row_tokens / s, 1),
                     "gflop_s": round(flop / s / 1e9, 1)})
        if name in ("after", "lora_after"):  # vLLM's weight sync of the updated policy (merged LoRA weights)
            from selfcorrect.models.vllm_engine import shared_engine

            engine = shared_engine(path, **(dict(cfg.model.vllm) if "vllm" in cfg.model else {}))
            facts["sync_s"] = round(engine.sync(policy.model), 2)
            facts["sync_share_of_step"] = round(facts["sync_s"] / (s + facts["sync_s"]), 3)
    print("RESULT " + json.dumps({"facts": facts, "row": rows[0]}), flush=True)


def report(rows: list[dict], facts: dict, args) -> None:
    base = next((r for r in rows if r["variant"] == "before"), None)
    print(f"\n{'variant':<11} {'s/step':>7} {'tok/s':>7} {'GFLOP/s':>8} {'× before':>9}")
    for r in rows:
        ratio = base["s_per_step"] / r["s_per_step"] if base else float("nan")
        r["speedup_vs_before"] = round(ratio, 2)
        print(f"{r['variant']:<11} {r['s_per_step']:>7} {r['tok_s']:>7} {r['gflop_s']:>8} {ratio:>8.2f}×")
    if "sync_s" in facts:
        print(f"vLLM weight sync after an update: {facts['sync_s']} s ({facts['sync_share_of_step']:.0%} of a step with it)")
        met = facts["sync_share_of_step"] <= TARGET_SYNC_SHARE
        facts["target_sync_share"] = {"target": TARGET_SYNC_SHARE, "measured": facts["sync_share_of_step"], "met": met}
        print(f"target: the weight sync <= {TARGET_SYNC_SHARE:.0%} of a step: {'met' if met else 'MISSED'}")
    print("target: one RL arm at the CPU experiment's budget <= 20 min: measured by `make sweep-real` (each run's "
          "wall_s; experiments/summarize_real.py prints it per arm)")
    emit("real_update", facts, rows, args.json_out)


if __name__ == "__main__":
    main()
