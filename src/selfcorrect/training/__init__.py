"""The training layer: every arm's training function and what the families share.

  arms       ArmContext (what a training function gets), ArmResult (what it returns), the validation
             evaluator, `get_arm`, and the base arm (no training)
  catalog    the arms as their YAML files (conf/arm/) declare them
  budget     the one training budget, optimizer and schedule both families read
  selection  the one checkpoint rule (candidates, highest validation Acc@t2)
  offline/   the offline (SFT) family: its arms, their trace datasets, TRL's SFTTrainer
  rl/        the online RL family (SCoRe and its baselines): TRL's GRPOTrainer, subclassed
"""
