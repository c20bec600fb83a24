"""The SCoRe training loop over the shared `Policy`: rollouts → per-turn returns → one optimizer step.

Every RL arm (SCoRe, its ablations, the RL baselines) is this loop with another stage schedule;
the optimizer, learning-rate schedule, episodes per step and number of steps come from the shared
budget (`selfcorrect.budget`), as for the offline arms. Log-probs are scored at the sampling
temperature, so the gradient is on-policy at any `arm.temperature`. The kept policy is the
paper's choice by default: the checkpoint with the highest *training* reward (`arm.checkpoint`).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from omegaconf import DictConfig, OmegaConf

from selfcorrect.budget import Budget, split_steps
from selfcorrect.policy import Policy, Sampling
from selfcorrect.rl import checkpoint
from selfcorrect.rl.losses import LossConfig, TurnBatch, score_loss
from selfcorrect.rl.rewards import STAGE_NAMES, get_stage, kl_weights, trained_turns, training_reward, turn_rewards
from selfcorrect.rl.rollouts import Rollouts, collect

CHECKPOINT_CHOICES = ("best_train_reward", "last")
STEP_SEED_STRIDE = 10_000_019  # problem draws and sampling of step s use seed·stride + s


@dataclass(frozen=True)
class RLConfig:
    schedule: tuple[tuple[str, int], ...]  # (stage, steps) in order, repeated `iterations` times
    iterations: int
    prompts_per_step: int
    samples_per_prompt: int
    temperature: float
    max_new_tokens: int
    alpha: float
    turn2_scale: float
    beta1: float
    beta2: float
    gamma: float
    loss: LossConfig
    checkpoint: str
    select_every: int
    eval_every: int
    ckpt_every: int
    budget: Budget

    @classmethod
    def from_cfg(cls, arm: DictConfig, budget: DictConfig | Budget) -> "RLConfig":
        """The arm's settings with the shared budget: the schedule's `share`s split
        budget.gradient_steps (over all iterations), and prompts per step =
        budget.sequences_per_step / samples_per_prompt."""
        a = OmegaConf.to_container(arm, resolve=True)
        budget = budget if isinstance(budget, Budget) else Budget.from_cfg(budget)

        def num(key: str, lo: float = 0.0, integer: bool = False, strict: bool = False):
            if key not in a:
                raise ValueError(f"arm {a.get('name')!r} is missing RL setting {key!r}")
            v = a[key]
            ok = isinstance(v, int) if integer else isinstance(v, (int, float))
            if not ok or isinstance(v, bool) or v < lo or (strict and v == lo):
                kind = "an integer" if integer else "a number"
                raise ValueError(f"arm.{key} must be {kind} {'>' if strict else '>='} {lo}, got {v!r}")
            return v

        stages, shares = [], []
        for i, s in enumerate(a.get("schedule") or []):
            if not isinstance(s, dict) or set(s) != {"stage", "share"}:
                raise ValueError(f"arm.schedule[{i}] must be {{stage, share}} (a share of budget.gradient_steps), got {s!r}")
            if s["stage"] not in STAGE_NAMES:
                raise ValueError(f"arm.schedule[{i}].stage must be one of {STAGE_NAMES}, got {s['stage']!r}")
            if not isinstance(s["share"], (int, float)) or isinstance(s["share"], bool) or s["share"] <= 0:
                raise ValueError(f"arm.schedule[{i}].share must be a number > 0, got {s['share']!r}")
            stages.append(s["stage"])
            shares.append(float(s["share"]))
        if not stages:
            raise ValueError(f"arm {a.get('name')!r} has an empty RL schedule")
        iterations = num("iterations", 0, integer=True, strict=True)
        if budget.gradient_steps % iterations:
            raise ValueError(f"budget.gradient_steps={budget.gradient_steps} is not divisible by arm.iterations={iterations}")
        steps = split_steps(shares, budget.gradient_steps // iterations)
        k = num("samples_per_prompt", 1, integer=True, strict=True)
        if budget.sequences_per_step % k:
            raise ValueError(
                f"budget.sequences_per_step={budget.sequences_per_step} episodes per step is not divisible by "
                f"arm.samples_per_prompt={k}: prompts per step must be a whole number"
            )
        if budget.episodes != budget.gradient_steps * budget.sequences_per_step:
            raise ValueError(
                f"on-policy RL samples every episode for one step: budget.episodes={budget.episodes} must equal "
                f"budget.gradient_steps × budget.sequences_per_step = {budget.gradient_steps} × {budget.sequences_per_step}"
            )
        choice = a.get("checkpoint", "best_train_reward")
        if choice not in CHECKPOINT_CHOICES:
            raise ValueError(f"arm.checkpoint must be one of {CHECKPOINT_CHOICES}, got {choice!r}")
        return cls(
            schedule=tuple(zip(stages, steps)),
            iterations=iterations,
            prompts_per_step=budget.sequences_per_step // k,
            samples_per_prompt=k,
            temperature=num("temperature", 0, strict=True),
            max_new_tokens=num("max_new_tokens", 0, integer=True, strict=True),
            alpha=num("alpha"),
            turn2_scale=num("turn2_scale", 0, strict=True),
            beta1=num("beta1"),
            beta2=num("beta2"),
            gamma=num("gamma"),
            loss=LossConfig(**a.get("loss", {})),
            checkpoint=choice,
            select_every=num("select_every", 0, integer=True, strict=True),
            eval_every=num("eval_every", 0, integer=True, strict=True),
            ckpt_every=num("ckpt_every", 0, integer=True, strict=True),
            budget=budget,
        )

    def stages_by_step(self) -> list[str]:
        """The stage of every gradient step 1..total (index 0 is step 1)."""
        return [stage for _ in range(self.iterations) for stage, steps in self.schedule for _ in range(steps)]

    def selection_steps(self) -> list[int]:
        """Candidate steps for `best_train_reward`, the same absolute steps for every RL arm: every
        `select_every` steps counted back from the last, within the last half of the run (and
        within the schedule's final stage, so SCoRe keeps a Stage II policy)."""
        plan = self.stages_by_step()
        total, final = len(plan), plan[-1]
        first = total
        while first > 1 and plan[first - 2] == final:
            first -= 1
        first = max(first, total // 2 + 1)
        return [s for s in range(first, total + 1) if (total - s) % self.select_every == 0]


def policy_update(
    policy: Policy, ref: Policy, rollouts: Rollouts, stage: str, rl: RLConfig,
    optimizer: torch.optim.Optimizer, scheduler=None,
) -> dict[str, float]:
    """One REINFORCE + KL step of `stage` on the rollouts; returns loss statistics."""
    trains, kl_coef = trained_turns(stage), kl_weights(stage, rl.beta1, rl.beta2)
    returns = turn_rewards(stage, rollouts.r1, rollouts.r2, rl.alpha, rl.gamma, rl.turn2_scale)
    turns, tokens = [], 0
    for t in range(2):
        prompts, completions = rollouts.turn(t)
        with torch.set_grad_enabled(trains[t]):
            logp, mask = policy.token_logprobs(prompts, completions, rl.temperature)
        with torch.no_grad():
            ref_logp, _ = ref.token_logprobs(prompts, completions, rl.temperature)
        tokens += sum(len(p) + len(c) for p, c in zip(prompts, completions))
        turns.append(TurnBatch(logp, ref_logp, mask, returns[t].to(logp.device), kl_coef[t], trains[t]))
    loss, stats = score_loss(turns, rollouts.group_size, rl.loss)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    stats["grad_norm"] = torch.nn.utils.clip_grad_norm_(policy.model.parameters(), rl.budget.max_grad_norm).item()
    optimizer.step()
    if scheduler is not None:
        stats["lr"] = scheduler.get_last_lr()[0]
        scheduler.step()
    stats["return_t1"] = returns[0].mean().item()
    stats["return_t2"] = returns[1].mean().item()
    stats["train_reward"] = training_reward(stage, rollouts.r1, rollouts.r2)
    stats["update_tokens"] = tokens
    return stats


def train(ctx, rl: RLConfig) -> Policy:
    """Run the configured stage schedule from the base; resumes from `run_dir/checkpoints`."""
    policy = ctx.new_policy()
    # eval mode throughout: gradients still flow, but dropout would make the scored log-probs
    # differ from those the rollouts were sampled with (and from the reference's)
    policy.model.eval()
    ref = ctx.base
    ref.model.eval()
    optimizer = rl.budget.make_optimizer(policy.model.parameters())
    plan = rl.stages_by_step()
    total = len(plan)
    scheduler = rl.budget.make_scheduler(optimizer, total)
    sampling = Sampling(rl.temperature, rl.max_new_tokens)
    ckpt_dir = ctx.run_dir / "checkpoints"
    fingerprint = {"arm": OmegaConf.to_container(ctx.cfg.arm, resolve=True), "budget": rl.budget.spent(0, 0, 0),
                   "seed": ctx.seed, "base": str(ctx.base_path)}
    counts = {"episodes": 0, "attempts_sampled": 0, "prompts": 0, "gradient_steps": 0, "rollout_s": 0.0, "update_s": 0.0, "eval_s": 0.0}
    candidates = set(rl.selection_steps())
    select = {"window": [], "best_step": None, "best_reward": None}

    def best_path(step: int):
        return ckpt_dir / f"best_train_reward_{step:07d}.pt"

    start = 0
    last = checkpoint.latest(ckpt_dir)
    if last is not None:
        state = checkpoint.load(last, policy.model, optimizer, fingerprint)
        scheduler.load_state_dict(state["scheduler"])
        start, counts, select = state["step"], state["budget"], state["select"]
        checkpoint.trim_history(ctx.tracker.history, start)
        print(f"[rl] resuming {ctx.cfg.arm.name} from {last} (step {start}/{total})", flush=True)
    else:  # a run killed before its first checkpoint starts over: forget what it logged
        checkpoint.trim_history(ctx.tracker.history, -1)
    # weights chosen after the step we (re)start from are chosen again, identically
    ctx.restore_snapshots(start)
    for stale in ckpt_dir.glob("best_train_reward_*.pt"):
        if int(stale.stem.rsplit("_", 1)[1]) > start:
            stale.unlink()
    if last is None:
        _evaluate(ctx, policy, 0, counts)

    for step in range(start + 1, total + 1):
        stage = plan[step - 1]
        step_seed = ctx.seed * STEP_SEED_STRIDE + step
        problems = ctx.task.problems("train", rl.prompts_per_step, seed=step_seed)
        rollouts = collect(policy, ctx.task, problems, rl.samples_per_prompt, sampling, seed=step_seed)
        t0 = time.perf_counter()
        stats = policy_update(policy, ref, rollouts, stage, rl, optimizer, scheduler)
        update_s = time.perf_counter() - t0

        counts["episodes"] += len(rollouts)
        counts["attempts_sampled"] += 2 * len(rollouts)
        counts["prompts"] += len(problems)
        counts["gradient_steps"] += 1
        counts["rollout_s"] += rollouts.gen_s
        counts["update_s"] += update_s
        row = {**rollouts.metrics(), **stats, "stage": get_stage(stage).code, "tokens_per_s_update": stats.pop("update_tokens") / update_s}
        ctx.tracker.log(row, step=step, prefix="train/")

        select["window"] = (select["window"] + [stats["train_reward"]])[-rl.select_every:]
        if step in candidates:  # the paper keeps the checkpoint with the highest training reward
            # (the window's rewards come from the rollouts of the policies before steps s-11..s;
            # the weights kept are those after step s's update)
            score = sum(select["window"]) / len(select["window"])
            if select["best_reward"] is None or score >= select["best_reward"]:
                select.update(best_step=step, best_reward=score)
                checkpoint.save_weights(best_path(step), policy.model)
        if step % rl.eval_every == 0 or step == total:
            _evaluate(ctx, policy, step, counts)
        stage_ends = step == total or plan[step] != stage
        if step % rl.ckpt_every == 0 or stage_ends:
            checkpoint.save(ckpt_dir, step, policy.model, optimizer, budget=dict(counts), fingerprint=fingerprint,
                            stage=stage, scheduler=scheduler.state_dict(), select=copy.deepcopy(select))

    kept = total
    if rl.checkpoint == "best_train_reward":
        kept = select["best_step"]
        checkpoint.load_weights(best_path(kept), policy.model)
        for other in ckpt_dir.glob("best_train_reward_*.pt"):  # earlier winners are no longer needed
            if other != best_path(kept):
                other.unlink()
    ctx.record_budget(rl.budget.spent(counts["episodes"], counts["gradient_steps"], rl.prompts_per_step * rl.samples_per_prompt))
    ctx.extra_metrics.update({k: (round(v, 2) if isinstance(v, float) else v) for k, v in counts.items()})
    ctx.extra_metrics.update(
        samples_per_prompt=rl.samples_per_prompt,
        prompts_per_step=rl.prompts_per_step,
        stages="+".join(f"{s}:{n}" for s, n in rl.schedule) + (f" x{rl.iterations}" if rl.iterations > 1 else ""),
        checkpoint={"selection": rl.checkpoint, "step": kept, "candidates": sorted(candidates),
                    "train_reward": select["best_reward"] if rl.checkpoint == "best_train_reward" else None},
    )
    ctx.tracker.log({"kept_step": kept}, step=total, prefix="checkpoint/")
    return policy


def _evaluate(ctx, policy: Policy, step: int, counts: dict) -> None:
    t0 = time.perf_counter()
    ctx.evaluate(policy, step)
    counts["eval_s"] += time.perf_counter() - t0
