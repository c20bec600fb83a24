"""One SCoRe update step (the compact pre-issue-13 update, kept as the reference in
selfcorrect/training/rl/reference.py) against one TRL GRPOTrainer step, same model,
batch and generation length, both two-turn, on CPU; prints seconds per step and their ratio.

    python experiments/bench_score_vs_grpo.py [--steps 5] [--prompts 32] [--k 4] [--seed 0]

A third line runs the same SCoRe Stage II step through `rl.grpo_engine.SCoReGRPOTrainer`
(issue 13) and prints its ratio to the compact trainer.

Both sides: the seed's cached tiny base (built on first use), `prompts × k` two-turn episodes
sampled at T=1 through the same `Policy.two_turn`, up to 32 new tokens per attempt, a KL to a
frozen reference, one Adam step. GRPOTrainer gets the two turns through `rollout_func` (one
sequence y1 + instruction + y2 with `env_mask` 0 on the instruction) and one scalar reward r(y2);
it runs with `use_cpu=True, bf16=False, gradient_checkpointing=False` (cpu_measurements.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import torch
from hydra import compose, initialize_config_dir

from selfcorrect.models.loading import base_model_path
from selfcorrect.models.policy import Policy, Sampling
from selfcorrect.tasks import make_task
from selfcorrect.training.rl.config import RLConfig
from selfcorrect.training.rl.reference import reference_update as policy_update
from selfcorrect.training.rl.rollouts import collect

CONF = str(Path(__file__).resolve().parents[1] / "conf")



def step_timer():
    """A Trainer callback that records each optimizer step's wall time."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self.t0 = [], None

        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.times.append(time.perf_counter() - self.t0)

    return StepTimer()

def score_seconds_per_step(base_path, task, rl: RLConfig, prompts: int, k: int, steps: int) -> list[float]:
    policy, ref = Policy.load(base_path, task), Policy.load(base_path, task)
    policy.model.eval()
    opt = rl.budget.make_optimizer(policy.model.parameters())
    sampling = Sampling(rl.temperature, rl.max_new_tokens)
    times = []
    for step in range(steps + 1):  # the first step warms up and is not timed
        t0 = time.perf_counter()
        problems = task.problems("train", prompts, seed=10_000 + step)
        rollouts = collect(policy, task, problems, k, sampling, seed=step)
        policy_update(policy, ref, rollouts, "II", rl, opt)
        if step:
            times.append(time.perf_counter() - t0)
    return times


def grpo_seconds_per_step(base_path, task, rl: RLConfig, prompts: int, k: int, steps: int) -> list[float]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(base_path)
    model = AutoModelForCausalLM.from_pretrained(base_path)
    pool = task.problems("train", prompts * (steps + 1), seed=20_000)
    by_prompt = {p.prompt: p for p in pool}
    sampling = Sampling(rl.temperature, rl.max_new_tokens)

    def rollout_func(batch_prompts, trainer):
        # without vLLM the prompts arrive already repeated once per generation: one episode each
        policy = Policy(trainer.model, tokenizer, task)
        episodes = policy.two_turn([by_prompt[p] for p in batch_prompts], sampling, seed=trainer.state.global_step)
        prompt_ids, completion_ids, env_mask, correct2 = [], [], [], []
        for ep in episodes:
            (p1, c1), (p2, c2) = [(t.prompt_ids, t.completion_ids) for t in ep.turns]
            injected = p2[len(p1) + len(c1):] if p2[: len(p1) + len(c1)] == p1 + c1 else None
            if injected is None:  # y1 does not round-trip: train y2 only
                injected, c1 = p2[len(p1):], []
            prompt_ids.append(p1)
            completion_ids.append(c1 + injected + c2)
            env_mask.append([1] * len(c1) + [0] * len(injected) + [1] * len(c2))
            correct2.append(float(task.verify(ep.problem, ep.y2).correct))
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None,
                "env_mask": env_mask, "correct2": correct2}

    def second_attempt_reward(prompts, completions, correct2, **kwargs):
        return correct2

    timer = step_timer()
    with tempfile.TemporaryDirectory() as out:
        args = GRPOConfig(
            output_dir=out, use_cpu=True, bf16=False, gradient_checkpointing=False,
            per_device_train_batch_size=prompts * k, num_generations=k, gradient_accumulation_steps=1,
            max_completion_length=3 * rl.max_new_tokens, max_steps=steps + 1, learning_rate=rl.budget.lr,
            beta=rl.beta1, temperature=rl.temperature, report_to=[], logging_steps=1, save_strategy="no",
            seed=0, dataloader_num_workers=0,
        )
        trainer = GRPOTrainer(
            model=model, reward_funcs=second_attempt_reward, args=args, processing_class=tokenizer,
            train_dataset=Dataset.from_dict({"prompt": [p.prompt for p in pool]}),
            rollout_func=rollout_func, callbacks=[timer],
        )
        trainer.train()
    return timer.times[1:]  # the first step warms up


def subclass_seconds_per_step(base_path, task, rl: RLConfig, prompts: int, k: int, steps: int) -> tuple[list[float], list[float]]:
    """SCoRe Stage II through `SCoReGRPOTrainer`: the rollouts of `score_seconds_per_step` (same
    seeds; turn-2 prompts token for token, `two_turn_tokens`); returns (whole step, update only = step less sampling) seconds."""
    import dataclasses

    from datasets import Dataset

    from selfcorrect.training.rl.grpo_engine import SCoReGRPOTrainer, grpo_args, two_turn_tokens

    policy, ref = Policy.load(base_path, task), Policy.load(base_path, task)
    rl = dataclasses.replace(rl, prompts_per_step=prompts, samples_per_prompt=k)
    sampling = Sampling(rl.temperature, rl.max_new_tokens)

    def rollouts_for_step(trainer, step):
        return collect(policy, task, task.problems("train", prompts, seed=10_000 + step), k, sampling, seed=step,
                       sampler=two_turn_tokens)

    timer = step_timer()
    opt = rl.budget.make_optimizer(policy.model.parameters())
    with tempfile.TemporaryDirectory() as out:
        trainer = SCoReGRPOTrainer(
            rl=rl, ref_model=ref.model, rollouts_for_step=rollouts_for_step, stages=["II"] * (steps + 1), model=policy.model,
            args=grpo_args(rl, out, steps=steps + 1, disable_tqdm=True), processing_class=policy.tokenizer,
            train_dataset=Dataset.from_dict({"prompt": [""] * prompts}), optimizers=(opt, rl.budget.make_scheduler(opt, steps + 1)),
            callbacks=[timer],
        )
        trainer.train()
    return timer.times[1:], trainer.update_times[1:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--prompts", type=int, default=None, help="prompts per step (default: arm config)")
    ap.add_argument("--k", type=int, default=None, help="samples per prompt (default: arm config)")
    ap.add_argument("--seed", type=int, default=0, help="which cached base model")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    if a.steps < 1:
        raise SystemExit(f"--steps must be >= 1, got {a.steps}")
    torch.set_num_threads(a.threads)
    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose("config", overrides=["arm=score", f"seed={a.seed}"])
    rl = RLConfig.from_cfg(cfg.arm, cfg.budget)
    prompts, k = a.prompts or rl.prompts_per_step, a.k or rl.samples_per_prompt
    task = make_task(cfg.task)
    base_path = base_model_path(cfg.model, task, Path(cfg.paths.cache_dir))

    score = score_seconds_per_step(base_path, task, rl, prompts, k, a.steps)
    grpo = grpo_seconds_per_step(base_path, task, rl, prompts, k, a.steps)
    sub, sub_update = subclass_seconds_per_step(base_path, task, rl, prompts, k, a.steps)
    ms, mg, mx = statistics.median(score), statistics.median(grpo), statistics.median(sub)
    print(f"batch: {prompts} prompts x {k} two-turn episodes, <= {rl.max_new_tokens} new tokens/attempt, {a.threads} thread(s), median of {a.steps} steps")
    print(f"SCoRe compact trainer: {ms:.3f} s/step  (all: {[round(t, 3) for t in score]})")
    print(f"TRL GRPOTrainer      : {mg:.3f} s/step  (all: {[round(t, 3) for t in grpo]})")
    print(f"SCoRe GRPO subclass  : {mx:.3f} s/step  (all: {[round(t, 3) for t in sub]}; update only, median: {statistics.median(sub_update):.3f} s)")
    print(f"ratio GRPOTrainer / SCoRe = {mg / ms:.2f}x")
    print(f"ratio SCoRe subclass / SCoRe compact trainer = {mx / ms:.2f}x  (issue 13 bar: <= 1.1x)")


if __name__ == "__main__":
    main()
