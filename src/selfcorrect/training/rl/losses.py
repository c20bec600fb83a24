"""SCoRe's per-turn advantages: returns, the KL penalty in the reward, leave-one-out baselines.

For a batch of n episodes (k per prompt, contiguous) and turns t ∈ {1, 2}, only the turns the
stage trains get an advantage:

  A_{i,t} = G'_{i,t} − mean_{j≠i in the same prompt group} G'_{j,t}        (RLOO, Ahmadian et al. 2024)
  G'_{i,t} = G_{i,t} − β_t Σ_{tokens of y_t} (log π − log π_ref)           (paper Eq. 2: KL in the reward, k1)

with G the turn's return from `rewards.turn_rewards` (β2 on turn 1 in Stage I, β1 elsewhere,
`rewards.kl_weights`). The update is then REINFORCE, −1/N Σ_i Σ_t A_{i,t} Σ_{y_t} ∇log π with
N the trained attempt tokens of the batch: GRPOTrainer's "dapo" loss in the engine
(`grpo_engine`), written out directly in `reference.score_loss`. Both take their advantages
from `per_turn_advantages`, the one place the per-turn assembly lives.

Only the paper's placement is supported: the KL as a k1 term in each turn's return, whose
expected policy gradient is −β_t ∇KL(π‖π_ref). Other placements (the KL as a loss term with the
k2 or k3 estimator) are refused by `LossConfig` when the config is read. k3 = e^{−d} − 1 + d
(d = log π − log π_ref), unbiased and never negative, is the logged per-turn KL (`kl_t1`, `kl_t2`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

KL_ESTIMATORS = ("k1",)
KL_PLACEMENTS = ("reward",)
BASELINES = ("rloo", "none")


@dataclass(frozen=True)
class LossConfig:
    baseline: str = "rloo"
    kl_estimator: str = "k1"
    kl_in: str = "reward"

    def __post_init__(self) -> None:
        if self.baseline not in BASELINES:
            raise ValueError(f"unknown baseline {self.baseline!r}; expected one of {BASELINES}")
        if self.kl_in not in KL_PLACEMENTS:
            raise ValueError(f"arm.loss.kl_in={self.kl_in!r} is not supported: the KL penalty is in each turn's "
                             "return (paper Eq. 2), kl_in='reward'; a KL loss term is not implemented by the engine")
        if self.kl_estimator not in KL_ESTIMATORS:
            raise ValueError(f"arm.loss.kl_estimator={self.kl_estimator!r} is not supported: the KL in the reward is the "
                             "k1 estimator Σ(log π − log π_ref), the only one whose policy gradient is −β∇KL(π‖π_ref)")


@dataclass
class TurnTokens:
    """One turn of n episodes: per-token log-probs under the policy and the reference, and the
    mask (1 on the turn's attempt tokens only). [n, T] each; the policy's may carry gradient."""

    logp: torch.Tensor
    ref_logp: torch.Tensor
    mask: torch.Tensor


def kl_per_token(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str) -> torch.Tensor:
    """k1 = d (the reward term) or k3 = e^{−d} − 1 + d (the logged KL), d = log π − log π_ref."""
    d = logp - ref_logp
    if estimator == "k1":
        return d
    if estimator == "k3":
        return torch.exp(-d) - 1 + d
    raise ValueError(f"unknown KL estimator {estimator!r}; expected 'k1' or 'k3'")


def advantages(returns: torch.Tensor, group_size: int, baseline: str) -> torch.Tensor:
    """Leave-one-out advantages within each group of `group_size` contiguous samples."""
    if baseline == "none":
        return returns
    if baseline != "rloo":
        raise ValueError(f"unknown baseline {baseline!r}; expected one of {BASELINES}")
    if group_size < 2 or returns.numel() % group_size:
        raise ValueError(f"RLOO needs groups of >= 2 samples dividing the batch, got group_size={group_size} for {returns.numel()} samples")
    g = returns.view(-1, group_size)
    loo_mean = (g.sum(1, keepdim=True) - g) / (group_size - 1)
    return (g - loo_mean).reshape(-1)


@torch.no_grad()
def per_turn_advantages(turns: Sequence[TurnTokens], returns: Sequence[torch.Tensor], kl_coefs: Sequence[float],
                        trains: Sequence[bool], group_size: int, cfg: LossConfig) -> tuple[list[torch.Tensor | None], dict]:
    """A_{i,t} of each turn (None for a turn the stage does not train) and per-turn statistics:
    `kl_t{t}` the mean per-attempt k3 KL, `adv_abs_t{t}` the mean |A| of a trained turn."""
    out, stats = [], {}
    for t, (turn, G, beta, trained) in enumerate(zip(turns, returns, kl_coefs, trains), start=1):
        stats[f"kl_t{t}"] = (kl_per_token(turn.logp, turn.ref_logp, "k3") * turn.mask).sum(-1).mean().item()
        if not trained:
            out.append(None)
            continue
        G = G.to(turn.logp.device) - beta * (kl_per_token(turn.logp, turn.ref_logp, cfg.kl_estimator) * turn.mask).sum(-1)
        a = advantages(G, group_size, cfg.baseline)
        stats[f"adv_abs_t{t}"] = a.abs().mean().item()
        out.append(a)
    return out, stats
