"""SCoRe (Kumar et al. 2024, §5): two-stage multi-turn online RL for self-correction.

One training step, as in the paper:

1. `rollouts.collect`      k on-policy two-turn episodes per prompt at the sampling temperature:
                           y1 ~ π(·|x), y2 ~ π(·|x, y1, revise instruction)
2. `rewards.turn_rewards`  binary verifier rewards r(y1), r(y2) → per-turn returns of the stage
                           (one table, `rewards.STAGES`: Stage I, Stage II with the α bonus,
                           single-turn RL, naive multi-turn RL)
3. `losses.score_loss`     REINFORCE with a leave-one-out baseline per turn and the KL penalty in
                           the reward, per turn (β2 on turn 1 in Stage I, β1 elsewhere; Eq. 2)
4. `trainer.train`         one optimizer step of the shared budget; log, evaluate, checkpoint,
                           and keep the checkpoint with the highest training reward

Why our own compact trainer and not (yet) a TRL GRPOTrainer subclass: per-turn returns and
per-turn KL weights need per-token advantages over a two-turn rollout; moving this loop onto
GRPOTrainer's `rollout_func` is issue 13. The optimizer and schedule are already the ones TRL
builds (`selfcorrect.budget`), so both families share them.
"""
