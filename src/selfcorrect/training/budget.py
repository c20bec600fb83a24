"""The one training budget that every trained arm spends (`conf/budget/`), and its optimizer.

The paper gives its baselines "a fixed budget of model samples and gradient updates" with the same
learning rate and batch size. Both families read this block: the offline arms sample (or have a
teacher write) `episodes` two-turn episodes and take `gradient_steps` SFT steps of
`sequences_per_step` traces; the RL arms take `gradient_steps` steps of `sequences_per_step` fresh
on-policy episodes (so they too sample `episodes`). Both build the same optimizer and learning-rate
schedule from it: torch's AdamW (TRL's `adamw_torch`) and transformers' `get_scheduler`, the
functions TRL's Trainer itself calls. Every run writes what it spent (`spent`) to metrics.json
under `budget`, so a sweep can be checked for equality (`results.budget_mismatches`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from transformers import get_scheduler

from selfcorrect.evaluation.spec import positive_int
from selfcorrect.runtime.records import plain

OPTIMIZERS = ("adamw",)
SCHEDULES = ("constant", "constant_with_warmup", "linear", "cosine")


@dataclass(frozen=True)
class Budget:
    episodes: int
    gradient_steps: int
    sequences_per_step: int
    optimizer: str
    lr: float
    lr_schedule: str
    warmup_steps: int
    weight_decay: float
    adam_betas: tuple[float, float]
    max_grad_norm: float

    def __post_init__(self) -> None:
        for key in ("episodes", "gradient_steps", "sequences_per_step"):
            positive_int(f"budget.{key}", getattr(self, key))
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"budget.optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"budget.lr_schedule must be one of {SCHEDULES}, got {self.lr_schedule!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"budget.lr must be a number > 0, got {self.lr!r}")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"budget.warmup_steps must be a non-negative integer, got {self.warmup_steps!r}")
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            raise ValueError(f"budget.adam_betas must be two numbers in [0, 1), got {list(self.adam_betas)!r}")
        if not self.max_grad_norm > 0 or self.weight_decay < 0:
            raise ValueError(f"budget.max_grad_norm must be > 0 and weight_decay >= 0, got {self.max_grad_norm!r}, {self.weight_decay!r}")

    @classmethod
    def from_cfg(cls, cfg: Mapping) -> "Budget":
        """The `budget` block (any mapping), every key checked: unknown and missing keys are refused."""
        b = plain(cfg)
        known = set(cls.__dataclass_fields__)
        if set(b) - known:
            raise ValueError(f"unknown budget keys {sorted(set(b) - known)}; known: {sorted(known)}")
        if known - set(b):
            raise ValueError(f"the budget block is missing {sorted(known - set(b))}")
        b["adam_betas"] = tuple(float(x) for x in b["adam_betas"])
        return cls(**b)

    # --- one optimizer and schedule for both families ----------------------------------------
    def make_optimizer(self, params) -> torch.optim.Optimizer:
        """AdamW as TRL's `adamw_torch` builds it (eps 1e-8)."""
        return torch.optim.AdamW(params, lr=self.lr, betas=self.adam_betas, eps=1e-8, weight_decay=self.weight_decay)

    def make_scheduler(self, optimizer: torch.optim.Optimizer, total_steps: int | None = None):
        return get_scheduler(self.lr_schedule, optimizer, num_warmup_steps=self.warmup_steps,
                             num_training_steps=total_steps or self.gradient_steps)

    def trainer_args(self, steps: int | None = None) -> dict:
        """The same settings in the names of transformers' TrainingArguments (TRL's SFTConfig)."""
        return dict(
            max_steps=int(steps or self.gradient_steps), per_device_train_batch_size=self.sequences_per_step,
            optim="adamw_torch", learning_rate=float(self.lr), lr_scheduler_type=self.lr_schedule,
            warmup_steps=self.warmup_steps, weight_decay=float(self.weight_decay),
            adam_beta1=self.adam_betas[0], adam_beta2=self.adam_betas[1], adam_epsilon=1e-8,
            max_grad_norm=float(self.max_grad_norm),
        )

    def spent(self, episodes: int, gradient_steps: int, sequences_per_step: int, measurement_samples: int = 0) -> dict:
        """What a run actually spent, in the form every run writes to metrics.json;
        `measurement_samples` counts model samples drawn outside the episode budget."""
        return {
            "episodes": int(episodes), "gradient_steps": int(gradient_steps), "sequences_per_step": int(sequences_per_step),
            "measurement_samples": int(measurement_samples),
            "optimizer": self.optimizer, "lr": float(self.lr), "lr_schedule": self.lr_schedule,
            "warmup_steps": self.warmup_steps, "weight_decay": float(self.weight_decay), "max_grad_norm": float(self.max_grad_norm),
        }


def split_steps(shares: list[float], total: int) -> list[int]:
    """`total` steps split by `shares` (which add up to 1) with the largest-remainder rule, so
    the parts always add up to `total` exactly (ties go to the earlier stage)."""
    if not shares or any(s <= 0 for s in shares) or abs(sum(shares) - 1.0) > 1e-6:
        raise ValueError(f"schedule shares must be positive and add up to 1, got {list(shares)!r}")
    raw = [s * total for s in shares]
    steps = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: (round(steps[i] - raw[i], 9), i))[: total - sum(steps)]:
        steps[i] += 1
    if any(s == 0 for s in steps):
        raise ValueError(f"budget.gradient_steps={total} is too small for the schedule shares {list(shares)!r}: a stage gets 0 steps")
    return steps
