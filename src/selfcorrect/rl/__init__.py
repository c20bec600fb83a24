"""SCoRe (Kumar et al. 2024, §5): two-stage multi-turn online RL for self-correction.

One training step, as in the paper:

1. `rollouts.collect`      k on-policy two-turn episodes per prompt at temperature 1:
                           y1 ~ π(·|x), y2 ~ π(·|x, y1, revise instruction)
2. `rewards.turn_rewards`  binary verifier rewards r(y1), r(y2) → per-turn returns of the stage
                           (Stage I: r(y2) on turn 2 only; Stage II: r(y1) and
                           r(y2) + α·(r(y2) − r(y1)))
3. `losses.score_loss`     REINFORCE with a leave-one-out baseline per turn, plus a per-token
                           KL(π‖π_ref) to the frozen base with a weight per turn (β2 on turn 1 in
                           Stage I, β1 elsewhere)
4. `trainer.train`         one Adam step; log, evaluate and checkpoint on schedule

Why our own compact trainer and not a TRL GRPOTrainer subclass: GRPOTrainer has one scalar
reward and one β per sequence, so per-turn returns and per-turn KL weights would mean
overriding its loss anyway; speed is not the reason: on the tiny model a GRPOTrainer two-turn
step measured only ~1.1x slower than ours (experiments/bench_score_vs_grpo.py).
"""
