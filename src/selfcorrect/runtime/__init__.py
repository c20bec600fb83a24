"""Run plumbing, below every other layer: how a run writes, caches, times, tracks, resumes.

  records      run records on disk: atomic JSON / JSONL writes and reads
  cache        content-addressed artifact cache (atomic, locked)
  checkpoint   training checkpoints (model + optimizer + RNG states), written atomically; a weights hash
  resume       re-running into a run directory: skip, resume or rerun
  timing       where a run's wall time goes (run.json `stages`)
  flops        FLOPs counted per stage when SELFCORRECT_COUNT_FLOPS=1 (run.json `stage_flops`)
  tracking     wandb + local history
  distributed  one run over several processes: who writes, how processes agree
  provenance   the code's commit and the library versions behind a result
"""
