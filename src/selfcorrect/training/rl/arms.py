"""The online-RL arms: SCoRe, its ablations and the RL baselines, all one trainer with a
different stage schedule (stages in `rl/rewards.py`), trained through TRL's GRPOTrainer
(`rl/grpo_run.py`, `rl/grpo_engine.py`):

  score                  Stage I then Stage II (α > 0)                             paper §5
  score_no_stage1        Stage II only, from the base (α > 0)                      Table 4 "w/o Stage I"
  score_no_shaping       Stage I then Stage II with α = 0                          Table 4 "w/o reward shaping"
  score_shaping_control  Stage I then Stage II with α = 0, turn-2 reward × (1 + α) ours: flips vs turn-2 weight
  rl_single_turn         REINFORCE on the first attempt only; evaluated two-turn   Table 4 "w/o multi-turn"
  rl_multi_turn_naive    r(y2) on (x2, y2) only; turn 1 neither rewarded nor held   Fig. 6 (collapse)
  rl_multi_turn_sum      Stage II objective from the base with α = 0               ours (the old "naive")

Each is a `conf/arm/<name>.yaml` (shared settings in `arm/rl/common.yaml`); the budget is the
top-level `budget` block that the offline arms read too.
"""

from __future__ import annotations

from selfcorrect.training.arms import ArmResult


def train(ctx) -> ArmResult:
    from selfcorrect.training.rl.grpo_run import train_grpo  # imports TRL: only when an RL arm runs

    return train_grpo(ctx, ctx.spec.arm.rl)
