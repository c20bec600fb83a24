"""The SCoRe training loop over the shared `Policy`: rollouts → per-turn returns → one Adam step.

Our own loop rather than a TRL GRPOTrainer subclass: GRPOTrainer has one reward and one β per
sequence, so per-turn returns and per-turn KL weights would mean rewriting its loss anyway (it is
not faster either: ~1.1x our step time on the tiny model, bench_score_vs_grpo.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from omegaconf import DictConfig, OmegaConf

from selfcorrect.policy import Policy, Sampling
from selfcorrect.rl import checkpoint
from selfcorrect.rl.losses import LossConfig, TurnBatch, score_loss
from selfcorrect.rl.rewards import STAGE_CODE, STAGES, stage_objective, turn_rewards
from selfcorrect.rl.rollouts import Rollouts, collect

STEP_SEED_STRIDE = 10_000_019  # problem draws and sampling of step s use seed·stride + s


@dataclass(frozen=True)
class RLConfig:
    schedule: tuple[tuple[str, int], ...]  # (stage, steps) in order, repeated `iterations` times
    iterations: int
    prompts_per_step: int
    samples_per_prompt: int
    temperature: float
    max_new_tokens: int
    lr: float
    adam_betas: tuple[float, float]
    grad_clip: float
    alpha: float
    beta1: float
    beta2: float
    gamma: float
    loss: LossConfig
    eval_every: int
    ckpt_every: int

    @classmethod
    def from_arm(cls, arm: DictConfig) -> "RLConfig":
        a = OmegaConf.to_container(arm, resolve=True)

        def num(key: str, lo: float = 0.0, integer: bool = False, strict: bool = False):
            if key not in a:
                raise ValueError(f"arm {a.get('name')!r} is missing RL setting {key!r}")
            v = a[key]
            ok = isinstance(v, int) if integer else isinstance(v, (int, float))
            if not ok or isinstance(v, bool) or v < lo or (strict and v == lo):
                kind = "an integer" if integer else "a number"
                raise ValueError(f"arm.{key} must be {kind} {'>' if strict else '>='} {lo}, got {v!r}")
            return v

        schedule = []
        for i, s in enumerate(a.get("schedule") or []):
            if not isinstance(s, dict) or set(s) != {"stage", "steps"}:
                raise ValueError(f"arm.schedule[{i}] must be {{stage, steps}}, got {s!r}")
            if s["stage"] not in STAGES:
                raise ValueError(f"arm.schedule[{i}].stage must be one of {STAGES}, got {s['stage']!r}")
            if not isinstance(s["steps"], int) or s["steps"] <= 0:
                raise ValueError(f"arm.schedule[{i}].steps must be a positive integer, got {s['steps']!r}")
            schedule.append((s["stage"], s["steps"]))
        if not schedule:
            raise ValueError(f"arm {a.get('name')!r} has an empty RL schedule")
        betas = a.get("adam_betas", [0.9, 0.999])
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"arm.adam_betas must be two numbers in [0, 1), got {betas!r}")
        return cls(
            schedule=tuple(schedule),
            iterations=num("iterations", 0, integer=True, strict=True),
            prompts_per_step=num("prompts_per_step", 0, integer=True, strict=True),
            samples_per_prompt=num("samples_per_prompt", 0, integer=True, strict=True),
            temperature=num("temperature", 0, strict=True),
            max_new_tokens=num("max_new_tokens", 0, integer=True, strict=True),
            lr=num("lr", 0, strict=True),
            adam_betas=(float(betas[0]), float(betas[1])),
            grad_clip=num("grad_clip", 0, strict=True),
            alpha=num("alpha"),
            beta1=num("beta1"),
            beta2=num("beta2"),
            gamma=num("gamma"),
            loss=LossConfig(**a.get("loss", {})),
            eval_every=num("eval_every", 0, integer=True, strict=True),
            ckpt_every=num("ckpt_every", 0, integer=True, strict=True),
        )

    def stages_by_step(self) -> list[str]:
        """The stage of every gradient step 1..total (index 0 is step 1)."""
        return [stage for _ in range(self.iterations) for stage, steps in self.schedule for _ in range(steps)]


def policy_update(
    policy: Policy, ref: Policy, rollouts: Rollouts, stage: str, rl: RLConfig, optimizer: torch.optim.Optimizer
) -> dict[str, float]:
    """One REINFORCE + KL step of `stage` on the rollouts; returns loss statistics."""
    objective = stage_objective(stage, rl.beta1, rl.beta2)
    returns = turn_rewards(stage, rollouts.r1, rollouts.r2, rl.alpha, rl.gamma)
    turns, tokens = [], 0
    for t in range(2):
        prompts, completions = rollouts.turn(t)
        with torch.set_grad_enabled(objective.trains[t]):
            logp, mask = policy.token_logprobs(prompts, completions)
        with torch.no_grad():
            ref_logp, _ = ref.token_logprobs(prompts, completions)
        tokens += sum(len(p) + len(c) for p, c in zip(prompts, completions))
        turns.append(TurnBatch(logp, ref_logp, mask, returns[t].to(logp.device), objective.kl_coef[t], objective.trains[t]))
    loss, stats = score_loss(turns, rollouts.group_size, rl.loss)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    stats["grad_norm"] = torch.nn.utils.clip_grad_norm_(policy.model.parameters(), rl.grad_clip).item()
    optimizer.step()
    stats["return_t1"] = returns[0].mean().item()
    stats["return_t2"] = returns[1].mean().item()
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
    optimizer = torch.optim.Adam(policy.model.parameters(), lr=rl.lr, betas=rl.adam_betas)
    sampling = Sampling(rl.temperature, rl.max_new_tokens)
    plan = rl.stages_by_step()
    total = len(plan)
    ckpt_dir = ctx.run_dir / "checkpoints"
    fingerprint = {"arm": OmegaConf.to_container(ctx.cfg.arm, resolve=True), "seed": ctx.seed, "base": str(ctx.base_path)}
    budget = {"episodes": 0, "attempts_sampled": 0, "prompts": 0, "gradient_steps": 0, "rollout_s": 0.0, "update_s": 0.0, "eval_s": 0.0}

    start = 0
    last = checkpoint.latest(ckpt_dir)
    if last is not None:
        state = checkpoint.load(last, policy.model, optimizer, fingerprint)
        start, budget = state["step"], state["budget"]
        checkpoint.trim_history(ctx.tracker.history, start)
        print(f"[rl] resuming {ctx.cfg.arm.name} from {last} (step {start}/{total})", flush=True)
    else:  # a run killed before its first checkpoint starts over: forget what it logged
        checkpoint.trim_history(ctx.tracker.history, -1)
        _evaluate(ctx, policy, 0, budget)

    for step in range(start + 1, total + 1):
        stage = plan[step - 1]
        step_seed = ctx.seed * STEP_SEED_STRIDE + step
        problems = ctx.task.problems("train", rl.prompts_per_step, seed=step_seed)
        rollouts = collect(policy, ctx.task, problems, rl.samples_per_prompt, sampling, seed=step_seed)
        t0 = time.perf_counter()
        stats = policy_update(policy, ref, rollouts, stage, rl, optimizer)
        update_s = time.perf_counter() - t0

        budget["episodes"] += len(rollouts)
        budget["attempts_sampled"] += 2 * len(rollouts)
        budget["prompts"] += len(problems)
        budget["gradient_steps"] += 1
        budget["rollout_s"] += rollouts.gen_s
        budget["update_s"] += update_s
        row = {**rollouts.metrics(), **stats, "stage": STAGE_CODE[stage], "tokens_per_s_update": stats.pop("update_tokens") / update_s}
        ctx.tracker.log(row, step=step, prefix="train/")

        if step % rl.eval_every == 0 or step == total:
            _evaluate(ctx, policy, step, budget)
        stage_ends = step == total or plan[step] != stage
        if step % rl.ckpt_every == 0 or stage_ends:
            checkpoint.save(ckpt_dir, step, policy.model, optimizer, budget=dict(budget), fingerprint=fingerprint, stage=stage)

    ctx.extra_metrics.update({k: (round(v, 2) if isinstance(v, float) else v) for k, v in budget.items()})
    ctx.extra_metrics.update(
        samples_per_prompt=rl.samples_per_prompt,
        stages="+".join(f"{s}:{n}" for s, n in rl.schedule) + (f" x{rl.iterations}" if rl.iterations > 1 else ""),
    )
    return policy


def _evaluate(ctx, policy: Policy, step: int, budget: dict) -> None:
    t0 = time.perf_counter()
    ctx.evaluate(policy, step)
    budget["eval_s"] += time.perf_counter() - t0
