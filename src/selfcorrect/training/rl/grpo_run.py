"""One RL arm run through `SCoReGRPOTrainer` (issue 13): the stage schedule, budget, seeds,
logging, checkpoints and kept policy of an RL run, with GRPOTrainer's training loop doing the
updates. Episodes come from `grpo_engine.two_turn_tokens` (turn-2 prompts token for token).

- optimizer and schedule: the budget's (`Budget.make_optimizer/make_scheduler`), handed to the
  Trainer, so the RL and offline arms share them;
- seeds: step s draws its problems and samples its episodes with `seed·STEP_SEED_STRIDE + s`;
- logging: a `train/` row per step, greedy `val/` evaluations at step 0, every `eval_every`
  steps and at the end (`ArmContext.evaluate` keeps the matched-Acc@t1 checkpoint);
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
"""

from __future__ import annotations

import copy
import tempfile
import time

from transformers import PrinterCallback, TrainerCallback

from selfcorrect.models.policy import Policy, Sampling
from selfcorrect.runtime import checkpoint, distributed, timing
from selfcorrect.training.rl.config import STEP_SEED_STRIDE, RLConfig
from selfcorrect.training.rl.grpo_engine import SCoReGRPOTrainer, grpo_args, two_turn_tokens
from selfcorrect.training.rl.rewards import get_stage
from selfcorrect.training.rl.rollouts import collect, concat

SHARD_SEED_STRIDE = 7_919_007  # share r > 0 of step s is sampled with seed(s) + r·stride
COUNTS = {"episodes": 0, "attempts_sampled": 0, "prompts": 0, "gradient_steps": 0, "rollout_s": 0.0, "update_s": 0.0, "eval_s": 0.0}


def best_path(ctx, step: int):
    return ctx.run_dir / "checkpoints" / f"best_train_reward_{step:07d}.pt"


class _StepLog(TrainerCallback):
    """After each optimizer step (on GRPOTrainer's log, which carries grad_norm): the `train/` row,
    the best-training-reward candidate, the scheduled evaluation and checkpoint."""

    def __init__(self, ctx, rl: RLConfig, policy: Policy, counts: dict, select: dict, save):
        self.ctx, self.rl, self.policy, self.counts, self.select, self.save = ctx, rl, policy, counts, select, save
        self.trainer: SCoReGRPOTrainer | None = None
        self.plan = rl.stages_by_step()
        self.candidates, self.total = set(rl.selection_steps()), len(self.plan)
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
        c = self.counts
        c.update(episodes=c["episodes"] + world * len(ro), attempts_sampled=c["attempts_sampled"] + 2 * world * len(ro),
                 prompts=c["prompts"] + world * len(ro) // ro.group_size, gradient_steps=step,
                 rollout_s=c["rollout_s"] + ro.gen_s, update_s=c["update_s"] + tr.last_update_s)
        sel = self.select
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
                    checkpoint.save_weights(best_path(self.ctx, step), self.policy.model)
        if step % self.rl.eval_every == 0 or step == self.total:
            _evaluate(self.ctx, self.policy, step, c)
        if step % self.rl.ckpt_every == 0 or step == self.total or self.plan[step] != stage:
            self.save(step, stage)


def fingerprint(ctx, rl: RLConfig) -> dict:
    """What a checkpoint must have been written under to be resumed from."""
    return {"arm": ctx.spec.arm.settings, "budget": rl.budget.spent(0, 0, 0),
            "seed": ctx.seed, "base": str(ctx.base_path)}


def train_grpo(ctx, rl: RLConfig) -> Policy:
    """Run the arm's stage schedule from the base through GRPOTrainer (resuming from
    `run_dir/checkpoints` when a checkpoint is there); returns the kept policy."""
    world, rank, main = distributed.world_size(), distributed.rank(), distributed.is_main()
    shards = max(rl.rollout_shards, world)
    if shards % world or rl.prompts_per_step % shards:
        raise ValueError(f"{rl.prompts_per_step} prompts per step do not split into {shards} equal shares over {world} processes")
    per, mine = rl.prompts_per_step // shards, range(rank * shards // world, (rank + 1) * shards // world)
    policy = ctx.new_policy()
    ref = copy.deepcopy(ctx.base.model)  # GRPOTrainer patches the reference's forward: keep ctx.base untouched
    plan = rl.stages_by_step()
    total = len(plan)
    optimizer = rl.budget.make_optimizer(policy.model.parameters())
    scheduler = rl.budget.make_scheduler(optimizer, total)
    sampling = Sampling(rl.temperature, rl.max_new_tokens)
    ckpt_dir = ctx.run_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    fp = fingerprint(ctx, rl)
    counts, select = dict(COUNTS), {"window": [], "best_step": None, "best_reward": None}

    def rollouts_for_step(trainer, step0: int):
        step_seed = ctx.seed * STEP_SEED_STRIDE + step0 + 1  # step s = step0 + 1
        problems = ctx.task.problems("train", rl.prompts_per_step, seed=step_seed)
        with timing.stage("sampling"):
            return concat([collect(policy, ctx.task, problems[r * per:(r + 1) * per], rl.samples_per_prompt, sampling,
                                   seed=step_seed + r * SHARD_SEED_STRIDE, sampler=two_turn_tokens) for r in mine])

    def save(step: int, stage: str) -> None:  # on the main process only
        with timing.stage("checkpoints"):
            checkpoint.save(ckpt_dir, step, policy.model, optimizer, budget=dict(counts), fingerprint=fp, stage=stage,
                            scheduler=scheduler.state_dict(), select=copy.deepcopy(select))

    last = checkpoint.latest(ckpt_dir)
    start = int(last.stem.rsplit("_", 1)[1]) if last is not None else 0

    from datasets import Dataset

    log = _StepLog(ctx, rl, policy, counts, select, save)
    with tempfile.TemporaryDirectory() as out:
        trainer = SCoReGRPOTrainer(
            rl=rl, ref_model=ref, rollouts_for_step=rollouts_for_step, stages=plan, model=policy.model,
            args=grpo_args(rl, out, steps=max(total - start, 1), processes=world, bf16=policy.compute_dtype == "bfloat16"), processing_class=policy.tokenizer,
            train_dataset=Dataset.from_dict({"prompt": [""] * rl.prompts_per_step}),
            optimizers=(optimizer, scheduler), callbacks=[log], first_step=start,
        )
        log.trainer = trainer
        trainer.remove_callback(PrinterCallback)  # the train/ rows go to the tracker (history.jsonl) instead
        # restored after the Trainer is built: its constructor reseeds the global RNGs
        if last is not None:
            state = checkpoint.load(last, policy.model, optimizer, fp)
            scheduler.load_state_dict(state["scheduler"])
            counts.update(state["budget"])
            select.update(state["select"])
            if main:
                print(f"[rl] resuming {ctx.spec.arm.name} from {last} (step {start}/{total})", flush=True)
        if main:
            # a run killed before its first checkpoint starts over: forget what it logged
            checkpoint.trim_history(ctx.tracker.history, start if last is not None else -1)
            # weights chosen after the step we (re)start from are chosen again, identically
            ctx.restore_snapshots(start)
            for stale in ckpt_dir.glob("best_train_reward_*.pt"):
                if int(stale.stem.rsplit("_", 1)[1]) > start:
                    stale.unlink()
            if last is None:
                _evaluate(ctx, policy, 0, counts)
        if start < total:
            trainer.train()

    kept = total
    if not main:  # the main process evaluates and keeps the policy
        return policy
    if rl.checkpoint == "best_train_reward":
        kept = select["best_step"]
        checkpoint.load_weights(best_path(ctx, kept), policy.model)
        for other in ckpt_dir.glob("best_train_reward_*.pt"):  # earlier winners are no longer needed
            if other != best_path(ctx, kept):
                other.unlink()
    policy.model.eval()
    ctx.record_budget(rl.budget.spent(counts["episodes"], counts["gradient_steps"], rl.prompts_per_step * rl.samples_per_prompt))
    ctx.extra_metrics.update({k: (round(v, 2) if isinstance(v, float) else v) for k, v in counts.items()})
    ctx.extra_metrics.update(
        engine="trl.GRPOTrainer", samples_per_prompt=rl.samples_per_prompt, prompts_per_step=rl.prompts_per_step,
        stages="+".join(f"{s}:{n}" for s, n in rl.schedule) + (f" x{rl.iterations}" if rl.iterations > 1 else ""),
        checkpoint={"selection": rl.checkpoint, "step": kept, "candidates": sorted(log.candidates),
                    "train_reward": select["best_reward"] if rl.checkpoint == "best_train_reward" else None},
    )
    ctx.tracker.log({"kept_step": kept}, step=total, prefix="checkpoint/")
    ctx.paper_choice = {"rule": rl.checkpoint, "step": int(kept)}
    return policy


def _evaluate(ctx, policy: Policy, step: int, counts: dict) -> None:
    t0 = time.perf_counter()
    ctx.evaluate(policy, step)
    counts["eval_s"] += time.perf_counter() - t0
