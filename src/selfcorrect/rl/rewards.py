"""Per-turn returns of each SCoRe stage from binary verifier rewards (paper Eqs. 3–4).

With γ = 0 (the paper's instantaneous reward, App. A.2) each turn's return is its own reward:

  stage "I"      turn 1: 0                 turn 2: r(y2)                     (Eq. 3)
  stage "II"     turn 1: r(y1)             turn 2: r(y2) + α·(r(y2) − r(y1)) (Eq. 4 + bonus)
  stage "single" turn 1: r(y1)             turn 2: not trained               (single-turn RL)

With α = 10 the shaped turn-2 reward is 11 (i→c), 1 (c→c), −10 (c→i), 0 (i→i).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

STAGES = ("I", "II", "single")
STAGE_CODE = {"single": 0, "I": 1, "II": 2}  # logged as a number (trackers drop strings)


@dataclass(frozen=True)
class StageObjective:
    """Which turns a stage trains and how strongly each is held to the reference (KL weight)."""

    name: str
    trains: tuple[bool, bool]
    kl_coef: tuple[float, float]


def stage_objective(stage: str, beta1: float, beta2: float) -> StageObjective:
    """Stage I holds the first attempt to the base with the strong β2 (β1 on the second);
    Stage II uses β1 on both turns; single-turn RL trains (and regularises) turn 1 only."""
    if stage == "I":
        return StageObjective("I", (True, True), (beta2, beta1))
    if stage == "II":
        return StageObjective("II", (True, True), (beta1, beta1))
    if stage == "single":
        return StageObjective("single", (True, False), (beta1, 0.0))
    raise ValueError(f"unknown SCoRe stage {stage!r}; expected one of {STAGES}")


def shaped_second_reward(r1: torch.Tensor, r2: torch.Tensor, alpha: float) -> torch.Tensor:
    """r(y2) + α·(r(y2) − r(y1)): the Stage II progress bonus (paper §5.2)."""
    return r2 + alpha * (r2 - r1)


def turn_rewards(stage: str, r1: torch.Tensor, r2: torch.Tensor, alpha: float, gamma: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-turn returns (G1, G2) for one stage; G1 = R1 + γ·R2 (the paper uses γ = 0)."""
    if stage == "I":
        R1, R2 = torch.zeros_like(r1), r2.clone()
    elif stage == "II":
        R1, R2 = r1.clone(), shaped_second_reward(r1, r2, alpha)
    elif stage == "single":
        R1, R2 = r1.clone(), torch.zeros_like(r2)
    else:
        raise ValueError(f"unknown SCoRe stage {stage!r}; expected one of {STAGES}")
    return R1 + gamma * R2, R2
