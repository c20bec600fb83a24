"""The SCoRe loss: REINFORCE with a per-turn baseline and a per-turn KL penalty to π_ref.

For a batch of n episodes (k per prompt, contiguous) and turns t ∈ {1, 2} (only the turns the
stage trains), with N the number of trained attempt tokens in the batch:

  loss = −1/N Σ_i Σ_t A_{i,t} · Σ_{tokens of y_t} log π(token)         (policy gradient)
         + 1/N Σ_i Σ_t β_t · Σ_{tokens of y_t} kl(token)                (only with kl_in = "loss")

A_{i,t} = G_{i,t} − mean_{j≠i in the same prompt group} G_{j,t} (leave-one-out / RLOO,
Ahmadian et al. 2024), G the turn's return from `rewards.turn_rewards`. The 1/N token
normalisation is the SFT loss's (TRL averages over completion tokens); under Adam a constant
factor does not change the update, and arithmetic attempts have a fixed length, so this is the
per-episode REINFORCE estimate up to that factor.

The default is the paper's (Eq. 2, REINFORCE "with a KL-divergence penalty" as in Ahmadian et
al.): kl_in = "reward", k1: the KL is subtracted from each turn's return before the baseline,
G_{i,t} − β_t Σ_tokens (log π − log π_ref), whose expected policy gradient is
−β_t ∇KL(π‖π_ref) for that turn.

Per-token estimators on tokens sampled from π, d = log π − log π_ref. As a *loss* term (the
gradient flows through d, not through the sampling), their expected gradients differ:
  k1 = d                 unbiased for KL(π‖π_ref); as a loss E_π[∇d] = 0, so k1 is only
                          allowed in the reward
  k2 = d²/2              as a loss: E_π[d ∇log π] = ∇KL(π‖π_ref)              (the forward KL)
  k3 = e^{−d} − 1 + d    unbiased, never negative; as a loss: E_π[(1 − π_ref/π) ∇log π]
                          = −Σ π_ref ∇log π = ∇KL(π_ref‖π)                      (the REVERSE KL)
(pinned by a Monte-Carlo test on a small categorical, tests/test_score_loss.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

KL_ESTIMATORS = ("k1", "k2", "k3")
KL_PLACEMENTS = ("loss", "reward")
BASELINES = ("rloo", "none")


@dataclass(frozen=True)
class LossConfig:
    baseline: str = "rloo"
    kl_estimator: str = "k1"
    kl_in: str = "reward"

    def __post_init__(self) -> None:
        if self.baseline not in BASELINES:
            raise ValueError(f"unknown baseline {self.baseline!r}; expected one of {BASELINES}")
        if self.kl_estimator not in KL_ESTIMATORS:
            raise ValueError(f"unknown KL estimator {self.kl_estimator!r}; expected one of {KL_ESTIMATORS}")
        if self.kl_in not in KL_PLACEMENTS:
            raise ValueError(f"kl_in must be one of {KL_PLACEMENTS}, got {self.kl_in!r}")
        if self.kl_in == "loss" and self.kl_estimator == "k1":
            raise ValueError("kl_estimator 'k1' as a loss term has zero expected gradient; use kl_in='reward' or k2/k3")
        if self.kl_in == "reward" and self.kl_estimator != "k1":
            raise ValueError(
                f"kl_estimator {self.kl_estimator!r} in the reward does not give the gradient of either KL "
                "(k3 in the reward gives ∇KL(π‖π_ref) − ∇KL(π_ref‖π)); use k1 in the reward, or k2/k3 with kl_in='loss'"
            )


@dataclass
class TurnBatch:
    """One turn of n episodes: token log-probs under the policy (with grad) and the reference,
    the completion mask (1 on the attempt's tokens only), the return, and the KL weight."""

    logp: torch.Tensor      # [n, T]
    ref_logp: torch.Tensor  # [n, T]
    mask: torch.Tensor      # [n, T]
    returns: torch.Tensor   # [n]
    kl_coef: float
    trained: bool = True


def kl_per_token(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str) -> torch.Tensor:
    d = logp - ref_logp
    if estimator == "k1":
        return d
    if estimator == "k2":
        return 0.5 * d**2
    if estimator == "k3":
        return torch.exp(-d) - 1 + d
    raise ValueError(f"unknown KL estimator {estimator!r}; expected one of {KL_ESTIMATORS}")


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


def turn_advantages(returns: torch.Tensor, kl_seq: torch.Tensor, kl_coef: float, group_size: int, cfg: LossConfig) -> torch.Tensor:
    """A_{i,t} of one turn: its return, minus β_t·Σ_tokens kl when the KL is in the reward (k1),
    against the leave-one-out baseline of its prompt group. `kl_seq` is the per-attempt sum of
    `kl_per_token(·, ·, cfg.kl_estimator)` over the turn's tokens, without gradient. Shared by
    `score_loss` and the GRPOTrainer engine (`grpo_engine`)."""
    if cfg.kl_in == "reward":
        returns = returns - kl_coef * kl_seq
    return advantages(returns, group_size, cfg.baseline)


def score_loss(turns: Sequence[TurnBatch], group_size: int, cfg: LossConfig) -> tuple[torch.Tensor, dict]:
    """The loss to minimise and per-turn statistics (`kl_t{t}`: mean per-attempt k3 KL)."""
    loss = turns[0].logp.new_zeros(())
    n_tokens = sum(turn.mask.sum() for turn in turns if turn.trained)
    n_tokens = max(float(n_tokens), 1.0)
    stats = {}
    for t, turn in enumerate(turns, start=1):
        mask = turn.mask
        with torch.no_grad():
            stats[f"kl_t{t}"] = (kl_per_token(turn.logp, turn.ref_logp, "k3") * mask).sum(-1).mean().item()
        if not turn.trained:
            continue
        kl_seq = (kl_per_token(turn.logp, turn.ref_logp, cfg.kl_estimator) * mask).sum(-1)
        adv = turn_advantages(turn.returns, kl_seq.detach(), turn.kl_coef, group_size, cfg).detach()
        pg = -(adv * (turn.logp * mask).sum(-1)).sum() / n_tokens
        loss = loss + pg
        if cfg.kl_in == "loss":
            loss = loss + turn.kl_coef * kl_seq.sum() / n_tokens
        stats[f"adv_abs_t{t}"] = adv.abs().mean().item()
        stats[f"pg_loss_t{t}"] = pg.item()
    stats["loss"] = loss.item()
    return loss, stats
