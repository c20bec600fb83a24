"""The analysis wing: everything after the runs, read from their saved records only (no model).

  results      load a sweep's runs, recompute every metric from the saved records and refuse a
               disagreement, check that the runs are comparable (same task/model/eval, same budget)
  labels       run labels (`arm[variant]`), display names and table order (from the arm YAMLs)
  stats        seed-level inference: per-seed paired differences, t intervals, sign-flip p, power
  verdicts     the pre-registered primary family with Holm's adjustment; exploratory comparisons
  diagnostics  Δ against Acc@t1 over checkpoints, the probe by strata, the correction matrix's sites
  tables       the main table and comparison tables (markdown)
  figures      the paper's figures
  scaling      inference-scaling curves from the samples `selfcorrect.evaluation.scaling_samples` caches
"""
