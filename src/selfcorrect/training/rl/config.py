"""The settings of one online-RL arm (`RLConfig`): its stage schedule, RLOO group, sampling, SCoRe
weights, kept checkpoint and cadence, read from `conf/arm/<name>.yaml` with the shared budget
(`selfcorrect.training.budget`), and the per-step seeds every RL run uses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from selfcorrect.runtime.records import plain
from selfcorrect.training.budget import Budget, split_steps
from selfcorrect.training.rl.losses import LossConfig
from selfcorrect.training.rl.rewards import STAGE_NAMES

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
    # the step's prompts are sampled in this many equal shares, share r with seed(s) + r·stride
    # (at least one per process; set it to N in one process to draw the episodes of an N-process run)
    rollout_shards: int = 1
    # TRL's own vLLM rollouts: refused by grpo_engine.grpo_args (the episodes come from the policy's engine:
    # model.engine=vllm generates them through selfcorrect.models.vllm_engine)
    use_vllm: bool = False
    # reuse the sampler's log-probs of the sampled tokens (vLLM gives them) for the KL term instead of a
    # no-grad forward pass of the policy (grpo_engine; ignored when the engine gives none)
    sampler_logprobs: bool = True
    # rows per forward/backward pass within a step (None: the whole step at once); the gradients of a step's
    # micro-batches accumulate into the one update (grpo_engine.grpo_args): less memory, the same update
    micro_batch: int | None = None

    @classmethod
    def from_cfg(cls, arm: Mapping, budget: Mapping | Budget) -> "RLConfig":
        """The arm's settings with the shared budget: the schedule's `share`s split
        budget.gradient_steps (over all iterations), and prompts per step =
        budget.sequences_per_step / samples_per_prompt."""
        a = plain(arm)
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
            rollout_shards=num("rollout_shards", 0, integer=True, strict=True) if "rollout_shards" in a else 1,
            use_vllm=_flag(a, "use_vllm"),
            sampler_logprobs=_flag(a, "sampler_logprobs", default=True),
            micro_batch=num("micro_batch", 0, integer=True, strict=True) if a.get("micro_batch") is not None else None,
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


def _flag(arm: dict, key: str, default: bool = False) -> bool:
    v = arm.get(key, default)
    if not isinstance(v, bool):
        raise ValueError(f"arm.{key} must be true or false, got {v!r}")
    return v
