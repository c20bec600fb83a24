"""One RL arm run through `SCoReGRPOTrainer` (issue 13): the stage schedule, budget, seeds,
logging, checkpoints and kept policy of an RL run, with GRPOTrainer's training loop doing the
updates. Episodes come from `grpo_engine.two_turn_tokens` (turn-2 prompts token for token).

- optimizer and schedule: the budget's (`Budget.make_optimizer/make_scheduler`), handed to the
  Trainer, so the RL and offline arms share them;
- seeds: step s draws its problems and samples its episodes with `seed·STEP_SEED_STRIDE + s`;
- logging: a `train/` row per step, greedy `val/` evaluations at step 0, every `eval_every`
  steps and at the end (the validation evaluator passed in, `ctx.evaluate`, keeps the candidate
  checkpoints of the one checkpoint rule);
- checkpoints (`runtime/checkpoint.py`): model, optimizer, scheduler, RNG states, counters and the
  selection state every `ckpt_every` steps and at every stage boundary. A run re-launched into
  its run directory resumes from the latest one (history trimmed to it, later snapshots
  forgotten) and ends exactly as an uninterrupted run;
- several processes (`selfcorrect.runtime.distributed`): each samples its contiguous shares of the step's
  prompts (`RLConfig.rollout_shards`, at least one per process; all k episodes of a prompt, so
  the RLOO groups stay within one process; one process with rollout_shards = N draws exactly
  the episodes of an N-process run) and the
  Trainer's DDP averages the gradients (its "dapo" normaliser counts the tokens of all
  processes, so the update is that of the whole batch); the logged statistics are means over
  the processes, and only the main process logs, evaluates and writes checkpoints;
- kept policy: the paper's best training reward among `RLConfig.selection_steps()` (weights
  saved as `best_train_reward_<step>.pt`, the losers deleted at the end), or the last.

`train_grpo` reads as its steps: `set_up` (policy, reference, optimizer, schedule, counters, the
latest checkpoint) → `resume` (its states, history and candidates trimmed to it) → `train`
(GRPOTrainer's loop; `_StepLog` logs, evaluates and checkpoints after each step) → `keep` (the
paper's checkpoint) → `report` (the `ArmResult`).
"""

from __future__ import annotations

import copy
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PrinterCallback, TrainerCallback

from selfcorrect.models.policy import Policy, Sampling
from selfcorrect.runtime import checkpoint, distributed, timing
from selfcorrect.training.arms import ArmResult
from selfcorrect.training.rl.config import STEP_SEED_STRIDE, RLConfig
from selfcorrect.training.rl.grpo_engine import SCoReGRPOTrainer, grpo_args, two_turn_tokens
from selfcorrect.training.rl.rewards import get_stage
from selfcorrect.training.rl.rollouts import collect, concat

SHARD_SEED_STRIDE = 7_919_007  # share r > 0 of step s is sampled with seed(s) + r·stride
COUNTS = {"episodes": 0, "attempts_sampled": 0, "prompts": 0, "gradient_steps": 0, "rollout_s": 0.0, "update_s": 0.0, "eval_s": 0.0}


@dataclass
class GRPORun:
    """One RL arm's run: the policy it trains (and the frozen reference), the optimizer and schedule,
    the stage of every step, this process's shares of each step's prompts, where checkpoints go, the
    counters and selection state every checkpoint saves, and the latest checkpoint it resumes from."""
    rl: RLConfig
    policy: Policy
    ref: torch.nn.Module
    plan: list[str]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    shares: range          # this process's shares of a step's prompts
    per_share: int         # prompts per share
    ckpt_dir: Path
    fingerprint: dict
    counts: dict           # the budget spent so far (COUNTS)
    select: dict           # the best-training-reward selection state
    last: Path | None      # the latest checkpoint (None: a fresh start)
    start: int             # the step training (re)starts from

    @property
    def total(self) -> int:
        return len(self.plan)

    def best_path(self, step: int) -> Path:
        return self.ckpt_dir / f"best_train_reward_{step:07d}.pt"


class _StepLog(TrainerCallback):
    """After each optimizer step (on GRPOTrainer's log, which carries grad_norm): the `train/` row,
    the best-training-reward candidate, the scheduled evaluation and checkpoint."""

    def __init__(self, ctx, run: GRPORun):
        self.ctx, self.run, self.rl = ctx, run, run.rl
        self.trainer: SCoReGRPOTrainer | None = None
        self.plan = run.plan
        self.candidates, self.total = set(run.rl.selection_steps()), run.total
        self.logged = 0

    def on_log(self, args, state, control, logs=None, **kw):
        tr = self.trainer
        step = tr.first_step + state.global_step  # 1-based: the step just taken
        if state.global_step == 0 or step == self.logged or tr.last_rollouts is None:
            return
        self.logged = step
        ro, stage, world = tr.last_rollouts, self.plan[step - 1], distributed.world_size()
        row = {**ro.metrics(), **tr.last_stats, "stage": get_stage(stage).code, "unpacked_rate": tr.last_unpacked / len(ro),
               "update_s": tr.last_update_s, "tokens_per_s_update": tr.last_update_tokens / max(tr.last_update_s, 1e-9)}
        for ours, theirs in (("grad_norm", "grad_norm"), ("loss", "loss"), ("lr", "learning_rate")):
            if logs and theirs in logs:
                row[ours] = float(logs[theirs])
        row = distributed.mean_over_processes(row)  # every process takes part
        c = self.run.counts
        c.update(episodes=c["episodes"] + world * len(ro), attempts_sampled=c["attempts_sampled"] + 2 * world * len(ro),
                 prompts=c["prompts"] + world * len(ro) // ro.group_size, gradient_steps=step,
                 rollout_s=c["rollout_s"] + ro.gen_s, update_s=c["update_s"] + tr.last_update_s)
        sel = self.run.select
        sel["window"] = (sel["window"] + [row["train_reward"]])[-self.rl.select_every:]
        if not distributed.is_main():
            return
        self.ctx.tracker.log(row, step=step, prefix="train/")
        if step in self.candidates:  # the paper keeps the checkpoint with the highest training reward
            # (the window's rewards come from the rollouts of the policies before steps s-11..s;
            # the weights kept are those after step s's update)
            score = sum(sel["window"]) / len(sel["window"])
            if sel["best_reward"] is None or score >= sel["best_reward"]:
                sel.update(best_step=step, best_reward=score)
                with timing.stage("checkpoints"):
                    checkpoint.save_weights(self.run.best_path(step), self.run.policy.model)
        if step % self.rl.eval_every == 0 or step == self.total:
            evaluate(self.ctx, self.run, step)
        if step % self.rl.ckpt_every == 0 or step == self.total or self.plan[step] != stage:
            save(self.run, step, stage)


def fingerprint(ctx, rl: RLConfig) -> dict:
    """What a checkpoint must have been written under to be resumed from."""
    return {"arm": ctx.spec.arm.settings, "budget": rl.budget.spent(0, 0, 0),
            "seed": ctx.seed, "base": str(ctx.base_path)}


def train_grpo(ctx, rl: RLConfig) -> ArmResult:
    """Run the arm's stage schedule from the base through GRPOTrainer, resuming from
    `run_dir/checkpoints` when a checkpoint is there; returns the kept policy and what it spent."""
    run = set_up(ctx, rl)
    with tempfile.TemporaryDirectory() as out:  # the Trainer's output_dir: it writes nothing worth keeping
        trainer = make_trainer(ctx, run, out)
        resume(ctx, run)  # after the Trainer is built: its constructor reseeds the global RNGs
        train(trainer, run)
    if not distributed.is_main():  # the main process evaluates and keeps the policy
        return ArmResult(run.policy)
    kept = keep(run)
    return report(ctx, run, kept)


def set_up(ctx, rl: RLConfig) -> GRPORun:
    """A fresh copy of the base to train, a copy of its weights as the reference, the budget's
    optimizer and schedule over the stage plan, this process's prompt shares, and the step to
    (re)start from: after the latest checkpoint in `run_dir/checkpoints`, else 0."""
    world, rank = distributed.world_size(), distributed.rank()
    shards = max(rl.rollout_shards, world)
    if shards % world or rl.prompts_per_step % shards:
        raise ValueError(f"{rl.prompts_per_step} prompts per step do not split into {shards} equal shares over {world} processes")
    policy = ctx.new_policy()
    ref = copy.deepcopy(ctx.base.model)  # GRPOTrainer patches the reference's forward: keep ctx.base untouched
    plan = rl.stages_by_step()
    optimizer = rl.budget.make_optimizer(policy.model.parameters())
    scheduler = rl.budget.make_scheduler(optimizer, len(plan))
    ckpt_dir = ctx.run_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    last = checkpoint.latest(ckpt_dir)
    return GRPORun(rl, policy, ref, plan, optimizer, scheduler, shares=range(rank * shards // world, (rank + 1) * shards // world),
                   per_share=rl.prompts_per_step // shards, ckpt_dir=ckpt_dir, fingerprint=fingerprint(ctx, rl), counts=dict(COUNTS),
                   select={"window": [], "best_step": None, "best_reward": None},
                   last=last, start=int(last.stem.rsplit("_", 1)[1]) if last is not None else 0)


def make_trainer(ctx, run: GRPORun, out: str) -> SCoReGRPOTrainer:
    """The GRPOTrainer subclass over the steps left, sampling each step's episodes from this
    process's shares of its prompts, with `_StepLog` after every step."""
    from datasets import Dataset

    rl, policy = run.rl, run.policy
    sampling = Sampling(rl.temperature, rl.max_new_tokens)

    def rollouts_for_step(trainer, step0: int):
        step_seed = ctx.seed * STEP_SEED_STRIDE + step0 + 1  # step s = step0 + 1
        problems = ctx.task.problems("train", rl.prompts_per_step, seed=step_seed)
        per = run.per_share
        with timing.stage("sampling"):
            return concat([collect(policy, ctx.task, problems[r * per:(r + 1) * per], rl.samples_per_prompt, sampling,
                                   seed=step_seed + r * SHARD_SEED_STRIDE, sampler=two_turn_tokens) for r in run.shares])

    log = _StepLog(ctx, run)
    trainer = SCoReGRPOTrainer(
        rl=rl, ref_model=run.ref, rollouts_for_step=rollouts_for_step, stages=run.plan, model=policy.model,
        args=grpo_args(rl, out, steps=max(run.total - run.start, 1), processes=distributed.world_size(),
                       bf16=policy.compute_dtype == "bfloat16"),
        processing_class=policy.tokenizer, train_dataset=Dataset.from_dict({"prompt": [""] * rl.prompts_per_step}),
        optimizers=(run.optimizer, run.scheduler), callbacks=[log], first_step=run.start,
    )
    log.trainer = trainer
    trainer.remove_callback(PrinterCallback)  # the train/ rows go to the tracker (history.jsonl) instead
    return trainer


def resume(ctx, run: GRPORun) -> None:
    """From the latest checkpoint, if any: model, optimizer, schedule, counters and selection state.
    On the main process, everything measured after the (re)start step is forgotten (history rows,
    candidate checkpoints, best-training-reward weights: measured again, identically); a fresh run
    is evaluated at step 0."""
    if run.last is not None:
        state = checkpoint.load(run.last, run.policy.model, run.optimizer, run.fingerprint)
        run.scheduler.load_state_dict(state["scheduler"])
        run.counts.update(state["budget"])
        run.select.update(state["select"])
        if distributed.is_main():
            print(f"[rl] resuming {ctx.spec.arm.name} from {run.last} (step {run.start}/{run.total})", flush=True)
    if not distributed.is_main():
        return
    # a run killed before its first checkpoint starts over: forget what it logged
    checkpoint.trim_history(ctx.tracker.history, run.start if run.last is not None else -1)
    ctx.candidates.forget_after(run.start)
    for stale in run.ckpt_dir.glob("best_train_reward_*.pt"):
        if int(stale.stem.rsplit("_", 1)[1]) > run.start:
            stale.unlink()
    if run.last is None:
        evaluate(ctx, run, 0)


def train(trainer: SCoReGRPOTrainer, run: GRPORun) -> None:
    """The steps left (none when the latest checkpoint is the last step); `_StepLog` logs,
    evaluates and checkpoints after each."""
    if run.start < run.total:
        trainer.train()


def keep(run: GRPORun) -> int:
    """The paper's rule: load the weights of the best training reward (the other winners' files
    deleted), or keep the last step's; returns the kept step."""
    kept = run.total
    if run.rl.checkpoint == "best_train_reward":
        kept = run.select["best_step"]
        checkpoint.load_weights(run.best_path(kept), run.policy.model)
        for other in run.ckpt_dir.glob("best_train_reward_*.pt"):  # earlier winners are no longer needed
            if other != run.best_path(kept):
                other.unlink()
    run.policy.model.eval()
    return kept


def report(ctx, run: GRPORun, kept: int) -> ArmResult:
    """The arm's result: the kept policy and step, the budget spent, the counters and settings."""
    rl, counts = run.rl, run.counts
    extra = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in counts.items()}
    extra.update(
        engine="trl.GRPOTrainer", samples_per_prompt=rl.samples_per_prompt, prompts_per_step=rl.prompts_per_step,
        stages="+".join(f"{s}:{n}" for s, n in rl.schedule) + (f" x{rl.iterations}" if rl.iterations > 1 else ""),
        checkpoint={"selection": rl.checkpoint, "step": kept, "candidates": sorted(set(rl.selection_steps())),
                    "train_reward": run.select["best_reward"] if rl.checkpoint == "best_train_reward" else None},
    )
    ctx.tracker.log({"kept_step": kept}, step=run.total, prefix="checkpoint/")
    return ArmResult(run.policy, paper_choice={"rule": rl.checkpoint, "step": int(kept)},
                     budget_spent=rl.budget.spent(counts["episodes"], counts["gradient_steps"], rl.prompts_per_step * rl.samples_per_prompt),
                     extra_metrics=extra, candidates=ctx.candidates)


def save(run: GRPORun, step: int, stage: str) -> None:
    """A resume checkpoint after `step` (on the main process only)."""
    with timing.stage("checkpoints"):
        checkpoint.save(run.ckpt_dir, step, run.policy.model, run.optimizer, budget=dict(run.counts), fingerprint=run.fingerprint,
                        stage=stage, scheduler=run.scheduler.state_dict(), select=copy.deepcopy(run.select))


def evaluate(ctx, run: GRPORun, step: int) -> None:
    """The validation evaluator at `step` (no probe sets: an RL arm trains on no fixed first attempts)."""
    t0 = time.perf_counter()
    ctx.evaluate(run.policy, step, ())
    run.counts["eval_s"] += time.perf_counter() - t0
