"""The evaluation layer: a policy's attempts scored and summarised (the one evaluator).

  scoring            an episode with the verifier's verdict on each attempt
  evaluate           the one evaluator (greedy two-turn metrics, the mismatch probe)
  metrics            the metric definitions (`metrics.summarize`: a new metric goes here)
  probe              the mismatch probe's metrics and strata
  correction_matrix  second attempts on controlled first attempts
  final_evaluation   the final evaluation protocol of a run on the test problems
  scaling_samples    inference-scaling samples from a run's policy (cached beside the run)
  mechanisms/        why RL and SFT differ (issue 23), pure functions of records or weights
"""
