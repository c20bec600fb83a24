"""A reference for the GRPOTrainer engine: the SCoRe update written out without TRL, one turn
at a time, from our own modules (`Policy.token_logprobs`, `rewards.turn_rewards`,
`losses.per_turn_advantages`). tests/test_grpo_engine.py pins the engine's gradient and whole
runs to it; experiments/bench_score_vs_grpo.py times it against a GRPOTrainer step.

  loss = −1/N Σ_i Σ_t A_{i,t} · Σ_{tokens of y_t} log π(token)     (N: trained attempt tokens)

The 1/N token normalisation is the SFT loss's and GRPOTrainer's "dapo" loss's; under Adam a
constant factor does not change the update, and arithmetic attempts have a fixed length, so this
is the per-episode REINFORCE estimate up to that factor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from selfcorrect.models.policy import Policy, Sampling
from selfcorrect.training.rl.config import STEP_SEED_STRIDE, RLConfig
from selfcorrect.training.rl.losses import LossConfig, TurnTokens, per_turn_advantages
from selfcorrect.training.rl.rewards import kl_weights, trained_turns, training_reward, turn_rewards
from selfcorrect.training.rl.rollouts import Rollouts, collect


@dataclass
class TurnBatch(TurnTokens):
    """One turn of n episodes with its return [n], its KL weight β_t and whether it is trained."""

    returns: torch.Tensor = None
    kl_coef: float = 0.0
    trained: bool = True


def score_loss(turns: Sequence[TurnBatch], group_size: int, cfg: LossConfig) -> tuple[torch.Tensor, dict]:
    """The loss to minimise and per-turn statistics (`kl_t{t}`, `adv_abs_t{t}`, `pg_loss_t{t}`)."""
    advs, stats = per_turn_advantages(turns, [t.returns for t in turns], [t.kl_coef for t in turns],
                                      [t.trained for t in turns], group_size, cfg)
    n_tokens = max(float(sum(turn.mask.sum() for turn in turns if turn.trained)), 1.0)
    loss = turns[0].logp.new_zeros(())
    for t, (turn, adv) in enumerate(zip(turns, advs), start=1):
        if adv is None:
            continue
        pg = -(adv * (turn.logp * turn.mask).sum(-1)).sum() / n_tokens
        loss = loss + pg
        stats[f"pg_loss_t{t}"] = pg.item()
    stats["loss"] = loss.item()
    return loss, stats


def reference_update(policy: Policy, ref: Policy, rollouts: Rollouts, stage: str, rl: RLConfig,
                     optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """One REINFORCE step of `stage` (leave-one-out baseline, KL in the reward per turn);
    gradients clipped to the budget's max norm, then one optimizer step."""
    trains, kl_coef = trained_turns(stage), kl_weights(stage, rl.beta1, rl.beta2)
    returns = turn_rewards(stage, rollouts.r1, rollouts.r2, rl.alpha, rl.gamma, rl.turn2_scale)
    turns = []
    for t in range(2):
        prompts, completions = rollouts.turn(t)
        with torch.set_grad_enabled(trains[t]):
            logp, mask = policy.token_logprobs(prompts, completions, rl.temperature)
        with torch.no_grad():
            ref_logp, _ = ref.token_logprobs(prompts, completions, rl.temperature)
        turns.append(TurnBatch(logp, ref_logp, mask, returns[t], kl_coef[t], trains[t]))
    loss, stats = score_loss(turns, rollouts.group_size, rl.loss)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    stats["grad_norm"] = torch.nn.utils.clip_grad_norm_(policy.model.parameters(), rl.budget.max_grad_norm).item()
    optimizer.step()
    stats.update(return_t1=returns[0].mean().item(), return_t2=returns[1].mean().item(),
                 train_reward=training_reward(stage, rollouts.r1, rollouts.r2))
    return stats


def reference_run(ctx, rl: RLConfig, sampler) -> tuple[Policy, list[dict]]:
    """The arm's schedule with `reference_update`, the budget's optimizer and schedule and the
    RL runs' per-step seeds; returns the final policy and one row of statistics per step."""
    policy, ref = ctx.new_policy(), ctx.base
    policy.model.eval(), ref.model.eval()
    plan = rl.stages_by_step()
    optimizer = rl.budget.make_optimizer(policy.model.parameters())
    scheduler = rl.budget.make_scheduler(optimizer, len(plan))
    sampling, rows = Sampling(rl.temperature, rl.max_new_tokens), []
    for step, stage in enumerate(plan, 1):
        seed = ctx.seed * STEP_SEED_STRIDE + step
        problems = ctx.task.problems("train", rl.prompts_per_step, seed=seed)
        ro = collect(policy, ctx.task, problems, rl.samples_per_prompt, sampling, seed=seed, sampler=sampler)
        rows.append({"step": step, **ro.metrics(), **reference_update(policy, ref, ro, stage, rl, optimizer)})
        scheduler.step()
    return policy, rows
