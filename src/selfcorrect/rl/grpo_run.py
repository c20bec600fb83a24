"""One RL arm run through `SCoReGRPOTrainer` (issue 13): the old loop's schedule, budget, seeds,
logging and kept checkpoint, with GRPOTrainer's training loop doing the updates. Episodes come
from `grpo_engine.two_turn_tokens` (turn-2 prompts token for token; see there).

Same as `trainer.train`: the budget's AdamW and schedule (`Budget.make_optimizer/make_scheduler`,
passed to the Trainer as its optimizer), the step-s problem draws and sampling seeds
(`seed·STEP_SEED_STRIDE + s`), the `train/` rows, the val evaluations every `eval_every` steps,
and the best-training-reward selection. Not yet here: mid-run checkpoints and resume (the
Trainer saves nothing; a killed run starts over), multi-process rollouts.
"""

from __future__ import annotations

import copy
import tempfile
import time

from transformers import TrainerCallback

from selfcorrect.policy import Policy, Sampling
from selfcorrect.rl import checkpoint
from selfcorrect.rl.grpo_engine import SCoReGRPOTrainer, grpo_args, two_turn_tokens
from selfcorrect.rl.rewards import get_stage
from selfcorrect.rl.rollouts import collect
from selfcorrect.rl.trainer import STEP_SEED_STRIDE, RLConfig


class _StepLog(TrainerCallback):
    """After each optimizer step (on GRPOTrainer's log, which carries grad_norm): the `train/` row,
    the best-training-reward candidate, and the scheduled evaluation."""

    def __init__(self, ctx, rl: RLConfig, policy: Policy, counts: dict):
        self.ctx, self.rl, self.policy, self.counts = ctx, rl, policy, counts
        self.trainer: SCoReGRPOTrainer | None = None
        self.candidates, self.total = set(rl.selection_steps()), len(rl.stages_by_step())
        self.select = {"window": [], "best_step": None, "best_reward": None}
        self.logged = 0

    def best_path(self, step: int):
        return self.ctx.run_dir / "checkpoints" / f"best_train_reward_{step:07d}.pt"

    def on_log(self, args, state, control, logs=None, **kw):
        step = state.global_step
        if step == self.logged or step == 0 or self.trainer.last_rollouts is None:
            return
        self.logged = step
        ro, tr, stage = self.trainer.last_rollouts, self.trainer, self.rl.stages_by_step()[step - 1]
        row = {**ro.metrics(), **tr.last_stats, "stage": get_stage(stage).code,
               "unpacked_rate": tr.last_unpacked / len(ro), "update_s": tr.last_update_s}
        for ours, theirs in (("grad_norm", "grad_norm"), ("loss", "loss"), ("lr", "learning_rate")):
            if logs and theirs in logs:
                row[ours] = float(logs[theirs])
        self.ctx.tracker.log(row, step=step, prefix="train/")
        self.counts.update(episodes=self.counts["episodes"] + len(ro), attempts_sampled=self.counts["attempts_sampled"] + 2 * len(ro),
                           prompts=self.counts["prompts"] + len(ro) // ro.group_size, gradient_steps=step,
                           rollout_s=self.counts["rollout_s"] + ro.gen_s)
        sel = self.select
        sel["window"] = (sel["window"] + [tr.last_stats["train_reward"]])[-self.rl.select_every:]
        if step in self.candidates:
            score = sum(sel["window"]) / len(sel["window"])
            if sel["best_reward"] is None or score >= sel["best_reward"]:
                sel.update(best_step=step, best_reward=score)
                checkpoint.save_weights(self.best_path(step), self.policy.model)
        if step % self.rl.eval_every == 0 or step == self.total:
            t0 = time.perf_counter()
            self.ctx.evaluate(self.policy, step)
            self.counts["eval_s"] += time.perf_counter() - t0


def train_grpo(ctx, rl: RLConfig) -> Policy:
    """Run the arm's stage schedule from the base through GRPOTrainer; returns the kept policy."""
    policy = ctx.new_policy()
    ref = copy.deepcopy(ctx.base.model)  # GRPOTrainer patches the reference's forward: keep ctx.base untouched
    plan = rl.stages_by_step()
    total = len(plan)
    optimizer = rl.budget.make_optimizer(policy.model.parameters())
    scheduler = rl.budget.make_scheduler(optimizer, total)
    sampling = Sampling(rl.temperature, rl.max_new_tokens)
    counts = {"episodes": 0, "attempts_sampled": 0, "prompts": 0, "gradient_steps": 0, "rollout_s": 0.0, "update_s": 0.0, "eval_s": 0.0}
    (ctx.run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    ctx.restore_snapshots(0)

    def rollouts_for_step(trainer, step0: int):
        step_seed = ctx.seed * STEP_SEED_STRIDE + step0 + 1  # the old loop's seeds for step s = step0 + 1
        problems = ctx.task.problems("train", rl.prompts_per_step, seed=step_seed)
        return collect(policy, ctx.task, problems, rl.samples_per_prompt, sampling, seed=step_seed, sampler=two_turn_tokens)

    from datasets import Dataset

    log = _StepLog(ctx, rl, policy, counts)
    _evaluate(ctx, policy, 0, counts)
    with tempfile.TemporaryDirectory() as out:
        trainer = SCoReGRPOTrainer(
            rl=rl, ref_model=ref, rollouts_for_step=rollouts_for_step, stages=plan, model=policy.model,
            args=grpo_args(rl, out, steps=total), processing_class=policy.tokenizer,
            train_dataset=Dataset.from_dict({"prompt": [""] * rl.prompts_per_step}),
            optimizers=(optimizer, scheduler), callbacks=[log],
        )
        log.trainer = trainer
        trainer.train()
    counts["update_s"] = round(sum(trainer.update_times), 3)

    kept = total
    if rl.checkpoint == "best_train_reward":
        kept = log.select["best_step"]
        checkpoint.load_weights(log.best_path(kept), policy.model)
        for other in (ctx.run_dir / "checkpoints").glob("best_train_reward_*.pt"):
            if other != log.best_path(kept):
                other.unlink()
    policy.model.eval()
    ctx.record_budget(rl.budget.spent(counts["episodes"], counts["gradient_steps"], rl.prompts_per_step * rl.samples_per_prompt))
    ctx.extra_metrics.update({k: (round(v, 2) if isinstance(v, float) else v) for k, v in counts.items()})
    ctx.extra_metrics.update(
        engine="trl.GRPOTrainer", samples_per_prompt=rl.samples_per_prompt, prompts_per_step=rl.prompts_per_step,
        stages="+".join(f"{s}:{n}" for s, n in rl.schedule) + (f" x{rl.iterations}" if rl.iterations > 1 else ""),
        checkpoint={"selection": rl.checkpoint, "step": kept, "candidates": sorted(log.candidates),
                    "train_reward": log.select["best_reward"] if rl.checkpoint == "best_train_reward" else None},
    )
    ctx.tracker.log({"kept_step": kept}, step=total, prefix="checkpoint/")
    return policy


def _evaluate(ctx, policy: Policy, step: int, counts: dict) -> None:
    t0 = time.perf_counter()
    ctx.evaluate(policy, step)
    counts["eval_s"] += time.perf_counter() - t0

