"""The online-RL arms: SCoRe and its ablations, all one trainer with a different stage schedule.

  score                Stage I then Stage II (α > 0)                          paper §5
  score_no_stage1      Stage II only, from the base (α > 0)                   Table 4 "w/o Stage I"
  score_no_shaping     Stage I then Stage II with α = 0                       Table 4 "w/o reward shaping"
  rl_single_turn       REINFORCE on the first attempt only; evaluated two-turn Table 4 "w/o multi-turn"
  rl_multi_turn_naive  Stage II objective from the base with α = 0            Fig. 6 (collapse)

Each is a `conf/arm/<name>.yaml` holding every hyper-parameter (shared ones in `arm/rl/common.yaml`).
"""

from __future__ import annotations

from selfcorrect.policy import Policy
from selfcorrect.rl.trainer import RLConfig, train as train_rl


def train(ctx) -> Policy:
    return train_rl(ctx, RLConfig.from_arm(ctx.cfg.arm))
