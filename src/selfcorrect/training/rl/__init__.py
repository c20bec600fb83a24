"""SCoRe (Kumar et al. 2024, §5): two-stage multi-turn online RL for self-correction.

One training step, as in the paper:

1. `rollouts.collect`      k on-policy two-turn episodes per prompt at the sampling temperature:
                           y1 ~ π(·|x), y2 ~ π(·|x, y1, revise instruction)
2. `rewards.turn_rewards`  binary verifier rewards r(y1), r(y2) → per-turn returns of the stage
                           (one table, `rewards.STAGES`: Stage I, Stage II with the α bonus,
                           single-turn RL, naive multi-turn RL)
3. `losses.per_turn_advantages`  leave-one-out advantages per turn with the KL penalty in
                           the reward, per turn (β2 on turn 1 in Stage I, β1 elsewhere; Eq. 2)
4. `grpo_engine`           TRL's GRPOTrainer takes the step (`SCoReGRPOTrainer`): each episode
                           is one row (y1 + instruction + y2, `env_mask` 0 on the instruction and
                           on an untrained turn) with per-token advantages from
                           `losses.per_turn_advantages`; its "dapo" loss is then REINFORCE,
                           `reference.score_loss` written out without TRL (tests/test_grpo_engine.py
                           compares the gradients and whole runs with `reference.reference_update`)
5. `grpo_run.train_grpo`   one arm: the shared budget's optimizer and schedule, per-step seeds,
                           logging, evaluations, checkpoints and resume (`runtime.checkpoint`), and the
                           kept checkpoint (highest training reward); settings in `config.RLConfig`
"""
