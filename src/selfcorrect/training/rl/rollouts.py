"""On-policy two-turn rollouts: k episodes per prompt, scored by the task's verifier."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from selfcorrect.evaluation.scoring import score_all
from selfcorrect.models.policy import Episode, Policy, Sampling
from selfcorrect.tasks.base import Problem, Task


@dataclass
class Rollouts:
    """n = prompts × k episodes; the k samples of one prompt are contiguous (RLOO groups)."""

    episodes: list[Episode]
    group_size: int
    r1: torch.Tensor  # binary verifier rewards (correctness only; format is kept apart)
    r2: torch.Tensor
    well_formed1: torch.Tensor
    well_formed2: torch.Tensor
    answer_changed: torch.Tensor
    no_edit: torch.Tensor
    gen_tokens: int
    gen_s: float
    truncated1: torch.Tensor | None = None  # the attempt hit max_new_tokens
    truncated2: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.episodes)

    def turn(self, t: int) -> tuple[list[list[int]], list[list[int]]]:
        """Prompt ids and completion ids of turn t (0-based) for every episode."""
        return [ep.turns[t].prompt_ids for ep in self.episodes], [ep.turns[t].completion_ids for ep in self.episodes]

    def metrics(self) -> dict[str, float]:
        r1, r2 = self.r1.bool(), self.r2.bool()
        return {
            "reward_t1": self.r1.mean().item(),
            "reward_t2": self.r2.mean().item(),
            "well_formed_t1": self.well_formed1.mean().item(),
            "well_formed_t2": self.well_formed2.mean().item(),
            "i2c_rate": (~r1 & r2).float().mean().item(),
            "c2i_rate": (r1 & ~r2).float().mean().item(),
            "answer_change_rate": self.answer_changed.mean().item(),
            "no_edit_rate": self.no_edit.mean().item(),
            "tokens_per_s_rollout": self.gen_tokens / max(self.gen_s, 1e-9),
            **({"truncated_t1": self.truncated1.mean().item(), "truncated_t2": self.truncated2.mean().item()}
               if self.truncated1 is not None else {}),
        }


def collect(policy: Policy, task: Task, problems: Sequence[Problem], group_size: int, sampling: Sampling, seed: int,
            sampler: Callable[..., list[Episode]] | None = None) -> Rollouts:
    """y1 ~ π(·|x), y2 ~ π(·|x, y1, instruction) for `group_size` samples of every problem;
    `sampler(policy, problems, sampling, seed)` replaces `Policy.two_turn` (e.g. the token-level
    turn-2 prompts of `grpo_engine.two_turn_tokens`)."""
    repeated = [p for p in problems for _ in range(group_size)]
    t0 = time.perf_counter()
    if sampler is None:
        episodes = policy.two_turn(repeated, sampling, seed=seed)
    else:
        episodes = sampler(policy, repeated, sampling, seed)
    gen_s = time.perf_counter() - t0
    scored = score_all(task, episodes)
    v1, v2 = [s.v1 for s in scored], [s.v2 for s in scored]

    def vec(xs) -> torch.Tensor:
        return torch.tensor([float(x) for x in xs])

    return Rollouts(
        episodes=episodes,
        group_size=group_size,
        r1=vec(v.correct for v in v1),
        r2=vec(v.correct for v in v2),
        well_formed1=vec(v.well_formed for v in v1),
        well_formed2=vec(v.well_formed for v in v2),
        answer_changed=vec(a.answer != b.answer for a, b in zip(v1, v2)),
        no_edit=vec(ep.y1 == ep.y2 for ep in episodes),
        gen_tokens=sum(len(t.completion_ids) for ep in episodes for t in ep.turns),
        gen_s=gen_s,
        truncated1=vec(ep.turns[0].truncated for ep in episodes),
        truncated2=vec(ep.turns[1].truncated for ep in episodes),
    )


def concat(parts: Sequence[Rollouts]) -> Rollouts:
    """The rollouts of several shares of one step's prompts, in order (groups stay contiguous)."""
    if len(parts) == 1:
        return parts[0]
    if len({p.group_size for p in parts}) != 1:
        raise ValueError("rollouts with different group sizes cannot be concatenated")

    def cat(name: str) -> torch.Tensor:
        return torch.cat([getattr(p, name) for p in parts])

    return Rollouts(
        episodes=[ep for p in parts for ep in p.episodes], group_size=parts[0].group_size,
        r1=cat("r1"), r2=cat("r2"), well_formed1=cat("well_formed1"), well_formed2=cat("well_formed2"),
        answer_changed=cat("answer_changed"), no_edit=cat("no_edit"),
        gen_tokens=sum(p.gen_tokens for p in parts), gen_s=sum(p.gen_s for p in parts),
        truncated1=cat("truncated1") if parts[0].truncated1 is not None else None,
        truncated2=cat("truncated2") if parts[0].truncated2 is not None else None,
    )
