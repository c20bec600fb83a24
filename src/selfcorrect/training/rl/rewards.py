"""Per-turn returns and KL weights of each training stage, from binary verifier rewards.

With γ = 0 (the paper's instantaneous reward, App. A.2) each turn's return is its own reward.
One table, one entry per stage; `None` means the turn is not trained (no reward, no KL term):

  stage      turn 1 return / KL weight      turn 2 return / KL weight
  "I"        0            / β2              r(y2)                      / β1    Eq. 3
  "II"       r(y1)        / β1              s·r(y2) + α·(r(y2) − r(y1)) / β1   Eq. 4 + bonus
  "single"   r(y1)        / β1              None                               single-turn RL
  "naive"    None                           r(y2)                      / β1    naive multi-turn RL:
                                                                               "only on (x2, y2) pairs"

s is `turn2_scale` (1 in the paper; the shaping control uses 1 + α with α = 0). With α = 10 the
shaped turn-2 reward is 11 (i→c), 1 (c→c), −10 (c→i), 0 (i→i). A turn's KL enters its return
(`losses`, k1 in the reward) or the loss (k2/k3), always with the weight in this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Tensor = torch.Tensor


@dataclass(frozen=True)
class Stage:
    """What a stage trains: the return of each turn (None: untrained) and its KL weight name."""

    code: int                                   # logged as a number (trackers drop strings)
    turn1: Callable[[Tensor, Tensor, float, float], Tensor] | None
    turn2: Callable[[Tensor, Tensor, float, float], Tensor] | None
    kl: tuple[str | None, str | None]           # "beta1" | "beta2" | None per turn
    objective: Callable[[Tensor, Tensor], Tensor]  # the unshaped training reward used to select checkpoints


def shaped_second_reward(r1: Tensor, r2: Tensor, alpha: float, scale: float = 1.0) -> Tensor:
    """s·r(y2) + α·(r(y2) − r(y1)): the Stage II turn-2 reward with the progress bonus (§5.2)."""
    return scale * r2 + alpha * (r2 - r1)


STAGES: dict[str, Stage] = {
    # Eq. 3: max E[r(y2) − β2 KL(π(·|x1) ‖ π_ref(·|x1))] (+ the small β1 KL on turn 2)
    "I": Stage(1, lambda r1, r2, a, s: torch.zeros_like(r1), lambda r1, r2, a, s: r2.clone(),
               ("beta2", "beta1"), lambda r1, r2: r2),
    # Eq. 4: max E[Σ_i r(y_i) − β1 KL] with the bonus α·(r(y2) − r(y1)) on turn 2
    "II": Stage(2, lambda r1, r2, a, s: r1.clone(), lambda r1, r2, a, s: shaped_second_reward(r1, r2, a, s),
                ("beta1", "beta1"), lambda r1, r2: r1 + r2),
    # single-turn RL (Table 4 "w/o multi-turn training"): the first attempt only
    "single": Stage(0, lambda r1, r2, a, s: r1.clone(), None, ("beta1", None), lambda r1, r2: r1),
    # naive multi-turn RL (Fig. 6): Eq. 1 "only on (x2, y2) pairs"
    "naive": Stage(3, None, lambda r1, r2, a, s: r2.clone(), (None, "beta1"), lambda r1, r2: r2),
}
STAGE_NAMES = tuple(STAGES)


def get_stage(stage: str) -> Stage:
    if stage not in STAGES:
        raise ValueError(f"unknown training stage {stage!r}; expected one of {STAGE_NAMES}")
    return STAGES[stage]


def trained_turns(stage: str) -> tuple[bool, bool]:
    s = get_stage(stage)
    return s.turn1 is not None, s.turn2 is not None


def kl_weights(stage: str, beta1: float, beta2: float) -> tuple[float, float]:
    """The KL weight of each turn (0 for an untrained turn)."""
    betas = {"beta1": beta1, "beta2": beta2, None: 0.0}
    return tuple(betas[k] for k in get_stage(stage).kl)  # type: ignore[return-value]


def turn_rewards(stage: str, r1: Tensor, r2: Tensor, alpha: float, gamma: float = 0.0, turn2_scale: float = 1.0) -> tuple[Tensor, Tensor]:
    """Per-turn returns (G1, G2) of one stage, zeros for an untrained turn; G1 = R1 + γ·R2
    (the paper uses γ = 0)."""
    s = get_stage(stage)
    R1 = s.turn1(r1, r2, alpha, turn2_scale) if s.turn1 else torch.zeros_like(r1)
    R2 = s.turn2(r1, r2, alpha, turn2_scale) if s.turn2 else torch.zeros_like(r2)
    return (R1 + gamma * R2 if s.turn1 else R1), R2


def training_reward(stage: str, r1: Tensor, r2: Tensor) -> float:
    """The stage's verifier objective without shaping or KL, averaged over the batch: the
    "training reward" by which the paper selects checkpoints."""
    return get_stage(stage).objective(r1, r2).float().mean().item()
