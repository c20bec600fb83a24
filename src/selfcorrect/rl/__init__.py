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

The same step on TRL's GRPOTrainer (issue 13, not yet the default): `grpo_engine.SCoReGRPOTrainer`
packs each episode as one row (y1 + instruction + y2, `env_mask` 0 on the instruction) and feeds
GRPOTrainer per-token advantages from `losses.turn_advantages`; its gradient equals
`trainer.policy_update`'s on a fixed batch (tests/test_grpo_engine.py). `grpo_run.train_grpo`
runs a whole arm through it (no mid-run checkpoints/resume yet). The optimizer and schedule are
the ones TRL builds (`selfcorrect.budget`), so both families share them.
"""
